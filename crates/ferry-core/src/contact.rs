//! Contacts: the platform's own records, their fields, and the seed's rules for writing them.
//!
//! - `UNSET` (all capitals) clears a custom field or one of the clearable default fields;
//!   on any other field it is an error.
//! - A blank or null value is skipped, never written.
//! - First name, last name and phone are required for a new contact.
//! - Re-importing an archived contact un-archives it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::email::Email;
use crate::phone::Phone;

/// The value that clears a field.
pub const UNSET: &str = "UNSET";

/// The longest default text field (names, IDs), in characters.
pub const MAX_SHORT_TEXT: usize = 255;
/// The longest custom text value, in characters.
pub const MAX_LONG_TEXT: usize = 4_000;

/// The platform ID of a contact (Ferry's own).
pub type ContactId = i64;

crate::string_enum! {
    /// The type of a custom field; values are validated and normalised by it.
    pub enum FieldKind {
        /// Any text, at most [`MAX_LONG_TEXT`] characters.
        Text = "text",
        /// A number; whole numbers are stored as integers.
        Number = "number",
        /// A calendar date, stored `YYYY-MM-DD`.
        Date = "date",
        /// A yes/no value (true/false, yes/no, y/n, 1/0).
        Boolean = "boolean",
        /// An email address, checked by [`Email::parse`].
        Email = "email",
        /// A phone number, stored in E.164.
        Phone = "phone",
    }
}

crate::string_enum! {
    /// The default (built-in) contact fields that can be written.
    pub enum DefaultField {
        /// Required for a new contact; clearable.
        FirstName = "first_name",
        /// Required for a new contact; clearable.
        LastName = "last_name",
        /// The name the contact goes by; clearable.
        PreferredName = "preferred_name",
        /// Required for a new contact; a matching key; clearable.
        Phone = "phone",
        /// The email address; `UNSET` cannot clear it.
        Email = "email",
        /// The institution's student (enrollment) ID; clearable.
        EnrollmentId = "enrollment_id",
        /// The contact's record ID in the CRM: a matching key; clearable.
        CrmId = "crm_id",
        /// Whether the contact agreed to receive SMS.
        OptIn = "opt_in",
        /// Whether this is a test user; integrations ignore test users.
        TestUser = "test_user",
        /// The SMS opt-in status (`opted_in`, `opted_out` or `unknown`); Ferry records when it
        /// last changed. Writing it also sets `opt_in` (true only for `opted_in`).
        SmsOptIn = "sms_opt_in",
        /// The first line of the street address.
        StreetAddress = "street_address",
        /// The second line of the street address (apartment, suite).
        StreetAddress2 = "street_address_2",
        /// The city.
        City = "city",
        /// The state or province, as written (`MA`).
        State = "state",
        /// The ZIP or postal code, as written.
        ZipCode = "zip_code",
        /// The country, as written (an ISO code such as `US` is best).
        Country = "country",
    }
}

crate::string_enum! {
    /// A contact's SMS opt-in status (`unknown` by default).
    #[derive(Default)]
    pub enum SmsOptIn {
        /// The contact agreed to receive SMS.
        OptedIn = "opted_in",
        /// The contact asked to receive no SMS.
        OptedOut = "opted_out",
        /// Nobody said (the default).
        #[default]
        Unknown = "unknown",
    }
}

impl SmsOptIn {
    /// Reads a written status: the three names in any case, with spaces or hyphens for the
    /// underscore (`Opted In`, `opted-out`).
    pub fn parse_loose(s: &str) -> Option<SmsOptIn> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        norm.parse().ok()
    }
}

impl DefaultField {
    /// Whether `UNSET` may clear this field (seed 001's list).
    pub fn clearable(self) -> bool {
        matches!(
            self,
            DefaultField::FirstName
                | DefaultField::LastName
                | DefaultField::PreferredName
                | DefaultField::Phone
                | DefaultField::EnrollmentId
                | DefaultField::CrmId
        )
    }

    /// The address fields, in the order of a postal address.
    pub const ADDRESS: [DefaultField; 6] = [
        DefaultField::StreetAddress,
        DefaultField::StreetAddress2,
        DefaultField::City,
        DefaultField::State,
        DefaultField::ZipCode,
        DefaultField::Country,
    ];

    /// The type a value of this field is checked against (the opt-in status is text checked
    /// against its three values).
    pub fn kind(self) -> FieldKind {
        match self {
            DefaultField::Phone => FieldKind::Phone,
            DefaultField::Email => FieldKind::Email,
            DefaultField::OptIn | DefaultField::TestUser => FieldKind::Boolean,
            _ => FieldKind::Text,
        }
    }

    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            DefaultField::FirstName => "First name",
            DefaultField::LastName => "Last name",
            DefaultField::PreferredName => "Preferred name",
            DefaultField::Phone => "Phone",
            DefaultField::Email => "Email",
            DefaultField::EnrollmentId => "Enrollment ID",
            DefaultField::CrmId => "CRM ID",
            DefaultField::OptIn => "SMS opt-in",
            DefaultField::TestUser => "Test user",
            DefaultField::SmsOptIn => "SMS opt-in status",
            DefaultField::StreetAddress => "Street address",
            DefaultField::StreetAddress2 => "Street address 2",
            DefaultField::City => "City",
            DefaultField::State => "State",
            DefaultField::ZipCode => "Zip code",
            DefaultField::Country => "Country",
        }
    }
}

/// The column or key that carries the platform ID in imports and incoming syncs.
pub const PLATFORM_ID_FIELD: &str = "id";

/// A custom field defined by an institution.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CustomFieldDef {
    /// The key in a contact's `custom` map and in imports; see [`validate_custom_field_name`].
    pub name: String,
    /// What people see, in the dashboard and in exports.
    pub label: String,
    /// What values the field takes; a write is checked against it.
    pub kind: FieldKind,
}

/// Checks a custom field's name: starts with a letter, then letters, digits and underscores, at
/// most 64 characters, and not the name of a default field.
pub fn validate_custom_field_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "{name:?} is not a valid field name: use lower-case letters, digits and underscores, starting with a letter (at most 64)"
        ));
    }
    if name.parse::<DefaultField>().is_ok()
        || name == PLATFORM_ID_FIELD
        || RESERVED_NAMES.contains(&name)
    {
        return Err(format!("{name:?} is the name of a built-in field"));
    }
    Ok(())
}

const RESERVED_NAMES: &[&str] = &[
    "archived",
    "created_at",
    "updated_at",
    "change_seq",
    "custom",
    "institution_id",
];

/// What a write does to one field.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    /// Blank, null or absent: leave the field as it is.
    #[default]
    Keep,
    /// `UNSET`: clear the field.
    Clear,
    /// Write this value.
    Set(T),
}

impl<T> Patch<T> {
    /// The value when the patch writes one; `None` for `Keep` and `Clear`.
    pub fn as_set(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }
    /// Whether the patch leaves the field alone.
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }
}

/// A field-level problem with a value, with a code from the error dictionary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (column, key or property name) the value was for.
    pub field: String,
    /// The error dictionary's code (see [`crate::errors`]).
    pub code: &'static str,
    /// A sentence for people, naming the value and what is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Makes an error for `field` with a dictionary `code`.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            code,
            message: message.into(),
        }
    }
}

/// A value as it arrives, before the field's type is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// JSON `null` or a missing value.
    Null,
    /// Text, as typed or read from a file.
    Str(&'a str),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number.
    Number(f64),
}

impl<'a> Raw<'a> {
    /// Borrows a JSON value; arrays and objects are not field values.
    pub fn from_json(v: &'a Value) -> Result<Raw<'a>, &'static str> {
        Ok(match v {
            Value::Null => Raw::Null,
            Value::String(s) => Raw::Str(s),
            Value::Bool(b) => Raw::Bool(*b),
            Value::Number(n) => Raw::Number(n.as_f64().ok_or("number out of range")?),
            Value::Array(_) | Value::Object(_) => {
                return Err("a list or object is not a field value");
            }
        })
    }
}

/// A parsed, typed write to a contact: what an API call, a CSV row or an incoming sync asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactPatch {
    /// Required for a new contact.
    pub first_name: Patch<String>,
    /// Required for a new contact.
    pub last_name: Patch<String>,
    /// The name the contact goes by, when not the first name.
    pub preferred_name: Patch<String>,
    /// Required for a new contact.
    pub phone: Patch<Phone>,
    /// The email address; `UNSET` cannot clear it.
    pub email: Patch<Email>,
    /// The institution's student (enrollment) ID.
    pub enrollment_id: Patch<String>,
    /// The contact's record ID in the institution's CRM: a matching key.
    pub crm_id: Patch<String>,
    /// Whether the contact agreed to receive SMS.
    pub opt_in: Patch<bool>,
    /// Whether this is a test user; integrations ignore test users (seed 001).
    pub test_user: Patch<bool>,
    /// The SMS opt-in status.
    pub sms_opt_in: Patch<SmsOptIn>,
    /// When the source says the opt-in status changed; `None`: when the write lands.
    pub sms_opt_in_changed_at: Option<jiff::Timestamp>,
    /// Street address, first line.
    pub street_address: Patch<String>,
    /// Street address, second line.
    pub street_address_2: Patch<String>,
    /// City.
    pub city: Patch<String>,
    /// State or province.
    pub state: Patch<String>,
    /// ZIP or postal code.
    pub zip_code: Patch<String>,
    /// Country.
    pub country: Patch<String>,
    /// Custom fields by name, values already normalised to JSON.
    pub custom: BTreeMap<String, Patch<Value>>,
}

/// The custom fields of one institution, by name.
#[derive(Debug, Clone, Default)]
pub struct FieldSchema {
    custom: BTreeMap<String, CustomFieldDef>,
}

impl FieldSchema {
    /// A schema of these definitions; a later one with the same name replaces an earlier one.
    pub fn new(defs: impl IntoIterator<Item = CustomFieldDef>) -> Self {
        FieldSchema {
            custom: defs.into_iter().map(|d| (d.name.clone(), d)).collect(),
        }
    }

    /// The custom field of this name, if the institution defined it.
    pub fn custom(&self, name: &str) -> Option<&CustomFieldDef> {
        self.custom.get(name)
    }

    /// Every custom field, in name order.
    pub fn customs(&self) -> impl Iterator<Item = &CustomFieldDef> {
        self.custom.values()
    }

    /// Resolves a column or key name to the field it writes.
    pub fn resolve(&self, name: &str) -> Option<FieldRef> {
        if name == PLATFORM_ID_FIELD {
            return Some(FieldRef::PlatformId);
        }
        if let Ok(d) = name.parse::<DefaultField>() {
            return Some(FieldRef::Default(d));
        }
        self.custom
            .get(name)
            .map(|d| FieldRef::Custom(d.name.clone(), d.kind))
    }
}

/// A resolved field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// The `id` column or key: Ferry's own contact ID.
    PlatformId,
    /// A built-in field.
    Default(DefaultField),
    /// A custom field, by name, with its type.
    Custom(String, FieldKind),
}

impl FieldRef {
    /// The field's name as files, mappings and filters write it (`id` for the platform ID).
    pub fn name(&self) -> &str {
        match self {
            FieldRef::PlatformId => "id",
            FieldRef::Default(f) => f.as_str(),
            FieldRef::Custom(name, _) => name,
        }
    }
}

impl ContactPatch {
    /// Applies one raw value to the patch, with the seed's blank and `UNSET` rules and the
    /// field's type.
    pub fn set_raw(
        &mut self,
        field: &FieldRef,
        name: &str,
        raw: Raw<'_>,
    ) -> Result<(), FieldError> {
        let (kind, clearable) = match field {
            FieldRef::PlatformId => {
                return Err(FieldError::new(
                    name,
                    "read_only_field",
                    "the platform ID is a match key, not a field to write",
                ));
            }
            FieldRef::Default(d) => (d.kind(), d.clearable()),
            FieldRef::Custom(_, k) => (*k, true),
        };
        if *field == FieldRef::Default(DefaultField::SmsOptIn) {
            return self.set_sms_opt_in(name, raw);
        }
        let typed = match classify(raw) {
            Classified::Skip => return Ok(()),
            Classified::Unset if clearable => Patch::Clear,
            Classified::Unset => {
                return Err(FieldError::new(
                    name,
                    "unset_not_allowed",
                    unset_message(name),
                ));
            }
            Classified::Value(raw) => Patch::Set(parse_typed(
                name,
                kind,
                raw,
                matches!(field, FieldRef::Custom(..)),
            )?),
        };
        match field {
            FieldRef::PlatformId => unreachable!("returned above"),
            FieldRef::Custom(n, _) => {
                self.custom.insert(n.clone(), typed);
            }
            FieldRef::Default(d) => match *d {
                DefaultField::FirstName => self.first_name = typed.map_text(),
                DefaultField::LastName => self.last_name = typed.map_text(),
                DefaultField::PreferredName => self.preferred_name = typed.map_text(),
                DefaultField::EnrollmentId => self.enrollment_id = typed.map_text(),
                DefaultField::CrmId => self.crm_id = typed.map_text(),
                DefaultField::Phone => {
                    self.phone = typed.map_with(|v| Phone::from_trusted(text_of(v)))
                }
                DefaultField::Email => {
                    self.email = typed.map_with(|v| Email::from_trusted(text_of(v)))
                }
                DefaultField::OptIn => {
                    self.opt_in = typed.map_with(|v| v.as_bool().unwrap_or(false))
                }
                DefaultField::TestUser => {
                    self.test_user = typed.map_with(|v| v.as_bool().unwrap_or(false))
                }
                DefaultField::StreetAddress => self.street_address = typed.map_text(),
                DefaultField::StreetAddress2 => self.street_address_2 = typed.map_text(),
                DefaultField::City => self.city = typed.map_text(),
                DefaultField::State => self.state = typed.map_text(),
                DefaultField::ZipCode => self.zip_code = typed.map_text(),
                DefaultField::Country => self.country = typed.map_text(),
                DefaultField::SmsOptIn => unreachable!("handled above"),
            },
        }
        Ok(())
    }

    fn set_sms_opt_in(&mut self, name: &str, raw: Raw<'_>) -> Result<(), FieldError> {
        match classify(raw) {
            Classified::Skip => Ok(()),
            Classified::Unset => Err(FieldError::new(
                name,
                "unset_not_allowed",
                unset_message(name),
            )),
            Classified::Value(raw) => {
                let parsed = match raw {
                    Raw::Str(s) => SmsOptIn::parse_loose(s),
                    _ => None,
                };
                match parsed {
                    Some(v) => {
                        self.sms_opt_in = Patch::Set(v);
                        Ok(())
                    }
                    None => Err(FieldError::new(
                        name,
                        "invalid_opt_in_status",
                        "the SMS opt-in status is opted_in, opted_out or unknown",
                    )),
                }
            }
        }
    }

    /// Whether the patch writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self == &ContactPatch::default()
    }
}

fn unset_message(name: &str) -> String {
    format!(
        "UNSET cannot clear {name}; it clears custom fields, first name, last name, preferred name, phone, enrollment ID and CRM ID"
    )
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Patch<Value> {
    fn map_text(self) -> Patch<String> {
        self.map_with(text_of)
    }
    fn map_with<T>(self, f: impl FnOnce(Value) -> T) -> Patch<T> {
        match self {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)),
        }
    }
}

enum Classified<'a> {
    Skip,
    Unset,
    Value(Raw<'a>),
}

fn classify(raw: Raw<'_>) -> Classified<'_> {
    match raw {
        Raw::Null => Classified::Skip,
        Raw::Str(s) if s.trim().is_empty() => Classified::Skip,
        Raw::Str(s) if s.trim() == UNSET => Classified::Unset,
        other => Classified::Value(other),
    }
}

/// Parses a non-blank value by type into its normalised JSON form.
pub fn parse_typed(
    name: &str,
    kind: FieldKind,
    raw: Raw<'_>,
    custom: bool,
) -> Result<Value, FieldError> {
    let text = |raw: Raw<'_>| -> Result<String, FieldError> {
        match raw {
            Raw::Str(s) => Ok(s.trim().to_string()),
            Raw::Number(n) => Ok(format_number(n)),
            Raw::Bool(b) => Ok(b.to_string()),
            Raw::Null => unreachable!("null is skipped before parsing"),
        }
    };
    match kind {
        FieldKind::Text => {
            let s = text(raw)?;
            let max = if custom {
                MAX_LONG_TEXT
            } else {
                MAX_SHORT_TEXT
            };
            if s.chars().count() > max {
                return Err(FieldError::new(
                    name,
                    "value_too_long",
                    format!("at most {max} characters"),
                ));
            }
            if s.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
            {
                return Err(FieldError::new(
                    name,
                    "invalid_text",
                    "control characters are not allowed",
                ));
            }
            Ok(Value::String(s))
        }
        FieldKind::Phone => {
            let s = text(raw)?;
            crate::phone::Phone::parse(&s)
                .map(|p| Value::String(p.into_string()))
                .map_err(|e| FieldError::new(name, "invalid_phone", e.to_string()))
        }
        FieldKind::Email => {
            let s = text(raw)?;
            Email::parse(&s)
                .map(|e| Value::String(e.as_str().to_string()))
                .map_err(|e| FieldError::new(name, "invalid_email", e.to_string()))
        }
        FieldKind::Boolean => match raw {
            Raw::Bool(b) => Ok(Value::Bool(b)),
            Raw::Number(n) if n == 0.0 || n == 1.0 => Ok(Value::Bool(n == 1.0)),
            Raw::Str(s) => parse_bool(s.trim()).map(Value::Bool).ok_or_else(|| {
                FieldError::new(
                    name,
                    "invalid_boolean",
                    format!("{s:?} is not a yes/no value (use true/false, yes/no, y/n or 1/0)"),
                )
            }),
            _ => Err(FieldError::new(
                name,
                "invalid_boolean",
                "not a yes/no value (use true/false, yes/no, y/n or 1/0)",
            )),
        },
        FieldKind::Number => {
            let n = match raw {
                Raw::Number(n) => n,
                Raw::Str(s) => s.trim().replace(',', "").parse::<f64>().map_err(|_| {
                    FieldError::new(name, "invalid_number", format!("{s:?} is not a number"))
                })?,
                _ => return Err(FieldError::new(name, "invalid_number", "not a number")),
            };
            // Whole numbers stay integers (a graduation year is 2027, not 2027.0).
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                return Ok(Value::Number((n as i64).into()));
            }
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| FieldError::new(name, "invalid_number", "not a finite number"))
        }
        FieldKind::Date => {
            let s = text(raw)?;
            parse_date(&s)
                .map(|d| Value::String(d.to_string()))
                .ok_or_else(|| {
                    FieldError::new(
                        name,
                        "invalid_date",
                        format!("{s:?} is not a date (use YYYY-MM-DD or MM/DD/YYYY)"),
                    )
                })
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "t" => Some(true),
        "false" | "no" | "n" | "0" | "f" => Some(false),
        _ => None,
    }
}

/// Accepts ISO dates (`2026-09-01`) and US dates (`9/1/2026`, `09/01/2026`).
pub fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Some(d);
    }
    let mut parts = s.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// A contact's fields as stored.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ContactData {
    /// Required for a new contact; `None` once an `UNSET` clears it.
    pub first_name: Option<String>,
    /// Required for a new contact; `None` once an `UNSET` clears it.
    pub last_name: Option<String>,
    /// `None` when the contact goes by the first name.
    pub preferred_name: Option<String>,
    /// Required for a new contact; `None` once an `UNSET` clears it.
    pub phone: Option<Phone>,
    /// `None` when the contact has none.
    pub email: Option<Email>,
    /// The institution's student (enrollment) ID; `None` when not known.
    pub enrollment_id: Option<String>,
    /// The contact's record ID in the CRM; `None` until it is matched or written back.
    pub crm_id: Option<String>,
    /// Whether the contact agreed to receive SMS.
    pub opt_in: bool,
    /// Whether this is a test user; integrations ignore test users (seed 001).
    pub test_user: bool,
    /// The SMS opt-in status; `opt_in` is true exactly when it is `opted_in`, once set.
    pub sms_opt_in: SmsOptIn,
    /// When the opt-in status last changed; `None` while it never did.
    pub sms_opt_in_changed_at: Option<jiff::Timestamp>,
    /// Street address, first line.
    pub street_address: Option<String>,
    /// Street address, second line.
    pub street_address_2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or province.
    pub state: Option<String>,
    /// ZIP or postal code.
    pub zip_code: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Archived contacts stay stored; re-importing one un-archives it.
    pub archived: bool,
    /// Custom field values by field name, normalised by the field's type.
    pub custom: BTreeMap<String, Value>,
    /// The fields (by name: `first_name`, a custom field's name, …) that an `UNSET` cleared and
    /// nothing has set since. Outgoing syncs clear these in the CRM; a field that is merely
    /// blank is never sent (seed 002's Tips).
    #[serde(skip)]
    pub cleared: BTreeSet<String>,
}

/// Which fields a write may not change, decided by how the contact was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protected {
    /// Matched by CRM ID and/or phone: those two keys are not rewritten (seed 002).
    pub keys: bool,
}

/// Whether a write should take an archived contact out of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unarchive {
    /// An import or an incoming sync: the seed says it un-archives.
    Yes,
    /// An API edit of fields: leaves the archived flag as it is.
    No,
}

/// Applies one field's patch and keeps the record of `UNSET` fields current.
fn put<T: Clone>(
    slot: &mut Option<T>,
    patch: &Patch<T>,
    name: &str,
    cleared: &mut BTreeSet<String>,
) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => {
            *slot = None;
            if !cleared.contains(name) {
                cleared.insert(name.to_owned());
            }
        }
        Patch::Set(v) => {
            *slot = Some(v.clone());
            cleared.remove(name);
        }
    }
}

impl ContactData {
    /// Builds a new contact from a patch; first name, last name and phone are required.
    pub fn create(patch: &ContactPatch) -> Result<ContactData, FieldError> {
        for (field, ok) in [
            (DefaultField::FirstName, patch.first_name.as_set().is_some()),
            (DefaultField::LastName, patch.last_name.as_set().is_some()),
            (DefaultField::Phone, patch.phone.as_set().is_some()),
        ] {
            if !ok {
                return Err(FieldError::new(
                    field.as_str(),
                    "missing_required_field",
                    format!("{} is required for a new contact", field.label()),
                ));
            }
        }
        let mut data = ContactData::default();
        data.apply(patch, Protected::default(), Unarchive::No);
        Ok(data)
    }

    /// Applies a patch to an existing contact.
    pub fn apply(&mut self, patch: &ContactPatch, protected: Protected, unarchive: Unarchive) {
        use DefaultField as F;
        let cleared = &mut self.cleared;
        put(
            &mut self.first_name,
            &patch.first_name,
            F::FirstName.as_str(),
            cleared,
        );
        put(
            &mut self.last_name,
            &patch.last_name,
            F::LastName.as_str(),
            cleared,
        );
        put(
            &mut self.preferred_name,
            &patch.preferred_name,
            F::PreferredName.as_str(),
            cleared,
        );
        put(&mut self.email, &patch.email, F::Email.as_str(), cleared);
        put(
            &mut self.enrollment_id,
            &patch.enrollment_id,
            F::EnrollmentId.as_str(),
            cleared,
        );
        if !protected.keys {
            put(&mut self.phone, &patch.phone, F::Phone.as_str(), cleared);
            put(&mut self.crm_id, &patch.crm_id, F::CrmId.as_str(), cleared);
        }
        for (slot, p, f) in [
            (
                &mut self.street_address,
                &patch.street_address,
                F::StreetAddress,
            ),
            (
                &mut self.street_address_2,
                &patch.street_address_2,
                F::StreetAddress2,
            ),
            (&mut self.city, &patch.city, F::City),
            (&mut self.state, &patch.state, F::State),
            (&mut self.zip_code, &patch.zip_code, F::ZipCode),
            (&mut self.country, &patch.country, F::Country),
        ] {
            put(slot, p, f.as_str(), cleared);
        }
        // The status and the yes/no `opt_in` stay consistent: the status wins when both come;
        // `opt_in` alone moves the status to opted_in, or from opted_in to opted_out.
        let status = match (patch.sms_opt_in.as_set(), patch.opt_in.as_set()) {
            (Some(s), _) => Some(*s),
            (None, Some(true)) => Some(SmsOptIn::OptedIn),
            (None, Some(false)) if self.sms_opt_in == SmsOptIn::OptedIn => Some(SmsOptIn::OptedOut),
            (None, Some(false)) => None,
            (None, None) => None,
        };
        if let Some(s) = status
            && s != self.sms_opt_in
        {
            self.sms_opt_in = s;
            self.sms_opt_in_changed_at = patch.sms_opt_in_changed_at;
        }
        if let Some(s) = patch.sms_opt_in.as_set() {
            self.opt_in = *s == SmsOptIn::OptedIn;
        } else if let Patch::Set(v) = patch.opt_in {
            self.opt_in = v;
        }
        if let Patch::Set(v) = patch.test_user {
            self.test_user = v;
        }
        for (name, p) in patch
            .custom
            .iter()
            .filter(|(_, p)| !matches!(p, Patch::Keep))
        {
            let mut slot = self.custom.remove(name);
            put(&mut slot, p, name, &mut self.cleared);
            if let Some(v) = slot {
                self.custom.insert(name.clone(), v);
            }
        }
        if unarchive == Unarchive::Yes {
            self.archived = false;
        }
    }

    /// Records when the opt-in status changed, for a write that did not say: `before` is the
    /// status before the write (`None` for a new contact, whose status changed if it is not
    /// `unknown`).
    pub fn stamp_opt_in_change(&mut self, before: Option<SmsOptIn>, now: jiff::Timestamp) {
        let changed = match before {
            Some(b) => b != self.sms_opt_in,
            None => self.sms_opt_in != SmsOptIn::Unknown,
        };
        if changed && self.sms_opt_in_changed_at.is_none() {
            self.sms_opt_in_changed_at = Some(now);
        }
    }

    /// The name to show: preferred name, else first name, with the last name.
    pub fn display_name(&self) -> String {
        let first = self
            .preferred_name
            .as_deref()
            .or(self.first_name.as_deref())
            .unwrap_or("");
        let last = self.last_name.as_deref().unwrap_or("");
        let name = format!("{first} {last}");
        let name = name.trim();
        if name.is_empty() {
            "(no name)".to_string()
        } else {
            name.to_string()
        }
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Contact {
    /// The platform ID.
    pub id: ContactId,
    /// The institution it belongs to.
    pub institution_id: i64,
    /// The fields, as stored.
    #[serde(flatten)]
    pub data: ContactData,
    /// Where this contact's last change sits in its institution's sequence of changes: outgoing
    /// syncs read the contacts changed after a watermark in this order.
    pub change_seq: i64,
    /// When the contact was first written.
    pub created_at: jiff::Timestamp,
    /// When any field last changed.
    pub updated_at: jiff::Timestamp,
}

impl Contact {
    /// Whether an `UNSET` cleared this field and nothing has set it since.
    pub fn was_cleared(&self, field: &FieldRef) -> bool {
        *field != FieldRef::PlatformId && self.data.cleared.contains(field.name())
    }

    /// A field's value as JSON: text and E.164 phones as strings, booleans, custom values as
    /// stored; `Null` when empty.
    pub fn value_of(&self, field: &FieldRef) -> Value {
        let d = &self.data;
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        match field {
            FieldRef::PlatformId => Value::from(self.id),
            FieldRef::Custom(name, _) => d.custom.get(name).cloned().unwrap_or(Value::Null),
            FieldRef::Default(f) => match f {
                DefaultField::FirstName => text(&d.first_name),
                DefaultField::LastName => text(&d.last_name),
                DefaultField::PreferredName => text(&d.preferred_name),
                DefaultField::Phone => d.phone.as_ref().map_or(Value::Null, |p| p.as_str().into()),
                DefaultField::Email => d.email.as_ref().map_or(Value::Null, |e| e.as_str().into()),
                DefaultField::EnrollmentId => text(&d.enrollment_id),
                DefaultField::CrmId => text(&d.crm_id),
                DefaultField::OptIn => Value::Bool(d.opt_in),
                DefaultField::TestUser => Value::Bool(d.test_user),
                DefaultField::SmsOptIn => Value::String(d.sms_opt_in.as_str().into()),
                DefaultField::StreetAddress => text(&d.street_address),
                DefaultField::StreetAddress2 => text(&d.street_address_2),
                DefaultField::City => text(&d.city),
                DefaultField::State => text(&d.state),
                DefaultField::ZipCode => text(&d.zip_code),
                DefaultField::Country => text(&d.country),
            },
        }
    }
}

/// A value as the text a file or a filter compares: strings as they are, other JSON as written,
/// `Null` as empty.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A write to one contact, addressed by platform ID or found by matching.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactWrite {
    /// The platform ID, when the source names it (a guaranteed match).
    pub platform_id: Option<ContactId>,
    /// What to write.
    pub patch: ContactPatch,
}

impl ContactWrite {
    /// Parses named raw values (a CSV row, a JSON object, a mapped CRM record).
    /// Unknown names are refused; every field error is returned, not just the first.
    pub fn parse<'a>(
        schema: &FieldSchema,
        values: impl IntoIterator<Item = (&'a str, Raw<'a>)>,
    ) -> Result<ContactWrite, Vec<FieldError>> {
        let mut write = ContactWrite::default();
        let mut errors = Vec::new();
        for (name, raw) in values {
            match schema.resolve(name) {
                None => errors.push(FieldError::new(
                    name,
                    "unknown_field",
                    format!("{name:?} is not a contact field"),
                )),
                Some(FieldRef::PlatformId) => match classify(raw) {
                    Classified::Skip => {}
                    Classified::Unset => errors.push(FieldError::new(
                        name,
                        "unset_not_allowed",
                        "UNSET cannot clear the platform ID",
                    )),
                    Classified::Value(v) => match parse_platform_id(v) {
                        Some(id) => write.platform_id = Some(id),
                        None => errors.push(FieldError::new(
                            name,
                            "invalid_platform_id",
                            "the platform ID is a positive whole number",
                        )),
                    },
                },
                Some(field) => {
                    if let Err(e) = write.patch.set_raw(&field, name, raw) {
                        errors.push(e);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(write)
        } else {
            Err(errors)
        }
    }
}

fn parse_platform_id(raw: Raw<'_>) -> Option<ContactId> {
    match raw {
        Raw::Str(s) => s.trim().parse::<i64>().ok(),
        Raw::Number(n) if n.fract() == 0.0 => Some(n as i64),
        _ => None,
    }
    .filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> FieldSchema {
        FieldSchema::new([
            CustomFieldDef {
                name: "gpa".into(),
                label: "GPA".into(),
                kind: FieldKind::Number,
            },
            CustomFieldDef {
                name: "start_date".into(),
                label: "Start".into(),
                kind: FieldKind::Date,
            },
            CustomFieldDef {
                name: "athlete".into(),
                label: "Athlete".into(),
                kind: FieldKind::Boolean,
            },
            CustomFieldDef {
                name: "parent_email".into(),
                label: "Parent email".into(),
                kind: FieldKind::Email,
            },
            CustomFieldDef {
                name: "major".into(),
                label: "Major".into(),
                kind: FieldKind::Text,
            },
        ])
    }

    fn parse(pairs: &[(&'static str, &'static str)]) -> Result<ContactWrite, Vec<FieldError>> {
        ContactWrite::parse(&schema(), pairs.iter().map(|(k, v)| (*k, Raw::Str(v))))
    }

    #[test]
    fn blank_and_null_values_are_skipped() {
        let w = parse(&[("first_name", "  "), ("gpa", ""), ("phone", "")]).unwrap();
        assert!(w.patch.is_empty());
        let w = ContactWrite::parse(&schema(), [("last_name", Raw::Null)]).unwrap();
        assert!(w.patch.is_empty());
    }

    #[test]
    fn unset_clears_custom_and_the_listed_default_fields() {
        let w = parse(&[
            ("first_name", "UNSET"),
            ("last_name", "UNSET"),
            ("preferred_name", "UNSET"),
            ("phone", "UNSET"),
            ("enrollment_id", "UNSET"),
            ("crm_id", "UNSET"),
            ("gpa", "UNSET"),
            ("major", "UNSET"),
        ])
        .unwrap();
        assert_eq!(w.patch.first_name, Patch::Clear);
        assert_eq!(w.patch.phone, Patch::Clear);
        assert_eq!(w.patch.crm_id, Patch::Clear);
        assert_eq!(w.patch.custom["gpa"], Patch::Clear);
        let mut data = ContactData {
            first_name: Some("A".into()),
            phone: Some(Phone::parse("6175550101").unwrap()),
            crm_id: Some("x".into()),
            ..Default::default()
        };
        data.custom.insert("gpa".into(), serde_json::json!(3.5));
        data.apply(&w.patch, Protected::default(), Unarchive::No);
        assert_eq!(data.first_name, None);
        assert_eq!(data.phone, None);
        assert_eq!(data.crm_id, None);
        assert!(data.custom.is_empty());
        // The clearing is remembered (outgoing syncs clear the CRM's value) until a value comes.
        let names: Vec<&str> = data.cleared.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "crm_id",
                "enrollment_id",
                "first_name",
                "gpa",
                "last_name",
                "major",
                "phone",
                "preferred_name"
            ]
        );
        let w = parse(&[("first_name", "B"), ("gpa", "3.9"), ("major", "")]).unwrap();
        data.apply(&w.patch, Protected::default(), Unarchive::No);
        assert!(!data.cleared.contains("first_name") && !data.cleared.contains("gpa"));
        assert!(data.cleared.contains("major"), "a blank is not a value");
    }

    #[test]
    fn unset_elsewhere_is_an_error() {
        for field in ["email", "opt_in", "test_user", "id"] {
            let errs = parse(&[(field, "UNSET")]).unwrap_err();
            assert_eq!(errs[0].code, "unset_not_allowed", "{field}");
            assert_eq!(errs[0].field, field);
        }
    }

    #[test]
    fn lower_case_unset_is_a_value() {
        let w = parse(&[("first_name", "unset")]).unwrap();
        assert_eq!(w.patch.first_name, Patch::Set("unset".into()));
    }

    #[test]
    fn values_are_typed() {
        let w = parse(&[
            ("gpa", "3.75"),
            ("start_date", "9/1/2026"),
            ("athlete", "Yes"),
            ("parent_email", "P@Example.com"),
            ("phone", "(617) 555-0101"),
            ("opt_in", "true"),
        ])
        .unwrap();
        assert_eq!(w.patch.custom["gpa"], Patch::Set(serde_json::json!(3.75)));
        let whole = parse(&[("gpa", "4")]).unwrap();
        assert_eq!(
            whole.patch.custom["gpa"],
            Patch::Set(serde_json::json!(4)),
            "whole numbers stay integers"
        );
        assert_eq!(
            w.patch.custom["start_date"],
            Patch::Set(serde_json::json!("2026-09-01"))
        );
        assert_eq!(
            w.patch.custom["athlete"],
            Patch::Set(serde_json::json!(true))
        );
        assert_eq!(
            w.patch.custom["parent_email"],
            Patch::Set(serde_json::json!("P@example.com"))
        );
        assert_eq!(w.patch.phone.as_set().unwrap().as_str(), "+16175550101");
        assert_eq!(w.patch.opt_in, Patch::Set(true));
    }

    #[test]
    fn every_bad_value_is_reported_with_its_field() {
        let errs = parse(&[
            ("gpa", "high"),
            ("start_date", "tomorrow"),
            ("athlete", "maybe"),
            ("parent_email", "nope"),
            ("phone", "12"),
            ("email", "x@"),
            ("favourite_colour", "blue"),
            ("id", "abc"),
        ])
        .unwrap_err();
        let codes: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            codes,
            vec![
                ("gpa", "invalid_number"),
                ("start_date", "invalid_date"),
                ("athlete", "invalid_boolean"),
                ("parent_email", "invalid_email"),
                ("phone", "invalid_phone"),
                ("email", "invalid_email"),
                ("favourite_colour", "unknown_field"),
                ("id", "invalid_platform_id"),
            ]
        );
    }

    #[test]
    fn new_contacts_need_first_last_and_phone() {
        let w = parse(&[("first_name", "Ana"), ("last_name", "Diaz")]).unwrap();
        let e = ContactData::create(&w.patch).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("phone", "missing_required_field")
        );
        let w = parse(&[
            ("first_name", "Ana"),
            ("last_name", "UNSET"),
            ("phone", "6175550101"),
        ])
        .unwrap();
        assert_eq!(
            ContactData::create(&w.patch).unwrap_err().field,
            "last_name"
        );
        let w = parse(&[
            ("first_name", "Ana"),
            ("last_name", "Diaz"),
            ("phone", "6175550101"),
        ])
        .unwrap();
        let c = ContactData::create(&w.patch).unwrap();
        assert_eq!(c.display_name(), "Ana Diaz");
        assert!(!c.archived);
    }

    #[test]
    fn reimport_unarchives_but_an_edit_does_not() {
        let w = parse(&[("major", "Biology")]).unwrap();
        let mut c = ContactData {
            archived: true,
            ..Default::default()
        };
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        assert!(c.archived);
        c.apply(&w.patch, Protected::default(), Unarchive::Yes);
        assert!(!c.archived);
    }

    #[test]
    fn protected_keys_are_not_rewritten() {
        let w = parse(&[
            ("crm_id", "NEW"),
            ("phone", "6175550199"),
            ("first_name", "B"),
        ])
        .unwrap();
        let mut c = ContactData {
            crm_id: Some("OLD".into()),
            phone: Some(Phone::parse("6175550101").unwrap()),
            ..Default::default()
        };
        c.apply(&w.patch, Protected { keys: true }, Unarchive::Yes);
        assert_eq!(c.crm_id.as_deref(), Some("OLD"));
        assert_eq!(c.phone.as_ref().unwrap().as_str(), "+16175550101");
        assert_eq!(c.first_name.as_deref(), Some("B"));
    }

    #[test]
    fn address_fields_follow_the_blank_rule_and_refuse_unset() {
        let w = parse(&[
            ("street_address", " 12 Main St "),
            ("street_address_2", ""),
            ("city", "Boston"),
            ("state", "MA"),
            ("zip_code", "02139"),
            ("country", "US"),
        ])
        .unwrap();
        let mut c = ContactData::default();
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        assert_eq!(c.street_address.as_deref(), Some("12 Main St"));
        assert_eq!(c.street_address_2, None, "blank is skipped");
        assert_eq!(c.zip_code.as_deref(), Some("02139"), "kept as text");
        let city = FieldRef::Default(DefaultField::City);
        let contact = Contact {
            id: 1,
            institution_id: 1,
            data: c,
            change_seq: 1,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(contact.value_of(&city), serde_json::json!("Boston"));
        for f in DefaultField::ADDRESS {
            let errs = parse(&[(f.as_str(), "UNSET")]).unwrap_err();
            assert_eq!(errs[0].code, "unset_not_allowed", "{f}");
        }
    }

    #[test]
    fn the_opt_in_status_keeps_opt_in_consistent_and_knows_when_it_changed() {
        let w = parse(&[("sms_opt_in", "Opted In")]).unwrap();
        assert_eq!(w.patch.sms_opt_in, Patch::Set(SmsOptIn::OptedIn));
        let mut c = ContactData::default();
        assert_eq!(c.sms_opt_in, SmsOptIn::Unknown);
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        assert!(c.opt_in);
        let t1: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        c.stamp_opt_in_change(Some(SmsOptIn::Unknown), t1);
        assert_eq!(c.sms_opt_in_changed_at, Some(t1));
        // The same status again changes nothing, not even the time.
        let before = c.clone();
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        c.stamp_opt_in_change(
            Some(before.sms_opt_in),
            t1 + jiff::SignedDuration::from_hours(1),
        );
        assert_eq!(c, before);
        // opt_in=false from opted_in is an opt-out; from unknown it stays unknown.
        let w = parse(&[("opt_in", "false")]).unwrap();
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        assert_eq!((c.sms_opt_in, c.opt_in), (SmsOptIn::OptedOut, false));
        assert_eq!(c.sms_opt_in_changed_at, None, "to be stamped by the store");
        let mut fresh = ContactData::default();
        fresh.apply(&w.patch, Protected::default(), Unarchive::No);
        assert_eq!(fresh.sms_opt_in, SmsOptIn::Unknown);
        // A time the source gives is kept.
        let mut w = parse(&[("sms_opt_in", "opted_in")]).unwrap();
        w.patch.sms_opt_in_changed_at = Some(t1);
        c.apply(&w.patch, Protected::default(), Unarchive::No);
        assert_eq!(c.sms_opt_in_changed_at, Some(t1));
        for bad in ["maybe", "UNSET"] {
            let errs = parse(&[("sms_opt_in", bad)]).unwrap_err();
            assert!(
                ["invalid_opt_in_status", "unset_not_allowed"].contains(&errs[0].code),
                "{bad}"
            );
        }
        assert!(parse(&[("sms_opt_in", "")]).unwrap().patch.is_empty());
    }

    #[test]
    fn custom_field_names() {
        assert!(validate_custom_field_name("graduation_year").is_ok());
        for bad in ["", "Grad", "1st", "first_name", "id", "archived", "a-b"] {
            assert!(validate_custom_field_name(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(name in "[a-z_]{1,12}", value in ".{0,40}") {
            let _ = ContactWrite::parse(&schema(), [(name.as_str(), Raw::Str(&value))]);
        }

        #[test]
        fn blank_strings_always_skip(ws in "[ \t]{0,5}") {
            let w = ContactWrite::parse(&schema(), [("first_name", Raw::Str(&ws)), ("gpa", Raw::Str(&ws))]).unwrap();
            proptest::prop_assert!(w.patch.is_empty());
        }
    }
}
