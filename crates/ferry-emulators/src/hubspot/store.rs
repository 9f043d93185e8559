//! The emulated account's contacts and property definitions, and the write rules: values by
//! type, unique email (case-insensitive), maintained `hs_object_id`/`createdate`/
//! `lastmodifieddate`, archiving, and delayed search visibility.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::properties::{PropError, PropertyDef, default_properties, normalize};
use super::time::{iso, ms_to_ts};
use crate::rng::Rng;

/// Properties computed by the emulator, present on every contact.
pub(crate) const ALWAYS: [&str; 3] = ["createdate", "hs_object_id", "lastmodifieddate"];

/// What reads return when no `properties` are asked for.
pub(crate) const DEFAULT_READ: [&str; 6] = [
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub id: u64,
    /// Stored values (never empty strings); not the computed `ALWAYS` properties.
    pub props: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived_ms: Option<i64>,
    /// What search sees until `.0` (ms): `None` = not yet indexed.
    pub search_view: Option<(i64, Option<Box<Contact>>)>,
}

impl Contact {
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "hs_object_id" => Some(Cow::Owned(self.id.to_string())),
            "createdate" => Some(Cow::Owned(iso(ms_to_ts(self.created_ms)))),
            "lastmodifieddate" => Some(Cow::Owned(iso(ms_to_ts(self.updated_ms)))),
            _ => self.props.get(name).map(|s| Cow::Borrowed(s.as_str())),
        }
    }

    pub fn archived(&self) -> bool {
        self.archived_ms.is_some()
    }

    /// The version search sees at `now_ms`, if any.
    pub fn searchable(&self, now_ms: i64) -> Option<&Contact> {
        match &self.search_view {
            Some((visible_ms, snapshot)) if now_ms < *visible_ms => snapshot.as_deref(),
            _ => Some(self),
        }
    }

    /// Renders the `SimplePublicObject` JSON with the selected properties.
    pub fn render(&self, names: &[&str]) -> Value {
        let mut props = Map::new();
        for name in names {
            props.insert(
                (*name).to_string(),
                self.get(name)
                    .map_or(Value::Null, |v| Value::String(v.into_owned())),
            );
        }
        let mut v = json!({
            "id": self.id.to_string(),
            "properties": props,
            "createdAt": iso(ms_to_ts(self.created_ms)),
            "updatedAt": iso(ms_to_ts(self.updated_ms)),
            "archived": self.archived(),
        });
        if let Some(ms) = self.archived_ms {
            v["archivedAt"] = json!(iso(ms_to_ts(ms)));
        }
        v
    }
}

/// A validated set of property changes: `None` clears.
pub(crate) type Changes = Vec<(String, Option<String>)>;

#[derive(Debug)]
pub(crate) struct Store {
    pub contacts: BTreeMap<u64, Contact>,
    /// unique property -> lowercased value -> id, over live (not archived) contacts.
    unique: HashMap<String, HashMap<String, u64>>,
    pub properties: Vec<PropertyDef>,
    next_id: u64,
    id_rng: Rng,
}

impl Store {
    pub fn new(first_id: u64, id_seed: u64, now_ms: i64) -> Store {
        Store {
            contacts: BTreeMap::new(),
            unique: HashMap::new(),
            properties: default_properties(ms_to_ts(now_ms)),
            next_id: first_id,
            id_rng: Rng::new(id_seed),
        }
    }

    pub fn def(&self, name: &str) -> Option<&PropertyDef> {
        self.properties.iter().find(|d| d.name == name)
    }

    /// Email is unique by HubSpot's rules although its definition says `hasUniqueValue: false`;
    /// custom properties are unique when created with `hasUniqueValue`.
    pub fn is_unique(&self, name: &str) -> bool {
        name == "email" || self.def(name).is_some_and(|d| d.has_unique_value)
    }

    /// Resolves a path/batch id: a record id, or a unique property's value with `idProperty`.
    /// Only live contacts unless `archived`.
    pub fn resolve(
        &self,
        id: &str,
        id_property: Option<&str>,
        archived: bool,
    ) -> Result<Option<u64>, ApiError> {
        match id_property {
            None | Some("hs_object_id") => Ok(id.parse::<u64>().ok().filter(|n| {
                self.contacts
                    .get(n)
                    .is_some_and(|c| c.archived() == archived)
            })),
            Some(p) if self.is_unique(p) => {
                if archived {
                    let value = id.trim().to_lowercase();
                    Ok(self
                        .contacts
                        .values()
                        .find(|c| {
                            c.archived()
                                && c.props.get(p).is_some_and(|v| v.to_lowercase() == value)
                        })
                        .map(|c| c.id))
                } else {
                    Ok(self
                        .unique
                        .get(p)
                        .and_then(|m| m.get(&id.trim().to_lowercase()))
                        .copied())
                }
            }
            Some(p) if self.def(p).is_some() => Err(ApiError::validation(format!(
                "{p} is not a unique property; idProperty must name a property with unique values"
            ))),
            Some(p) => Err(ApiError::validation(format!(
                "Unable to find property {p} for object type contacts"
            ))),
        }
    }

    /// Checks every input value against its definition.
    pub fn validate(&self, input: &Map<String, Value>) -> Result<Changes, Vec<PropError>> {
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for (name, raw) in input {
            match self.def(name) {
                None => errors.push(PropError::doesnt_exist(name)),
                Some(def) => match normalize(def, raw) {
                    Ok(v) => changes.push((name.clone(), v)),
                    Err(e) => errors.push(e),
                },
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    /// The first existing live contact (other than `own`) that already holds a unique value
    /// the changes would set.
    pub fn conflict(&self, changes: &Changes, own: Option<u64>) -> Option<u64> {
        changes.iter().find_map(|(name, value)| {
            let value = value.as_ref()?;
            let existing = *self.unique.get(name)?.get(&value.to_lowercase())?;
            (Some(existing) != own).then_some(existing)
        })
    }

    fn index(&mut self, name: &str, value: &str, id: u64) {
        if self.is_unique(name) {
            self.unique
                .entry(name.to_string())
                .or_default()
                .insert(value.to_lowercase(), id);
        }
    }

    fn unindex(&mut self, name: &str, value: &str, id: u64) {
        if let Some(m) = self.unique.get_mut(name)
            && m.get(&value.to_lowercase()) == Some(&id)
        {
            m.remove(&value.to_lowercase());
        }
    }

    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1 + self.id_rng.next_u64() % 37;
        id
    }

    /// Creates a contact (conflicts must have been checked).
    pub fn insert(&mut self, changes: Changes, now_ms: i64, search_delay_ms: i64) -> u64 {
        self.insert_with(changes, now_ms, search_delay_ms, true)
    }

    /// `index: false` for contacts created archived: their unique values are not taken.
    fn insert_with(
        &mut self,
        changes: Changes,
        now_ms: i64,
        search_delay_ms: i64,
        index: bool,
    ) -> u64 {
        let id = self.allocate_id();
        let mut c = Contact {
            id,
            props: BTreeMap::new(),
            created_ms: now_ms,
            updated_ms: now_ms,
            archived_ms: None,
            search_view: (search_delay_ms > 0).then_some((now_ms + search_delay_ms, None)),
        };
        for (name, value) in changes {
            if let Some(v) = value {
                if name == "createdate" {
                    c.created_ms = super::properties::parse_date_ms(&v).unwrap_or(now_ms);
                } else {
                    if index {
                        self.index(&name, &v, id);
                    }
                    c.props.insert(name, v);
                }
            }
        }
        self.contacts.insert(id, c);
        id
    }

    /// Applies changes to a live contact; `lastmodifieddate` moves forward on every write.
    pub fn update(&mut self, id: u64, changes: Changes, now_ms: i64, search_delay_ms: i64) {
        let Some(mut c) = self.contacts.remove(&id) else {
            return;
        };
        remember_for_search(&mut c, now_ms, search_delay_ms);
        for (name, value) in changes {
            if name == "createdate" {
                if let Some(v) = value {
                    c.created_ms = super::properties::parse_date_ms(&v).unwrap_or(c.created_ms);
                }
                continue;
            }
            if let Some(old) = c.props.remove(&name) {
                self.unindex(&name, &old, id);
            }
            if let Some(v) = value {
                self.index(&name, &v, id);
                c.props.insert(name, v);
            }
        }
        c.updated_ms = now_ms.max(c.updated_ms + 1);
        self.contacts.insert(id, c);
    }

    /// Archives a live contact; its unique values are freed.
    pub fn archive(&mut self, id: u64, now_ms: i64, search_delay_ms: i64) {
        let Some(mut c) = self.contacts.remove(&id) else {
            return;
        };
        if c.archived() {
            self.contacts.insert(id, c);
            return;
        }
        remember_for_search(&mut c, now_ms, search_delay_ms);
        let props: Vec<(String, String)> = c
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in props {
            self.unindex(&k, &v, id);
        }
        c.archived_ms = Some(now_ms);
        c.updated_ms = now_ms.max(c.updated_ms + 1);
        self.contacts.insert(id, c);
    }

    /// Seeds a contact with explicit timestamps (admin API); values are validated like writes.
    pub fn seed(
        &mut self,
        input: &Map<String, Value>,
        created_ms: Option<i64>,
        updated_ms: Option<i64>,
        archived: bool,
        now_ms: i64,
    ) -> Result<u64, ApiError> {
        let mut input = input.clone();
        // Seeding may set the computed dates directly.
        let forced_updated = match input.remove("lastmodifieddate") {
            Some(Value::String(s)) => super::properties::parse_date_ms(&s),
            _ => None,
        };
        let changes = self
            .validate(&input)
            .map_err(|e| super::properties::property_errors(&e))?;
        if !archived && let Some(existing) = self.conflict(&changes, None) {
            return Err(ApiError::contact_exists(existing));
        }
        let id = self.insert_with(changes, now_ms, 0, !archived);
        let c = self.contacts.get_mut(&id).expect("just inserted");
        if let Some(ms) = created_ms {
            c.created_ms = ms;
        }
        c.updated_ms = updated_ms
            .or(forced_updated)
            .unwrap_or(c.created_ms.max(now_ms));
        if c.updated_ms < c.created_ms {
            c.created_ms = c.updated_ms;
        }
        if archived {
            c.archived_ms = Some(c.updated_ms);
        }
        Ok(id)
    }

    pub fn add_property(&mut self, def: PropertyDef) -> Result<&PropertyDef, ApiError> {
        if self.def(&def.name).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("Property named '{}' already exists.", def.name),
            ));
        }
        let name = def.name.clone();
        self.properties.push(def);
        if self.is_unique(&name) {
            let values: Vec<(String, u64)> = self
                .contacts
                .values()
                .filter(|c| !c.archived())
                .filter_map(|c| c.props.get(&name).map(|v| (v.clone(), c.id)))
                .collect();
            for (v, id) in values {
                self.index(&name, &v, id);
            }
        }
        Ok(self.properties.last().expect("just pushed"))
    }

    /// Property names to render: the requested ones that exist (unknown names are ignored, as
    /// HubSpot documents) plus the computed ones; the default set when none are requested.
    pub fn select<'a>(&self, requested: &'a [String]) -> Vec<&'a str> {
        if requested.is_empty() {
            return DEFAULT_READ.to_vec();
        }
        let mut names: Vec<&str> = ALWAYS.to_vec();
        for r in requested {
            if self.def(r).is_some() && !names.contains(&r.as_str()) {
                names.push(r.as_str());
            }
        }
        names
    }
}

fn remember_for_search(c: &mut Contact, now_ms: i64, search_delay_ms: i64) {
    if search_delay_ms <= 0 {
        c.search_view = None;
        return;
    }
    let visible_ms = now_ms + search_delay_ms;
    match &mut c.search_view {
        // Still showing an older version: keep it, the index catches up after the last write.
        Some((until, _)) if now_ms < *until => *until = visible_ms,
        _ => {
            let mut snapshot = c.clone();
            snapshot.search_view = None;
            c.search_view = Some((visible_ms, Some(Box::new(snapshot))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn unique_email_is_case_insensitive_and_freed_by_archive() {
        let mut s = Store::new(100, 1, 1_000);
        let ch = s.validate(&input(json!({"email": "A@x.org"}))).unwrap();
        let id = s.insert(ch, 1_000, 0);
        let again = s.validate(&input(json!({"email": "a@X.org"}))).unwrap();
        assert_eq!(s.conflict(&again, None), Some(id));
        assert_eq!(s.conflict(&again, Some(id)), None);
        assert_eq!(
            s.resolve("A@X.ORG", Some("email"), false).unwrap(),
            Some(id)
        );
        s.archive(id, 2_000, 0);
        assert_eq!(s.conflict(&again, None), None);
        assert_eq!(s.resolve(&id.to_string(), None, false).unwrap(), None);
        assert_eq!(s.resolve(&id.to_string(), None, true).unwrap(), Some(id));
    }

    #[test]
    fn an_archived_seed_does_not_take_a_live_contacts_email() {
        let mut s = Store::new(100, 1, 0);
        let live = s
            .seed(&input(json!({"email": "a@x.org"})), None, None, false, 0)
            .unwrap();
        let gone = s
            .seed(&input(json!({"email": "a@x.org"})), None, None, true, 0)
            .unwrap();
        assert_ne!(live, gone);
        assert_eq!(
            s.resolve("a@x.org", Some("email"), false).unwrap(),
            Some(live)
        );
        assert_eq!(
            s.resolve("a@x.org", Some("email"), true).unwrap(),
            Some(gone)
        );
    }

    #[test]
    fn lastmodifieddate_moves_on_every_write() {
        let mut s = Store::new(100, 1, 1_000);
        let id = s.insert(Vec::new(), 5_000, 0);
        s.update(id, Vec::new(), 5_000, 0);
        s.update(id, Vec::new(), 4_000, 0);
        assert_eq!(s.contacts[&id].updated_ms, 5_002);
    }

    #[test]
    fn search_sees_the_old_version_until_indexed() {
        let mut s = Store::new(100, 1, 0);
        let ch = s.validate(&input(json!({"firstname": "Ana"}))).unwrap();
        let id = s.insert(ch, 1_000, 500);
        assert!(s.contacts[&id].searchable(1_200).is_none());
        assert!(s.contacts[&id].searchable(1_500).is_some());
        let ch = s.validate(&input(json!({"firstname": "Bea"}))).unwrap();
        s.update(id, ch, 2_000, 500);
        let seen = s.contacts[&id].searchable(2_100).unwrap();
        assert_eq!(seen.get("firstname").as_deref(), Some("Ana"));
        let seen = s.contacts[&id].searchable(2_600).unwrap();
        assert_eq!(seen.get("firstname").as_deref(), Some("Bea"));
    }

    #[test]
    fn ids_are_large_and_increasing() {
        let mut s = Store::new(37_765_128_953, 9, 0);
        let a = s.insert(Vec::new(), 0, 0);
        let b = s.insert(Vec::new(), 0, 0);
        assert!(a > i32::MAX as u64 && b > a);
    }
}
