//! Field metadata of the emulated objects (Contact, Lead), as `sobjects/{object}/describe`
//! reports it, and the validation of written values against it.

use serde_json::{Map, Value, json};

/// A field's data type, as `describe` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Id,
    String,
    Email,
    Phone,
    Picklist,
    Date,
    DateTime,
    Boolean,
    Reference,
    Textarea,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Picklist => "picklist",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Boolean => "boolean",
            FieldType::Reference => "reference",
            FieldType::Textarea => "textarea",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Boolean => "xsd:boolean",
            _ => "xsd:string",
        }
    }
}

/// One field of an object.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub ty: FieldType,
    pub length: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub external_id: bool,
    pub unique: bool,
    pub custom: bool,
    pub picklist: &'static [&'static str],
    /// Whether the picklist refuses values outside `picklist`.
    pub restricted: bool,
    /// Required on create (not nillable, no default).
    pub required: bool,
}

const fn f(name: &'static str, label: &'static str, ty: FieldType, length: u32) -> Field {
    Field {
        name,
        label,
        ty,
        length,
        nillable: true,
        createable: true,
        updateable: true,
        external_id: false,
        unique: false,
        custom: false,
        picklist: &[],
        restricted: false,
        required: false,
    }
}

const fn system(name: &'static str, label: &'static str, ty: FieldType) -> Field {
    Field {
        nillable: false,
        createable: false,
        updateable: false,
        ..f(name, label, ty, 0)
    }
}

const fn required(field: Field) -> Field {
    Field {
        nillable: false,
        required: true,
        ..field
    }
}

const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];
const SALUTATIONS: &[&str] = &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx."];
const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const ENROLLMENT_STATUSES: &[&str] = &["Prospect", "Applicant", "Admitted", "Enrolled", "Alumni"];

fn common(object: &str) -> Vec<Field> {
    let mut v = vec![
        system(
            "Id",
            if object == "Lead" {
                "Lead ID"
            } else {
                "Contact ID"
            },
            FieldType::Id,
        ),
        system("IsDeleted", "Deleted", FieldType::Boolean),
        f("Salutation", "Salutation", FieldType::Picklist, 40),
        f("FirstName", "First Name", FieldType::String, 40),
        required(f("LastName", "Last Name", FieldType::String, 80)),
        Field {
            createable: false,
            updateable: false,
            nillable: false,
            ..f("Name", "Full Name", FieldType::String, 121)
        },
        f("Email", "Email", FieldType::Email, 80),
        f("Phone", "Phone", FieldType::Phone, 40),
        f("MobilePhone", "Mobile Phone", FieldType::Phone, 40),
        f("Title", "Title", FieldType::String, 128),
        f("LeadSource", "Lead Source", FieldType::Picklist, 255),
        f("Description", "Description", FieldType::Textarea, 32000),
        f("HasOptedOutOfEmail", "Email Opt Out", FieldType::Boolean, 0),
        system("OwnerId", "Owner ID", FieldType::Reference),
        system("CreatedDate", "Created Date", FieldType::DateTime),
        system(
            "LastModifiedDate",
            "Last Modified Date",
            FieldType::DateTime,
        ),
        system("SystemModstamp", "System Modstamp", FieldType::DateTime),
        Field {
            external_id: true,
            unique: true,
            custom: true,
            ..f("Ferry_Id__c", "Ferry ID", FieldType::String, 64)
        },
        Field {
            custom: true,
            picklist: ENROLLMENT_STATUSES,
            restricted: true,
            ..f(
                "Enrollment_Status__c",
                "Enrollment Status",
                FieldType::Picklist,
                255,
            )
        },
        Field {
            custom: true,
            external_id: true,
            ..f("Student_Id__c", "Student ID", FieldType::String, 20)
        },
        Field {
            custom: true,
            ..f("Preferred_Name__c", "Preferred Name", FieldType::String, 80)
        },
    ];
    // Boolean fields are never null.
    for field in &mut v {
        if field.ty == FieldType::Boolean {
            field.nillable = false;
        }
        if field.name == "Salutation" {
            field.picklist = SALUTATIONS;
        }
        if field.name == "LeadSource" {
            field.picklist = LEAD_SOURCES;
        }
        if field.name == "OwnerId" {
            field.createable = true;
            field.updateable = true;
        }
    }
    v
}

/// The fields of `object`, or `None` if the emulator does not have it.
pub(crate) fn fields(object: &str) -> Option<Vec<Field>> {
    match object {
        "Contact" => {
            let mut v = common("Contact");
            v.extend([
                f("HomePhone", "Home Phone", FieldType::Phone, 40),
                f("Birthdate", "Birthdate", FieldType::Date, 0),
                f("MailingStreet", "Mailing Street", FieldType::Textarea, 255),
                f("MailingCity", "Mailing City", FieldType::String, 40),
                f(
                    "MailingState",
                    "Mailing State/Province",
                    FieldType::String,
                    80,
                ),
                f(
                    "MailingPostalCode",
                    "Mailing Zip/Postal Code",
                    FieldType::String,
                    20,
                ),
                f("MailingCountry", "Mailing Country", FieldType::String, 80),
                f("AccountId", "Account ID", FieldType::Reference, 18),
                f("Department", "Department", FieldType::String, 80),
            ]);
            Some(v)
        }
        "Lead" => {
            let mut v = common("Lead");
            v.extend([
                required(f("Company", "Company", FieldType::String, 255)),
                Field {
                    picklist: LEAD_STATUSES,
                    restricted: true,
                    nillable: false,
                    ..f("Status", "Lead Status", FieldType::Picklist, 255)
                },
                f("City", "City", FieldType::String, 40),
                f("State", "State/Province", FieldType::String, 80),
                f("PostalCode", "Zip/Postal Code", FieldType::String, 20),
                f("Country", "Country", FieldType::String, 80),
                system("IsConverted", "Converted", FieldType::Boolean),
            ]);
            Some(v)
        }
        _ => None,
    }
}

/// The 3-character id prefix of `object`.
pub(crate) fn key_prefix(object: &str) -> &'static str {
    match object {
        "Lead" => "00Q",
        _ => "003",
    }
}

/// The objects the emulator serves.
pub(crate) const OBJECTS: [&str; 2] = ["Contact", "Lead"];

fn label_plural(object: &str) -> &'static str {
    match object {
        "Lead" => "Leads",
        _ => "Contacts",
    }
}

/// `urls` of an object, under `/services/data/{version}`.
fn urls(version: &str, object: &str) -> Value {
    let base = format!("/services/data/{version}/sobjects/{object}");
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
    })
}

/// One entry of `GET sobjects` (describeGlobal).
pub(crate) fn global_entry(version: &str, object: &str) -> Value {
    json!({
        "name": object,
        "label": object,
        "labelPlural": label_plural(object),
        "keyPrefix": key_prefix(object),
        "custom": false,
        "createable": true,
        "updateable": true,
        "deletable": true,
        "queryable": true,
        "searchable": true,
        "retrieveable": true,
        "replicateable": true,
        "urls": urls(version, object),
    })
}

fn field_json(field: &Field) -> Value {
    let picklist: Vec<Value> = field
        .picklist
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"active": true, "defaultValue": field.name == "Status" && i == 0,
                   "label": v, "validFor": null, "value": v})
        })
        .collect();
    let defaulted = matches!(field.ty, FieldType::Boolean) || field.name == "Status";
    json!({
        "name": field.name,
        "label": field.label,
        "type": field.ty.name(),
        "soapType": field.ty.soap_type(),
        "length": field.length,
        "byteLength": field.length * 3,
        "nillable": field.nillable,
        "createable": field.createable,
        "updateable": field.updateable,
        "externalId": field.external_id,
        "idLookup": field.external_id || field.name == "Id" || field.name == "Email",
        "unique": field.unique,
        "custom": field.custom,
        "calculated": field.name == "Name",
        "defaultedOnCreate": defaulted || !field.createable,
        "filterable": field.ty != FieldType::Textarea || field.length <= 255,
        "sortable": field.ty != FieldType::Textarea || field.length <= 255,
        "restrictedPicklist": field.restricted,
        "picklistValues": picklist,
        "referenceTo": if field.ty == FieldType::Reference {
            json!([if field.name == "AccountId" { "Account" } else { "User" }])
        } else { json!([]) },
        "relationshipName": null,
        "compoundFieldName": if matches!(field.name, "FirstName" | "LastName" | "Salutation") { json!("Name") } else { Value::Null },
        "extraTypeInfo": if matches!(field.name, "FirstName" | "LastName" | "Salutation") { json!("personname") } else { Value::Null },
        "defaultValue": null,
        "inlineHelpText": null,
    })
}

/// `GET sobjects/{object}/describe`.
pub(crate) fn describe(version: &str, object: &str, fields: &[Field]) -> Value {
    let mut v = global_entry(version, object);
    if let Value::Object(m) = &mut v {
        m.insert(
            "fields".into(),
            Value::Array(fields.iter().map(field_json).collect()),
        );
        m.insert("childRelationships".into(), json!([]));
        m.insert(
            "recordTypeInfos".into(),
            json!([{"active": true, "available": true, "defaultRecordTypeMapping": true,
                    "developerName": "Master", "master": true, "name": "Master",
                    "recordTypeId": "012000000000000AAA"}]),
        );
    }
    v
}

/// A per-field problem with a written value: Salesforce's error code, message and field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl FieldError {
    pub fn new(code: &'static str, message: impl Into<String>, fields: &[&str]) -> FieldError {
        FieldError {
            code,
            message: message.into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A plausible email address, as Salesforce checks them (local@domain.tld, no spaces).
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Checks `values` for a create (`create`) or an update, and normalizes them (text as strings,
/// booleans as booleans, `null` kept). The first problem found is returned.
pub(crate) fn validate(
    object: &str,
    fields: &[Field],
    values: &Map<String, Value>,
    create: bool,
) -> Result<Map<String, Value>, FieldError> {
    let mut out = Map::new();
    for (name, value) in values {
        if name == "attributes" {
            continue;
        }
        let Some(field) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)) else {
            return Err(FieldError::new(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {object}"),
                &[],
            ));
        };
        if field.name == "Id" {
            if create {
                return Err(FieldError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    &[],
                ));
            }
            continue;
        }
        if (create && !field.createable) || (!create && !field.updateable) {
            return Err(FieldError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to {} fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    if create { "create" } else { "update" },
                    field.name
                ),
                &[field.name],
            ));
        }
        let normalized = match value {
            Value::Null => {
                if !field.nillable {
                    return Err(FieldError::new(
                        "REQUIRED_FIELD_MISSING",
                        format!("Required fields are missing: [{}]", field.name),
                        &[field.name],
                    ));
                }
                Value::Null
            }
            Value::Bool(b) if field.ty == FieldType::Boolean => Value::Bool(*b),
            Value::String(s) if field.ty == FieldType::Boolean => match s.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(type_error(field, s)),
            },
            Value::String(s) => check_text(field, s)?,
            Value::Number(n)
                if !matches!(
                    field.ty,
                    FieldType::Boolean | FieldType::Date | FieldType::DateTime
                ) =>
            {
                check_text(field, &n.to_string())?
            }
            other => return Err(type_error(field, &other.to_string())),
        };
        out.insert(field.name.to_string(), normalized);
    }
    if create {
        let missing: Vec<&str> = fields
            .iter()
            .filter(|f| f.required && out.get(f.name).is_none_or(|v| v.is_null() || v == ""))
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return Err(FieldError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
    }
    Ok(out)
}

fn type_error(field: &Field, raw: &str) -> FieldError {
    FieldError::new(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        format!("{}: value not of required type: {raw}", field.label),
        &[field.name],
    )
}

fn check_text(field: &Field, s: &str) -> Result<Value, FieldError> {
    match field.ty {
        FieldType::Email if !s.is_empty() && !valid_email(s) => {
            return Err(FieldError::new(
                "INVALID_EMAIL_ADDRESS",
                format!("{}: invalid email address: {s}", field.label),
                &[field.name],
            ));
        }
        FieldType::Picklist if field.restricted && !field.picklist.contains(&s) => {
            return Err(FieldError::new(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{}: bad value for restricted picklist field: {s}",
                    field.label
                ),
                &[field.name],
            ));
        }
        FieldType::Date if jiff::civil::Date::strptime("%Y-%m-%d", s).is_err() => {
            return Err(type_error(field, s));
        }
        FieldType::DateTime if super::time::parse(s).is_none() => {
            return Err(type_error(field, s));
        }
        FieldType::Reference | FieldType::Id if !s.is_empty() && !super::store::valid_id(s) => {
            return Err(FieldError::new(
                "MALFORMED_ID",
                format!("{}: id value of incorrect type: {s}", field.label),
                &[field.name],
            ));
        }
        _ => {}
    }
    if field.length > 0 && s.chars().count() > field.length as usize {
        return Err(FieldError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {s} (max length={})",
                field.label, field.length
            ),
            &[field.name],
        ));
    }
    if s.is_empty() {
        if !field.nillable {
            return Err(FieldError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", field.name),
                &[field.name],
            ));
        }
        // Salesforce stores an empty string as null.
        return Ok(Value::Null);
    }
    Ok(Value::String(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastname_is_required_on_create_and_not_nillable() {
        let fields = fields("Contact").unwrap();
        let mut m = Map::new();
        m.insert("FirstName".into(), json!("Ana"));
        let e = validate("Contact", &fields, &m, true).unwrap_err();
        assert_eq!(e.code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.fields, vec!["LastName"]);
        let mut m = Map::new();
        m.insert("LastName".into(), Value::Null);
        let e = validate("Contact", &fields, &m, false).unwrap_err();
        assert_eq!(e.code, "REQUIRED_FIELD_MISSING");
    }

    #[test]
    fn bad_email_and_picklist_and_length() {
        let fields = fields("Contact").unwrap();
        for (k, v, code) in [
            ("Email", "not-an-email", "INVALID_EMAIL_ADDRESS"),
            (
                "Enrollment_Status__c",
                "Sleeping",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ),
            ("FirstName", &"x".repeat(41), "STRING_TOO_LONG"),
            ("Nope__c", "1", "INVALID_FIELD"),
            (
                "CreatedDate",
                "2020-01-01T00:00:00Z",
                "INVALID_FIELD_FOR_INSERT_UPDATE",
            ),
            ("Birthdate", "yesterday", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ] {
            let mut m = Map::new();
            m.insert("LastName".into(), json!("Diaz"));
            m.insert(k.into(), json!(v));
            assert_eq!(
                validate("Contact", &fields, &m, true).unwrap_err().code,
                code,
                "{k}"
            );
        }
    }
}
