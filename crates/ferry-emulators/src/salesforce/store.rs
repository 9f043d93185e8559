//! The emulated org's records: ids, writes with Salesforce's checks (duplicate rule, unique
//! external ids), soft deletion, and read access for queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::describe::{self, Field, FieldError};
use super::time;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The 3-character case-safe suffix of a 15-character id.
fn checksum(id15: &[u8]) -> String {
    id15.chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            CHECKSUM[bits] as char
        })
        .collect()
}

/// An 18-character id: key prefix, pod `5e`, reserved `0`, 9 base-62 digits, checksum.
pub(crate) fn make_id(prefix: &str, mut seq: u64) -> String {
    let mut digits = [b'0'; 9];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(seq % 62) as usize];
        seq /= 62;
    }
    let mut id15 = format!("{prefix}5e0");
    id15.push_str(std::str::from_utf8(&digits).unwrap_or("000000000"));
    let sum = checksum(id15.as_bytes());
    id15 + &sum
}

/// Whether `s` is a well-formed 15- or 18-character id (the suffix checked).
pub(crate) fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    match b.len() {
        15 => true,
        18 => checksum(&b[..15]).eq_ignore_ascii_case(&s[15..]),
        _ => false,
    }
}

/// The 18-character form of a valid id.
pub(crate) fn id18(s: &str) -> String {
    if s.len() == 15 {
        format!("{s}{}", checksum(s.as_bytes()))
    } else {
        s.to_string()
    }
}

/// One record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: String,
    pub values: Map<String, Value>,
    pub created_ms: i64,
    pub modstamp_ms: i64,
    pub deleted_ms: Option<i64>,
}

impl Record {
    /// A field's value, the computed ones included (`Null` when unset).
    pub fn get(&self, field: &str) -> Value {
        match field {
            "Id" => Value::String(self.id.clone()),
            "IsDeleted" => Value::Bool(self.deleted_ms.is_some()),
            "CreatedDate" => Value::String(time::format(self.created_ms)),
            "LastModifiedDate" | "SystemModstamp" => Value::String(time::format(self.modstamp_ms)),
            "Name" => {
                let part = |k: &str| self.values.get(k).and_then(Value::as_str).unwrap_or("");
                let name = [part("FirstName"), part("LastName")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                Value::String(name)
            }
            _ => self.values.get(field).cloned().unwrap_or(Value::Null),
        }
    }
}

/// An object's records, by 18-character id (ids grow, so this is creation order).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub object: &'static str,
    pub fields: Vec<Field>,
    pub records: BTreeMap<String, Record>,
    /// Ids of the records (deleted ones too) by (indexed field, ASCII-lowercased value), so
    /// that the unique, duplicate-rule and external-id checks do not scan the table: a scan
    /// per write made a Bulk ingest of N records cost O(N²). Indexed fields: unique, external
    /// ids and `Email`.
    index: HashMap<(&'static str, String), BTreeSet<String>>,
}

impl Table {
    fn indexed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields
            .iter()
            .filter(|f| f.unique || f.external_id || f.name == "Email")
            .map(|f| f.name)
    }

    /// Records (deleted ones too) whose indexed `field` equals `value`, ignoring ASCII case,
    /// in id order.
    fn with_value(&self, field: &str, value: &str) -> impl Iterator<Item = &Record> + '_ {
        let field = self.indexed().find(|f| *f == field);
        field
            .and_then(|f| self.index.get(&(f, value.to_ascii_lowercase())))
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get(id))
    }

    fn index_record(&mut self, id: &str, values: &Map<String, Value>, add: bool) {
        let fields: Vec<&'static str> = self.indexed().collect();
        for f in fields {
            let Some(v) = values.get(f).and_then(Value::as_str) else {
                continue;
            };
            let key = (f, v.to_ascii_lowercase());
            if add {
                self.index.entry(key).or_default().insert(id.to_string());
            } else if let Some(ids) = self.index.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
    }
}

/// How a write failed: per-record errors, or a 300 for an external id with several matches.
#[derive(Debug, Clone)]
pub(crate) enum WriteError {
    Field(FieldError),
    /// Several records have this external id value: their ids.
    Multiple(Vec<String>),
}

impl From<FieldError> for WriteError {
    fn from(e: FieldError) -> Self {
        WriteError::Field(e)
    }
}

/// The org's data.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub tables: BTreeMap<&'static str, Table>,
    seq: u64,
    /// Block creating or updating a record whose email another live record of the object has
    /// (a duplicate rule with the action "Block").
    pub block_duplicate_emails: bool,
    pub owner_id: String,
}

impl Store {
    pub fn new(block_duplicate_emails: bool) -> Store {
        let tables = describe::OBJECTS
            .into_iter()
            .map(|o| {
                (
                    o,
                    Table {
                        object: o,
                        fields: describe::fields(o).unwrap_or_default(),
                        records: BTreeMap::new(),
                        index: HashMap::new(),
                    },
                )
            })
            .collect();
        Store {
            tables,
            seq: 1_000,
            block_duplicate_emails,
            owner_id: make_id("005", 1),
        }
    }

    /// The canonical object name for `name` (case-insensitive).
    pub fn object(&self, name: &str) -> Option<&'static str> {
        describe::OBJECTS
            .into_iter()
            .find(|o| o.eq_ignore_ascii_case(name))
    }

    pub fn table(&self, object: &str) -> &Table {
        &self.tables[object]
    }

    fn next_id(&mut self, object: &str) -> String {
        self.seq += 1;
        make_id(describe::key_prefix(object), self.seq)
    }

    /// The live record `id` of `object`, or Salesforce's error for it.
    pub fn live(&self, object: &str, id: &str) -> Result<&Record, FieldError> {
        let id = self.check_id(object, id)?;
        match self.table(object).records.get(&id) {
            Some(r) if r.deleted_ms.is_none() => Ok(r),
            Some(_) => Err(FieldError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                &[],
            )),
            None => Err(FieldError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
                &[],
            )),
        }
    }

    /// The 18-character id, or `MALFORMED_ID` if it is not an id of `object`.
    pub fn check_id(&self, object: &str, id: &str) -> Result<String, FieldError> {
        if !valid_id(id) || !id.starts_with(describe::key_prefix(object)) {
            return Err(FieldError::new(
                "MALFORMED_ID",
                format!("{object} ID: id value of incorrect type: {id}"),
                &["Id"],
            ));
        }
        Ok(id18(id))
    }

    /// Duplicate-rule and unique-field checks of `values` for record `own` (None: a new one).
    fn check_unique(
        &self,
        object: &str,
        own: Option<&str>,
        values: &Map<String, Value>,
    ) -> Result<(), FieldError> {
        let table = self.table(object);
        for field in table.fields.iter().filter(|f| f.unique) {
            let Some(v) = values.get(field.name).and_then(Value::as_str) else {
                continue;
            };
            if let Some(other) = table
                .with_value(field.name, v)
                .find(|r| r.deleted_ms.is_none() && Some(r.id.as_str()) != own)
            {
                return Err(FieldError::new(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {}",
                        field.name, other.id
                    ),
                    &[field.name],
                ));
            }
        }
        if self.block_duplicate_emails
            && let Some(email) = values.get("Email").and_then(Value::as_str)
            && table
                .with_value("Email", email)
                .any(|r| r.deleted_ms.is_none() && Some(r.id.as_str()) != own)
        {
            return Err(FieldError::new(
                "DUPLICATES_DETECTED",
                "Use one of these records?",
                &[],
            ));
        }
        Ok(())
    }

    fn defaults(&self, object: &str, values: &mut Map<String, Value>) {
        values
            .entry("OwnerId")
            .or_insert_with(|| Value::String(self.owner_id.clone()));
        values
            .entry("HasOptedOutOfEmail")
            .or_insert(Value::Bool(false));
        if object == "Lead" {
            values
                .entry("Status")
                .or_insert_with(|| Value::String("Open - Not Contacted".into()));
            values.insert("IsConverted".into(), Value::Bool(false));
        }
    }

    /// Creates a record.
    pub fn create(
        &mut self,
        object: &str,
        input: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<String, FieldError> {
        let fields = &self.table(object).fields;
        let mut values = describe::validate(object, fields, input, true)?;
        self.check_unique(object, None, &values)?;
        self.defaults(object, &mut values);
        values.retain(|_, v| !v.is_null());
        let id = self.next_id(object);
        self.insert(object, id.clone(), values, now_ms, now_ms, None);
        Ok(id)
    }

    fn insert(
        &mut self,
        object: &str,
        id: String,
        values: Map<String, Value>,
        created_ms: i64,
        modstamp_ms: i64,
        deleted_ms: Option<i64>,
    ) {
        let record = Record {
            id: id.clone(),
            values,
            created_ms,
            modstamp_ms,
            deleted_ms,
        };
        if let Some(t) = self.tables.get_mut(object) {
            t.index_record(&id, &record.values, true);
            t.records.insert(id, record);
        }
    }

    /// Updates a live record; `null` clears a nillable field.
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        input: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<String, FieldError> {
        let id = self.live(object, id)?.id.clone();
        let fields = &self.table(object).fields;
        let values = describe::validate(object, fields, input, false)?;
        self.check_unique(object, Some(&id), &values)?;
        if let Some(t) = self.tables.get_mut(object)
            && let Some(old) = t.records.get(&id).map(|r| r.values.clone())
        {
            t.index_record(&id, &old, false);
            let r = t.records.get_mut(&id).expect("read above");
            for (k, v) in values {
                if v.is_null() {
                    r.values.remove(&k);
                } else {
                    r.values.insert(k, v);
                }
            }
            r.modstamp_ms = now_ms;
            let new = r.values.clone();
            t.index_record(&id, &new, true);
        }
        Ok(id)
    }

    /// Moves a live record to the recycle bin.
    pub fn delete(&mut self, object: &str, id: &str, now_ms: i64) -> Result<(), FieldError> {
        let id = self.live(object, id)?.id.clone();
        if let Some(r) = self
            .tables
            .get_mut(object)
            .and_then(|t| t.records.get_mut(&id))
        {
            r.deleted_ms = Some(now_ms);
            r.modstamp_ms = now_ms;
        }
        Ok(())
    }

    /// The external-id field `name` of `object` (also `Id`), canonically spelled.
    pub fn external_field(&self, object: &str, name: &str) -> Result<&'static str, FieldError> {
        self.table(object)
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name) && (f.external_id || f.name == "Id"))
            .map(|f| f.name)
            .ok_or_else(|| {
                FieldError::new(
                    "NOT_FOUND",
                    format!(
                        "Provided external ID field does not exist or is not accessible: {name}"
                    ),
                    &[],
                )
            })
    }

    /// Live records whose external id `field` is `value` (case-insensitive, as Salesforce
    /// matches text external ids).
    pub fn find_external(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        if field == "Id" {
            return self
                .live(object, value)
                .map(|r| vec![r.id.clone()])
                .unwrap_or_default();
        }
        self.table(object)
            .with_value(field, value)
            .filter(|r| r.deleted_ms.is_none())
            .map(|r| r.id.clone())
            .collect()
    }

    /// Upserts by external id: `(id, created)`.
    pub fn upsert(
        &mut self,
        object: &str,
        field: &str,
        value: &str,
        input: &Map<String, Value>,
        update_only: bool,
        now_ms: i64,
    ) -> Result<(String, bool), WriteError> {
        let field = self.external_field(object, field)?;
        let mut input = input.clone();
        input.remove(field);
        let matches = self.find_external(object, field, value);
        match matches.as_slice() {
            [] if update_only || field == "Id" => {
                Err(
                    FieldError::new("NOT_FOUND", "The requested resource does not exist", &[])
                        .into(),
                )
            }
            [] => {
                input.insert(field.to_string(), Value::String(value.to_string()));
                Ok((self.create(object, &input, now_ms)?, true))
            }
            [one] => {
                let one = one.clone();
                Ok((self.update(object, &one, &input, now_ms)?, false))
            }
            _ => Err(WriteError::Multiple(matches)),
        }
    }

    /// Seeds a record: like a create, but `CreatedDate`, `SystemModstamp` (or
    /// `LastModifiedDate`) and `IsDeleted` may be given and duplicate rules do not apply.
    pub fn seed(
        &mut self,
        object: &str,
        input: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<String, FieldError> {
        let mut input = input.clone();
        let mut take_time = |k: &str| -> Result<Option<i64>, FieldError> {
            match input.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => time::parse(&s).map(Some).ok_or_else(|| {
                    FieldError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{k}: value not of required type: {s}"),
                        &[],
                    )
                }),
                Some(other) => Err(FieldError::new(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    format!("{k}: value not of required type: {other}"),
                    &[],
                )),
            }
        };
        let created = take_time("CreatedDate")?;
        let modstamp = take_time("SystemModstamp")?.or(take_time("LastModifiedDate")?);
        let deleted = input.remove("IsDeleted").and_then(|v| v.as_bool()) == Some(true);
        let fields = &self.table(object).fields;
        let mut values = describe::validate(object, fields, &input, true)?;
        self.defaults(object, &mut values);
        values.retain(|_, v| !v.is_null());
        let created = created.unwrap_or(now_ms);
        let modstamp = modstamp.unwrap_or(created);
        let id = self.next_id(object);
        self.insert(
            object,
            id.clone(),
            values,
            created,
            modstamp,
            deleted.then_some(modstamp),
        );
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_18_characters_with_a_valid_suffix_and_sort_by_creation() {
        let a = make_id("003", 1001);
        let b = make_id("003", 1002);
        let c = make_id("003", 62 * 62 + 5);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("0035e0"));
        assert!(valid_id(&a) && valid_id(&a[..15]));
        assert_eq!(id18(&a[..15]), a);
        assert!(a < b && b < c);
        let mut broken = a.clone();
        broken.replace_range(17..18, if a.ends_with('A') { "B" } else { "A" });
        assert!(!valid_id(&broken));
        assert!(!valid_id("003-not-an-id"));
        // a well-known real id and its suffix
        assert!(valid_id("001D000000IqhSLIAZ"));
    }
}
