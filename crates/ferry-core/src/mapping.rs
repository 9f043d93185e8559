//! Field mapping between Ferry's contact fields and a CRM's properties (seed 002, "Data
//! Mapping"), and the conversion of values by type in both directions.
//!
//! Rules checked when a mapping is saved:
//! - CRM ID ↔ the CRM's record ID property is always mapped and cannot be changed or removed;
//! - first name, last name and phone must be mapped (every Ferry contact has them);
//! - a CRM that requires an email property has it mapped to an email-type Ferry field;
//! - every Ferry field and CRM property exists, each appears once, and their types fit;
//! - an outgoing mapping never writes a read-only CRM property.
//!
//! Values travel as text. A blank value is never sent or written; UNSET passes through to the
//! contact rules. How each CRM spells dates, booleans and numbers is its connector's codec.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::contact::{DefaultField, FieldKind, FieldRef, FieldSchema};
use crate::run::SyncDirection;

crate::string_enum! {
    /// A CRM property's type, as Ferry groups them (each connector maps its CRM's types).
    pub enum RemoteKind {
        /// Text.
        String = "string",
        /// A number.
        Number = "number",
        /// A calendar date.
        Date = "date",
        /// A date and time.
        DateTime = "datetime",
        /// A boolean.
        Bool = "bool",
        /// One of a fixed set of options.
        Enumeration = "enumeration",
        /// A phone number.
        PhoneNumber = "phone_number",
        /// Any type Ferry does not convert; mapped as text.
        Other = "other",
    }
}

/// A CRM property, as its properties API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteProperty {
    /// The property's API name, as saved in a mapping.
    pub name: String,
    /// What the CRM shows people.
    pub label: String,
    /// Its type, as Ferry groups them.
    pub kind: RemoteKind,
    /// The CRM computes it; it cannot be written.
    pub read_only: bool,
}

/// One pair of a mapping, as saved.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// A Ferry field: a default field's name or a custom field's name.
    pub local: String,
    /// A CRM property's name.
    pub remote: String,
}

/// A checked pair.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMapping {
    /// The Ferry field.
    pub local: FieldRef,
    /// The Ferry field's name, as saved.
    pub local_name: String,
    /// The Ferry field's type.
    pub local_kind: FieldKind,
    /// The CRM property it pairs with.
    pub remote: RemoteProperty,
}

/// Why a mapping was refused; `index` is the pair at fault, if one is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MappingError {
    /// The pair at fault (its position in the list as saved); `None` when the mapping as a whole is wrong.
    pub index: Option<usize>,
    /// A sentence for people.
    pub message: String,
}

impl MappingError {
    fn at(index: usize, message: impl Into<String>) -> Self {
        MappingError {
            index: Some(index),
            message: message.into(),
        }
    }
    fn whole(message: impl Into<String>) -> Self {
        MappingError {
            index: None,
            message: message.into(),
        }
    }
}

/// The Ferry field that always maps to the CRM's record ID.
pub const CRM_ID_FIELD: &str = "crm_id";

/// Which CRM property types a Ferry field type can exchange values with.
fn fits(local: FieldKind, remote: RemoteKind) -> bool {
    use RemoteKind as R;
    match local {
        FieldKind::Text => matches!(
            remote,
            R::String | R::Enumeration | R::PhoneNumber | R::Number
        ),
        FieldKind::Number => matches!(remote, R::Number | R::String),
        FieldKind::Date => matches!(remote, R::Date | R::DateTime | R::String),
        FieldKind::Boolean => matches!(remote, R::Bool | R::Enumeration | R::String),
        FieldKind::Email => matches!(remote, R::String),
        FieldKind::Phone => matches!(remote, R::PhoneNumber | R::String),
    }
}

/// The mapping with the fixed CRM ID pair first, checked against the institution's fields and
/// the CRM's properties. `id_property` is the CRM's record ID; `email_property`, when the CRM
/// has one it requires, must then be mapped to an email-type field.
pub fn resolve(
    mappings: &[FieldMapping],
    schema: &FieldSchema,
    remote: &[RemoteProperty],
    id_property: &str,
    email_property: Option<&str>,
    direction: SyncDirection,
) -> Result<Vec<ResolvedMapping>, MappingError> {
    let mut out = Vec::with_capacity(mappings.len() + 1);
    let mut locals = BTreeSet::new();
    let mut remotes = BTreeSet::new();
    let id_remote = remote
        .iter()
        .find(|p| p.name == id_property)
        .cloned()
        .unwrap_or(RemoteProperty {
            name: id_property.to_string(),
            label: "Record ID".to_string(),
            kind: RemoteKind::Number,
            read_only: true,
        });
    out.push(ResolvedMapping {
        local: FieldRef::Default(DefaultField::CrmId),
        local_name: CRM_ID_FIELD.to_string(),
        local_kind: FieldKind::Text,
        remote: id_remote,
    });
    locals.insert(CRM_ID_FIELD.to_string());
    remotes.insert(id_property.to_string());

    for (i, m) in mappings.iter().enumerate() {
        let (local, remote_name) = (m.local.trim(), m.remote.trim());
        if local == CRM_ID_FIELD && remote_name == id_property {
            continue; // the fixed pair, restated
        }
        if local == CRM_ID_FIELD || remote_name == id_property {
            return Err(MappingError::at(
                i,
                format!(
                    "CRM ID is always mapped to {id_property} (the CRM's record ID); that pair cannot be changed"
                ),
            ));
        }
        let (field, kind) = match schema.resolve(local) {
            // Ferry's own ID in a CRM property (seed 002's `admithub_id`): sent out, and read
            // back in as a guaranteed match.
            Some(FieldRef::PlatformId) => (FieldRef::PlatformId, FieldKind::Number),
            Some(FieldRef::Default(DefaultField::TestUser)) => {
                return Err(MappingError::at(
                    i,
                    "test users never sync, so test_user cannot be mapped",
                ));
            }
            Some(FieldRef::Default(d)) => (FieldRef::Default(d), d.kind()),
            Some(FieldRef::Custom(name, kind)) => (FieldRef::Custom(name, kind), kind),
            None => {
                return Err(MappingError::at(
                    i,
                    format!("{local:?} is not a field of this institution"),
                ));
            }
        };
        let Some(prop) = remote.iter().find(|p| p.name == remote_name) else {
            return Err(MappingError::at(
                i,
                format!("the CRM has no property {remote_name:?}"),
            ));
        };
        if !locals.insert(local.to_string()) {
            return Err(MappingError::at(i, format!("{local} is mapped twice")));
        }
        if !remotes.insert(remote_name.to_string()) {
            return Err(MappingError::at(
                i,
                format!("{remote_name} is mapped twice"),
            ));
        }
        if !fits(kind, prop.kind) {
            return Err(MappingError::at(
                i,
                format!(
                    "{local} ({kind}) cannot hold the values of {remote_name} ({})",
                    prop.kind
                ),
            ));
        }
        if direction == SyncDirection::Outgoing && prop.read_only {
            return Err(MappingError::at(
                i,
                format!("{remote_name} is read-only in the CRM; Ferry cannot write it"),
            ));
        }
        out.push(ResolvedMapping {
            local: field,
            local_name: local.to_string(),
            local_kind: kind,
            remote: prop.clone(),
        });
    }
    for required in [
        DefaultField::FirstName,
        DefaultField::LastName,
        DefaultField::Phone,
    ] {
        if !locals.contains(required.as_str()) {
            return Err(MappingError::whole(format!(
                "{} must be mapped: every Ferry contact has first name, last name and phone",
                required.as_str()
            )));
        }
    }
    let Some(email) = email_property else {
        return Ok(out);
    };
    match out.iter().find(|m| m.remote.name == email) {
        Some(m) if m.local_kind == FieldKind::Email => {}
        Some(m) => {
            return Err(MappingError::whole(format!(
                "{email} must be mapped to an email-type field, not {} ({})",
                m.local_name, m.local_kind
            )));
        }
        None if remote.iter().any(|p| p.name == email) => {
            return Err(MappingError::whole(format!(
                "the CRM requires {email}: map it to an email-type field (the built-in email or a custom one)",
            )));
        }
        None => {}
    }
    Ok(out)
}

/// A Ferry value as text for a CRM; `None` for a blank (never sent). A connector's codec spells
/// it further (dates, booleans) as its CRM takes them.
pub fn to_remote_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// A CRM value, trimmed; `None` for a blank (never written). UNSET passes through to the
/// contact rules.
pub fn from_remote_text(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::CustomFieldDef;
    use serde_json::json;

    fn prop(name: &str, kind: RemoteKind) -> RemoteProperty {
        RemoteProperty {
            name: name.into(),
            label: name.into(),
            kind,
            read_only: false,
        }
    }

    fn remote() -> Vec<RemoteProperty> {
        let mut v = vec![
            prop("firstname", RemoteKind::String),
            prop("lastname", RemoteKind::String),
            prop("phone", RemoteKind::PhoneNumber),
            prop("email", RemoteKind::String),
            prop("grad_year", RemoteKind::Number),
            prop("enrolled_on", RemoteKind::Date),
            prop("first_gen", RemoteKind::Bool),
        ];
        v.push(RemoteProperty {
            read_only: true,
            ..prop("record_id", RemoteKind::Number)
        });
        v.push(RemoteProperty {
            read_only: true,
            ..prop("lastmodifieddate", RemoteKind::DateTime)
        });
        v
    }

    fn schema() -> FieldSchema {
        FieldSchema::new([
            CustomFieldDef {
                name: "graduation_year".into(),
                label: "Graduation year".into(),
                kind: FieldKind::Number,
            },
            CustomFieldDef {
                name: "enrolled".into(),
                label: "Enrolled".into(),
                kind: FieldKind::Date,
            },
            CustomFieldDef {
                name: "advisor".into(),
                label: "Advisor".into(),
                kind: FieldKind::Email,
            },
            CustomFieldDef {
                name: "first_gen".into(),
                label: "First gen".into(),
                kind: FieldKind::Boolean,
            },
        ])
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<FieldMapping> {
        p.iter()
            .map(|(l, r)| FieldMapping {
                local: l.to_string(),
                remote: r.to_string(),
            })
            .collect()
    }

    const BASE: [(&str, &str); 4] = [
        ("first_name", "firstname"),
        ("last_name", "lastname"),
        ("phone", "phone"),
        ("email", "email"),
    ];

    fn check(
        extra: &[(&str, &str)],
        dir: SyncDirection,
    ) -> Result<Vec<ResolvedMapping>, MappingError> {
        let mut p = BASE.to_vec();
        p.extend_from_slice(extra);
        resolve(
            &pairs(&p),
            &schema(),
            &remote(),
            "record_id",
            Some("email"),
            dir,
        )
    }

    #[test]
    fn a_valid_mapping_starts_with_the_fixed_crm_id_pair() {
        let m = check(
            &[
                ("graduation_year", "grad_year"),
                ("enrolled", "enrolled_on"),
                ("first_gen", "first_gen"),
            ],
            SyncDirection::Outgoing,
        )
        .unwrap();
        assert_eq!(m[0].local_name, "crm_id");
        assert_eq!(m[0].remote.name, "record_id");
        assert_eq!(m.len(), 8);
        // Restating the fixed pair is harmless.
        assert!(check(&[("crm_id", "record_id")], SyncDirection::Incoming).is_ok());
        // Reading a read-only property in is fine.
        assert!(check(&[("enrolled", "lastmodifieddate")], SyncDirection::Incoming).is_ok());
    }

    #[test]
    fn invalid_mappings_are_refused_with_the_reason() {
        let refused = |p: Vec<(&str, &str)>, dir, needle: &str, index: Option<usize>| {
            let e = resolve(
                &pairs(&p),
                &schema(),
                &remote(),
                "record_id",
                Some("email"),
                dir,
            )
            .unwrap_err();
            assert!(e.message.contains(needle), "{p:?}: {e}");
            assert_eq!(e.index, index, "{p:?}: {e}");
        };
        use SyncDirection::*;
        let with = |extra: (&'static str, &'static str)| {
            let mut p = BASE.to_vec();
            p.push(extra);
            p
        };
        refused(
            BASE[1..].to_vec(),
            Outgoing,
            "first_name must be mapped",
            None,
        );
        refused(
            vec![BASE[0], BASE[1], BASE[3]],
            Incoming,
            "phone must be mapped",
            None,
        );
        refused(BASE[..3].to_vec(), Outgoing, "requires email", None);
        refused(
            vec![BASE[0], BASE[1], BASE[2], ("last_name", "email")],
            Outgoing,
            "last_name is mapped twice",
            Some(3),
        );
        refused(
            vec![BASE[0], BASE[1], BASE[2], ("enrollment_id", "email")],
            Outgoing,
            "email-type field",
            None,
        );
        assert!(check(&[], Outgoing).is_ok());
        let advisor = vec![BASE[0], BASE[1], BASE[2], ("advisor", "email")];
        assert!(
            resolve(
                &pairs(&advisor),
                &schema(),
                &remote(),
                "record_id",
                Some("email"),
                Outgoing
            )
            .is_ok(),
            "a custom email field may carry email"
        );
        refused(
            with(("crm_id", "email")),
            Outgoing,
            "always mapped to record_id",
            Some(4),
        );
        refused(
            with(("enrollment_id", "record_id")),
            Outgoing,
            "always mapped",
            Some(4),
        );
        refused(with(("gpa", "grad_year")), Outgoing, "not a field", Some(4));
        refused(
            with(("graduation_year", "gradyear")),
            Outgoing,
            "no property",
            Some(4),
        );
        refused(
            with(("graduation_year", "firstname")),
            Outgoing,
            "firstname is mapped twice",
            Some(4),
        );
        refused(
            with(("first_gen", "grad_year")),
            Outgoing,
            "cannot hold",
            Some(4),
        );
        refused(
            with(("enrolled", "lastmodifieddate")),
            Outgoing,
            "read-only",
            Some(4),
        );
        refused(
            with(("test_user", "first_gen")),
            Outgoing,
            "test users never sync",
            Some(4),
        );
        refused(with(("id", "first_gen")), Outgoing, "cannot hold", Some(4));
        assert!(
            check(&[("id", "grad_year")], Incoming).is_ok(),
            "the platform ID may travel in a CRM property"
        );
    }

    #[test]
    fn an_email_property_is_required_only_of_a_crm_that_names_one() {
        let p = pairs(&BASE[..3]);
        let without = |email| {
            resolve(
                &p,
                &schema(),
                &remote(),
                "record_id",
                email,
                SyncDirection::Outgoing,
            )
        };
        assert!(
            without(Some("email"))
                .unwrap_err()
                .message
                .contains("requires email")
        );
        assert!(without(None).is_ok());
    }

    #[test]
    fn blanks_are_neither_sent_nor_written() {
        assert_eq!(to_remote_text(&json!(2027)).as_deref(), Some("2027"));
        assert_eq!(to_remote_text(&json!(3.75)).as_deref(), Some("3.75"));
        assert_eq!(to_remote_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(to_remote_text(&json!("  ")), None, "blanks are not sent");
        assert_eq!(to_remote_text(&Value::Null), None);
        assert_eq!(from_remote_text(Some(" ")), None, "blanks are not written");
        assert_eq!(from_remote_text(None), None);
        assert_eq!(
            from_remote_text(Some(" UNSET ")),
            Some("UNSET"),
            "UNSET passes through to the contact rules"
        );
    }
}
