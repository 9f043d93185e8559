//! How a CRM writes values: each remote has its own [`ValueCodec`] for dates, booleans, numbers
//! and enumerations. The platform-neutral rules (a blank is never sent nor written; UNSET
//! passes through to the contact rules) are `ferry_core::mapping`'s; a codec only spells values.

use ferry_core::contact::FieldKind;
use ferry_core::mapping::RemoteKind;
use serde_json::Value;

/// Converts values between Ferry's fields and one CRM's properties.
pub trait ValueCodec: Send + Sync {
    /// A Ferry value as the CRM takes it; `None` for a blank (never sent).
    fn encode(&self, local: FieldKind, remote: RemoteKind, value: &Value) -> Option<String>;

    /// A CRM value as the text a Ferry write takes (parsed by the field's type like any
    /// import); `None` for a blank (never written).
    fn decode(&self, local: FieldKind, remote: RemoteKind, value: Option<&str>) -> Option<String>;
}
