//! How HubSpot spells values: every value is a string; dates and datetimes are epoch
//! milliseconds (a date is midnight UTC), booleans `true`/`false`, enumerations their option's
//! internal value (several options of a checkbox joined by `;`), numbers in decimal.

use ferry_core::contact::FieldKind;
use ferry_core::mapping::{RemoteKind, from_remote_text, to_remote_text};
use serde_json::Value;

use crate::crm::ValueCodec;

/// HubSpot's [`ValueCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HubSpotCodec;

/// The kind of a HubSpot property `type` (`string`, `number`, `date`, `datetime`, `bool`,
/// `enumeration`, `phone_number`; anything else is `Other`).
pub fn remote_kind(hubspot_type: &str) -> RemoteKind {
    match hubspot_type {
        "string" => RemoteKind::String,
        "number" => RemoteKind::Number,
        "date" => RemoteKind::Date,
        "datetime" => RemoteKind::DateTime,
        "bool" => RemoteKind::Bool,
        "enumeration" => RemoteKind::Enumeration,
        "phone_number" => RemoteKind::PhoneNumber,
        _ => RemoteKind::Other,
    }
}

fn is_date(local: FieldKind, remote: RemoteKind) -> bool {
    local == FieldKind::Date && matches!(remote, RemoteKind::Date | RemoteKind::DateTime)
}

impl ValueCodec for HubSpotCodec {
    fn encode(&self, local: FieldKind, remote: RemoteKind, value: &Value) -> Option<String> {
        let s = to_remote_text(value)?;
        if is_date(local, remote) {
            // Midnight UTC in epoch milliseconds.
            let date: jiff::civil::Date = s.parse().ok()?;
            let ms = date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()?
                .timestamp()
                .as_millisecond();
            return Some(ms.to_string());
        }
        // Booleans already read `true`/`false`, numbers are decimal, and an enumeration takes
        // the value as Ferry holds it.
        Some(s)
    }

    fn decode(&self, local: FieldKind, remote: RemoteKind, value: Option<&str>) -> Option<String> {
        let s = from_remote_text(value)?;
        if is_date(local, remote) {
            if let Ok(ms) = s.parse::<i64>() {
                let t = jiff::Timestamp::from_millisecond(ms).ok()?;
                return Some(t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string());
            }
            if let Ok(t) = s.parse::<jiff::Timestamp>() {
                return Some(t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string());
            }
        }
        // `true`/`false` and numbers parse as Ferry's booleans and numbers do.
        Some(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_convert_by_type_both_ways() {
        use FieldKind as F;
        use RemoteKind as R;
        let c = HubSpotCodec;
        assert_eq!(
            c.encode(F::Date, R::Date, &json!("2026-09-01")).as_deref(),
            Some("1788220800000")
        );
        assert_eq!(
            c.decode(F::Date, R::Date, Some("1788220800000")).as_deref(),
            Some("2026-09-01")
        );
        assert_eq!(
            c.decode(F::Date, R::DateTime, Some("2026-09-01T23:30:00Z"))
                .as_deref(),
            Some("2026-09-01")
        );
        assert_eq!(
            c.encode(F::Date, R::String, &json!("2026-09-01"))
                .as_deref(),
            Some("2026-09-01"),
            "a date in a text property stays as written"
        );
        assert_eq!(
            c.encode(F::Number, R::Number, &json!(3.75)).as_deref(),
            Some("3.75")
        );
        assert_eq!(
            c.encode(F::Boolean, R::Bool, &json!(true)).as_deref(),
            Some("true")
        );
        assert_eq!(
            c.decode(F::Boolean, R::Bool, Some("false")).as_deref(),
            Some("false")
        );
        assert_eq!(
            c.encode(F::Text, R::Enumeration, &json!("Fall 2026"))
                .as_deref(),
            Some("Fall 2026")
        );
        assert_eq!(
            c.encode(F::Phone, R::PhoneNumber, &json!("+16175550101"))
                .as_deref(),
            Some("+16175550101")
        );
        assert_eq!(c.encode(F::Text, R::String, &json!("  ")), None);
        assert_eq!(c.decode(F::Date, R::Date, Some(" ")), None);
        assert_eq!(
            c.decode(F::Text, R::String, Some("UNSET")).as_deref(),
            Some("UNSET")
        );
    }

    #[test]
    fn hubspot_types_map_to_kinds() {
        assert_eq!(remote_kind("bool"), RemoteKind::Bool);
        assert_eq!(remote_kind("phone_number"), RemoteKind::PhoneNumber);
        assert_eq!(remote_kind("object_coordinates"), RemoteKind::Other);
    }
}
