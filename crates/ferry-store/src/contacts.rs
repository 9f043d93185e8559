//! Contacts: reads, and the one write path every source goes through.
//!
//! `apply_contact_writes` takes a batch of writes (an API call, a CSV chunk, a page of CRM
//! records), matches each with the core's rules against the store *and* against the earlier
//! writes of the same batch, and then writes the batch in one transaction. A row that fails
//! changes nothing; the others apply. Every change takes the next value of the institution's
//! change sequence, allocated under the institution row's lock so that the order in which
//! changes become visible is the order of their sequence numbers.

use std::collections::HashMap;

use ferry_core::contact::{Contact, ContactData, ContactId, ContactWrite, FieldError, Unarchive};
use ferry_core::email::Email;
use ferry_core::matching::{self, Candidate, Decision, Found, MatchKeys};
use ferry_core::phone::Phone;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::util::{Filter, Params, get_bool, get_opt_ts, get_ts, like_pattern, micros, now};
use crate::{Backend, Result, Store, StoreError};

/// The maps of a batch in memory: keyed by ids, phones and CRM IDs, hashed with a fast seeded
/// hasher (SipHash was a fifth of a large import's time).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Rows per transaction in a batch write through sqlx. Larger chunks amortise the commit and
/// the key lookup (2,000 rows was 20% faster than 500 in the import benchmark); 2,000 rows x 16
/// columns stays under SQLite's 32,766 bound parameters (and PostgreSQL's 65,535).
pub(crate) const CHUNK: usize = 2_000;

/// Rows per transaction on SQLite's bulk connection, which binds row by row. A commit writes
/// every page the chunk dirtied to the WAL, and random phones and CRM IDs dirty index pages all
/// over: 20,000 rows per commit made the 1M-row import 15% faster than 2,000. The write lock is
/// held for about 0.15 s per chunk.
pub(crate) const SQLITE_CHUNK: usize = 20_000;

/// CRM ID write-backs per statement: 1,002 parameters to read the pairs' contacts and IDs,
/// 1,001 to write them.
const CRM_ID_CHUNK: usize = 500;

pub(crate) const CONTACT_COLS: &str = "id, institution_id, first_name, last_name, preferred_name, phone, email, enrollment_id, crm_id, opt_in, test_user, archived, custom, cleared, change_seq, created_at, updated_at, sms_opt_in, sms_opt_in_changed_at, street_address, street_address_2, city, state, zip_code, country";

/// How a batch of writes treats existing contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// API create: always a new contact; a phone or CRM ID that exists is an error.
    Create,
    /// API edit of the contact named by platform ID; does not un-archive.
    Edit,
    /// CSV import and incoming syncs: the seed's matching; re-importing un-archives.
    Import,
}

/// The keys of an institution's test users ([`Store::test_user_keys`]).
#[derive(Debug, Clone, Default)]
pub struct TestUserKeys {
    /// Platform IDs.
    pub ids: std::collections::HashSet<i64>,
    /// CRM IDs.
    pub crm_ids: std::collections::HashSet<String>,
    /// E.164.
    pub phones: std::collections::HashSet<String>,
}

/// What a write did to its contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedAction {
    /// A new contact.
    Created,
    /// An existing contact, with at least one field changed.
    Updated,
    /// Matched, but the write changed nothing (no change sequence is taken).
    Unchanged,
}

/// A write that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The contact written.
    pub contact_id: ContactId,
    /// What the write did to it.
    pub action: AppliedAction,
}

/// Why one write was not applied; `code` is in the error dictionary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// The error dictionary's code.
    pub code: &'static str,
    /// The field at fault; `None` when the row as a whole is (a matching conflict).
    pub field: Option<String>,
    /// A sentence for people.
    pub message: String,
    /// The contact the write was about, when one was found.
    pub contact_id: Option<ContactId>,
    /// The matching conflict behind the error, while its message may still name contacts that
    /// the same batch creates (by slot key, negative) and that the batch's caller names.
    #[serde(skip)]
    pub(crate) conflict: Option<matching::MatchError>,
}

impl From<FieldError> for RowError {
    fn from(e: FieldError) -> Self {
        RowError {
            code: e.code,
            message: e.message,
            field: Some(e.field),
            contact_id: None,
            conflict: None,
        }
    }
}

/// The result of one write of a batch, in the batch's order.
pub type WriteOutcome = std::result::Result<Applied, RowError>;

/// Filters for listing contacts. Pages are ordered by platform ID.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    /// Case-insensitive substring of name, email, phone, CRM ID or enrollment ID.
    pub q: Option<String>,
    /// `Some(true)`: only archived contacts; `Some(false)`: only the others; `None`: both.
    pub archived: Option<bool>,
    /// `Some(true)`: only test users; `Some(false)`: only the others; `None`: both.
    pub test_user: Option<bool>,
    /// Only contacts whose `updated_at` is at or after this.
    pub updated_since: Option<Timestamp>,
    /// Cursor: only contacts with a larger platform ID.
    pub after: Option<ContactId>,
    /// Page size, clamped to 1..=500.
    pub limit: u32,
}

/// One page of contacts.
#[derive(Debug, Clone)]
pub struct ContactPage {
    /// The contacts, by platform ID.
    pub contacts: Vec<Contact>,
    /// The cursor for the next page, when there may be one.
    pub next_after: Option<ContactId>,
}

pub(crate) fn contact_from(row: &AnyRow) -> Result<Contact, sqlx::Error> {
    let custom: String = row.try_get("custom")?;
    Ok(Contact {
        id: row.try_get("id")?,
        institution_id: row.try_get("institution_id")?,
        data: ContactData {
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            preferred_name: row.try_get("preferred_name")?,
            phone: row
                .try_get::<Option<String>, _>("phone")?
                .map(Phone::from_trusted),
            email: row
                .try_get::<Option<String>, _>("email")?
                .map(Email::from_trusted),
            enrollment_id: row.try_get("enrollment_id")?,
            crm_id: row.try_get("crm_id")?,
            opt_in: get_bool(row, "opt_in")?,
            test_user: get_bool(row, "test_user")?,
            archived: get_bool(row, "archived")?,
            custom: serde_json::from_str(&custom).map_err(|e| sqlx::Error::Decode(e.into()))?,
            cleared: serde_json::from_str(&row.try_get::<String, _>("cleared")?)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            sms_opt_in: row
                .try_get::<String, _>("sms_opt_in")?
                .parse()
                .map_err(|e: ferry_core::UnknownValue| sqlx::Error::Decode(e.to_string().into()))?,
            sms_opt_in_changed_at: get_opt_ts(row, "sms_opt_in_changed_at")?,
            street_address: row.try_get("street_address")?,
            street_address_2: row.try_get("street_address_2")?,
            city: row.try_get("city")?,
            state: row.try_get("state")?,
            zip_code: row.try_get("zip_code")?,
            country: row.try_get("country")?,
        },
        change_seq: row.try_get("change_seq")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// Working state of one contact while a chunk is matched. Keys of pending creates are negative:
/// `-(index + 1)` for the chunk's write at `index` that creates it.
struct Slot {
    data: ContactData,
    exists: bool,
    dirty: bool,
}

#[derive(Default)]
pub(crate) struct Chunk {
    slots: FastMap<i64, Slot>,
    by_crm: FastMap<String, i64>,
    by_phone: FastMap<Phone, i64>,
}

impl Chunk {
    fn candidate(&self, key: i64) -> Option<Candidate<'_>> {
        self.slots.get(&key).map(|s| Candidate {
            id: key,
            crm_id: s.data.crm_id.as_deref(),
            phone: s.data.phone.as_ref(),
        })
    }

    fn reindex(&mut self, key: i64, before: Option<&ContactData>) {
        let slot = &self.slots[&key];
        let (crm, phone) = (slot.data.crm_id.clone(), slot.data.phone.clone());
        if let Some(b) = before {
            if let Some(old) = &b.crm_id
                && self.by_crm.get(old) == Some(&key)
            {
                self.by_crm.remove(old);
            }
            if let Some(old) = &b.phone
                && self.by_phone.get(old) == Some(&key)
            {
                self.by_phone.remove(old);
            }
        }
        if let Some(c) = crm {
            self.by_crm.insert(c, key);
        }
        if let Some(p) = phone {
            self.by_phone.insert(p, key);
        }
    }

    pub(crate) fn add_existing(&mut self, c: Contact) {
        let id = c.id;
        self.slots.insert(
            id,
            Slot {
                data: c.data,
                exists: true,
                dirty: false,
            },
        );
        self.reindex(id, None);
    }

    /// Matches and applies one write in memory; returns the slot key it landed in. `index` is
    /// the write's place in the chunk: a contact it creates takes the slot key `-(index + 1)`.
    pub(crate) fn apply(
        &mut self,
        index: usize,
        w: &ContactWrite,
        kind: WriteKind,
    ) -> std::result::Result<(i64, AppliedAction), RowError> {
        let crm = w.patch.crm_id.as_set().map(String::as_str);
        let phone = w.patch.phone.as_set();
        let keys = MatchKeys {
            platform_id: w.platform_id,
            crm_id: crm,
            phone,
        };
        let found = Found {
            by_platform_id: w.platform_id.and_then(|id| self.candidate(id)),
            by_crm_id: crm
                .and_then(|c| self.by_crm.get(c))
                .and_then(|k| self.candidate(*k)),
            by_phone: phone
                .and_then(|p| self.by_phone.get(p))
                .and_then(|k| self.candidate(*k)),
        };
        let decision = match kind {
            WriteKind::Create => {
                if let Some(c) = found.by_phone {
                    Err(matching::MatchError::PhoneInUse(c.id))
                } else if let Some(c) = found.by_crm_id {
                    Err(matching::MatchError::CrmIdInUse(c.id))
                } else {
                    Ok(Decision::Create)
                }
            }
            WriteKind::Edit if w.platform_id.is_none() => {
                return Err(RowError {
                    code: "invalid_platform_id",
                    field: Some("id".into()),
                    message: "an edit names the contact by platform ID".into(),
                    contact_id: None,
                    conflict: None,
                });
            }
            WriteKind::Edit | WriteKind::Import => matching::decide(keys, found),
        };
        let decision = decision.map_err(|e| RowError {
            code: e.code(),
            field: None,
            message: e.to_string(),
            conflict: Some(e),
            contact_id: w
                .platform_id
                .filter(|id| self.slots.contains_key(id))
                .or(found.by_crm_id.or(found.by_phone).map(|c| c.id))
                .filter(|id| *id > 0),
        })?;
        match decision {
            Decision::Create => {
                let mut data = ContactData::create(&w.patch)?;
                data.stamp_opt_in_change(None, jiff::Timestamp::now());
                let key = -(index as i64 + 1);
                self.slots.insert(
                    key,
                    Slot {
                        data,
                        exists: false,
                        dirty: true,
                    },
                );
                self.reindex(key, None);
                Ok((key, AppliedAction::Created))
            }
            Decision::Update { id, protected, .. } => {
                let unarchive = if kind == WriteKind::Import {
                    Unarchive::Yes
                } else {
                    Unarchive::No
                };
                let slot = self
                    .slots
                    .get_mut(&id)
                    .expect("a matched contact is in the chunk");
                let before = slot.data.clone();
                slot.data.apply(&w.patch, protected, unarchive);
                slot.data
                    .stamp_opt_in_change(Some(before.sms_opt_in), jiff::Timestamp::now());
                let changed = slot.data != before;
                slot.dirty |= changed;
                if changed {
                    self.reindex(id, Some(&before));
                }
                Ok((
                    id,
                    if changed {
                        AppliedAction::Updated
                    } else {
                        AppliedAction::Unchanged
                    },
                ))
            }
        }
    }
}

impl Chunk {
    /// The contacts to write: existing ones by id, then new ones in the order the batch
    /// created them (which is the order they take change sequences in).
    pub(crate) fn dirty_in_write_order(&self) -> Vec<i64> {
        let mut d: Vec<i64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(k, _)| *k)
            .collect();
        d.sort_unstable_by_key(|k| if *k < 0 { i64::MAX / 2 - *k } else { *k });
        d
    }

    /// Slot key to contact id for the contacts that exist already.
    pub(crate) fn existing_ids(&self) -> FastMap<i64, ContactId> {
        self.slots
            .keys()
            .filter(|k| **k > 0)
            .map(|k| (*k, *k))
            .collect()
    }

    pub(crate) fn slot(&self, key: i64) -> (&ContactData, bool) {
        let s = &self.slots[&key];
        (&s.data, s.exists)
    }
}

/// Turns each write's landing slot into its outcome, with the ids new contacts received.
pub(crate) fn outcomes(
    landed: Vec<std::result::Result<(i64, AppliedAction), RowError>>,
    ids: &FastMap<i64, ContactId>,
) -> Vec<WriteOutcome> {
    landed
        .into_iter()
        .map(|r| {
            r.map(|(key, action)| Applied {
                contact_id: ids[&key],
                action,
            })
        })
        .collect()
}

pub(crate) fn custom_json(data: &ContactData) -> String {
    serde_json::to_string(&data.custom).expect("a map of JSON values serialises")
}

pub(crate) fn cleared_json(data: &ContactData) -> String {
    if data.cleared.is_empty() {
        return "[]".to_owned();
    }
    serde_json::to_string(&data.cleared).expect("a set of names serialises")
}

/// Puts the final message on a matching error, naming pending contacts (negative slot keys)
/// with `pending`.
fn named(mut e: RowError, pending: impl Fn(i64) -> String) -> RowError {
    if let Some(conflict) = e.conflict.take() {
        e.message = conflict.describe(|id| {
            if id > 0 {
                format!("contact {id}")
            } else {
                pending(id)
            }
        });
    }
    e
}

impl Store {
    /// Applies a batch of contact writes; one outcome per write, in order.
    pub async fn apply_contact_writes(
        &self,
        institution_id: i64,
        writes: &[ContactWrite],
        kind: WriteKind,
    ) -> Result<Vec<WriteOutcome>> {
        self.apply_contact_writes_named(institution_id, writes, kind, |i| {
            format!("the contact created by write {} of this batch", i + 1)
        })
        .await
    }

    /// [`Store::apply_contact_writes`], where an error about a contact that an earlier write of
    /// the same batch creates (it has no ID yet) names it with `name(index of that write)`.
    pub async fn apply_contact_writes_named(
        &self,
        institution_id: i64,
        writes: &[ContactWrite],
        kind: WriteKind,
        name: impl Fn(usize) -> String,
    ) -> Result<Vec<WriteOutcome>> {
        let mut out = Vec::with_capacity(writes.len());
        for (n, chunk) in writes.chunks(self.chunk_rows()).enumerate() {
            let first = n * self.chunk_rows();
            match self.apply_chunk_any(institution_id, chunk, kind).await {
                Ok(outcomes) => out.extend(
                    outcomes
                        .into_iter()
                        .map(|o| o.map_err(|e| named(e, |key| name(first + (-key - 1) as usize)))),
                ),
                // Two writes of one chunk that swap a phone or CRM ID, or a concurrent writer on
                // PostgreSQL, can break a unique index mid-chunk: redo the chunk a row at a time.
                Err(e) if e.is_unique() => {
                    for w in chunk {
                        let outcome = match self.apply_chunk_any(institution_id, std::slice::from_ref(w), kind).await {
                            Ok(mut o) => o.remove(0),
                            Err(e) if e.is_unique() => Err(RowError {
                                code: "conflict",
                                field: None,
                                message: "another change to the same phone or CRM ID happened at the same time; retry".into(),
                                contact_id: w.platform_id,
                                conflict: None,
                            }),
                            Err(e) => return Err(e),
                        };
                        // Alone in its chunk, a write meets only contacts that exist.
                        out.push(outcome.map_err(|e| {
                            named(e, |_| "a contact created in the same batch".into())
                        }));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Rows per transaction of a batch write on this store.
    pub(crate) fn chunk_rows(&self) -> usize {
        if self.bulk.is_some() {
            SQLITE_CHUNK
        } else {
            CHUNK
        }
    }

    /// An import is over: the SQLite bulk connection lets go of its key filter.
    pub(crate) fn end_bulk_import(&self) {
        if let Some(bulk) = &self.bulk {
            bulk.forget_keys();
        }
    }

    /// One chunk in one transaction, through the SQLite bulk connection when there is one.
    async fn apply_chunk_any(
        &self,
        institution_id: i64,
        writes: &[ContactWrite],
        kind: WriteKind,
    ) -> Result<Vec<WriteOutcome>> {
        match &self.bulk {
            // Blocking work: on a multi-threaded runtime in place (no copy of the batch), else
            // on the blocking pool.
            Some(bulk)
                if tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| bulk.apply_chunk(institution_id, writes, kind))
            }
            Some(bulk) => {
                let (bulk, writes) = (bulk.clone(), writes.to_vec());
                tokio::task::spawn_blocking(move || bulk.apply_chunk(institution_id, &writes, kind))
                    .await
                    .map_err(|e| {
                        StoreError::Db(sqlx::Error::Protocol(format!(
                            "contact write task failed: {e}"
                        )))
                    })?
            }
            None => self.apply_chunk(institution_id, writes, kind).await,
        }
    }

    async fn apply_chunk(
        &self,
        institution_id: i64,
        writes: &[ContactWrite],
        kind: WriteKind,
    ) -> Result<Vec<WriteOutcome>> {
        let mut tx = self.begin_write().await?;
        let mut chunk = Chunk::default();
        for c in fetch_by_keys(&mut tx, self.backend, institution_id, writes).await? {
            chunk.add_existing(c);
        }
        let landed: Vec<_> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| chunk.apply(i, w, kind))
            .collect();
        let dirty = chunk.dirty_in_write_order();
        let mut ids = chunk.existing_ids();
        if !dirty.is_empty() {
            let last = allocate_change_seq(&mut tx, institution_id, dirty.len() as i64).await?;
            let mut seq = last - dirty.len() as i64;
            let ts = now();
            let mut creates = Vec::new();
            for key in &dirty {
                seq += 1;
                let slot = &chunk.slots[key];
                if slot.exists {
                    update_contact(&mut tx, institution_id, *key, &slot.data, seq, ts).await?;
                } else {
                    creates.push((*key, &slot.data, seq));
                }
            }
            for (key, id) in
                insert_contacts(&mut tx, self.backend, institution_id, &creates, ts).await?
            {
                ids.insert(key, id);
            }
        }
        tx.commit().await?;
        Ok(outcomes(landed, &ids))
    }

    /// One contact of an institution.
    pub async fn contact(&self, institution_id: i64, id: ContactId) -> Result<Contact> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref()
            .map(contact_from)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// A page of contacts, including test users (which the UI and API show).
    pub async fn list_contacts(
        &self,
        institution_id: i64,
        q: &ContactQuery,
    ) -> Result<ContactPage> {
        let limit = q.limit.clamp(1, 500);
        let mut f = Filter::new(
            self.backend,
            &format!("SELECT {CONTACT_COLS} FROM contacts WHERE institution_id ="),
            institution_id,
        )?;
        contact_filters(&mut f, q)?;
        if let Some(after) = q.after {
            f.and(" AND id > $?", after)?;
        }
        f.push(&format!(" ORDER BY id LIMIT {}", limit + 1));
        let rows = f.fetch_all(&self.read).await?;
        let mut contacts = rows
            .iter()
            .map(contact_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if contacts.len() > limit as usize {
            contacts.truncate(limit as usize);
            contacts.last().map(|c| c.id)
        } else {
            None
        };
        Ok(ContactPage {
            contacts,
            next_after,
        })
    }

    /// Contacts changed after `after_seq`, in change order, **never test users**. Every
    /// integration reads contacts through this query.
    pub async fn contacts_for_sync(
        &self,
        institution_id: i64,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = $1 AND change_seq > $2 AND test_user = FALSE ORDER BY change_seq LIMIT $3")))
            .bind(institution_id)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(contact_from).collect::<Result<_, _>>()?)
    }

    /// A page of every contact but test users, by platform ID (stable while contacts change),
    /// for full exports: contacts with an ID above `after_id`, at most `limit`.
    pub async fn contacts_for_export(
        &self,
        institution_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = $1 AND id > $2 AND test_user = FALSE ORDER BY id LIMIT $3")))
            .bind(institution_id)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(contact_from).collect::<Result<_, _>>()?)
    }

    /// The contacts with these IDs (those that exist in the institution), by ID: for pages that
    /// name the contacts of a list of rows.
    pub async fn contacts_by_ids(
        &self,
        institution_id: i64,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Contact>> {
        let mut out = std::collections::HashMap::new();
        let mut ids: Vec<i64> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(500) {
            let mut f = crate::util::Filter::new(
                self.backend,
                &format!("SELECT {CONTACT_COLS} FROM contacts WHERE institution_id ="),
                institution_id,
            )?;
            f.and_in("id", chunk.iter().copied())?;
            for row in f.fetch_all(&self.read).await? {
                let c = contact_from(&row)?;
                out.insert(c.id, c);
            }
        }
        Ok(out)
    }

    /// Records CRM IDs a sync learned (seed 002: "set the CRM ID on Mainstay for next time").
    /// Bookkeeping, not a change people made: no change sequence is taken, so the outgoing sync
    /// that wrote the contact is not triggered again. Returns, per pair, whether it was written:
    /// `false` when the contact is gone, has another CRM ID, or the ID belongs to another contact.
    pub async fn set_crm_ids(
        &self,
        institution_id: i64,
        pairs: &[(i64, String)],
    ) -> Result<Vec<bool>> {
        // One transaction, a statement per chunk: a read, an UPDATE and a commit per pair were
        // most of a 50,000-contact first push's wall time, and a commit per chunk wrote the
        // CRM ID index's pages (random IDs touch them all over) once per chunk.
        match self.set_crm_ids_in_one(institution_id, pairs).await {
            // A concurrent writer took one of the IDs between the read and the write
            // (PostgreSQL): the pairs are redone one at a time.
            Err(e) if e.is_unique() && pairs.len() > 1 => {
                let mut out = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    out.extend(
                        self.set_crm_ids_in_one(institution_id, std::slice::from_ref(pair))
                            .await
                            .or_else(|e| {
                                if e.is_unique() {
                                    Ok(vec![false])
                                } else {
                                    Err(e)
                                }
                            })?,
                    );
                }
                Ok(out)
            }
            Err(e) if e.is_unique() => Ok(vec![false]),
            other => other,
        }
    }

    /// [`Store::set_crm_ids`] in one transaction: per chunk, the contacts and IDs involved are
    /// read at once, the pairs decided in order as one at a time would be (a later pair sees
    /// what an earlier one wrote), and the changes written in one statement.
    async fn set_crm_ids_in_one(
        &self,
        institution_id: i64,
        pairs: &[(i64, String)],
    ) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        // Each contact's CRM ID, and the owner of each ID, as the database holds them.
        let mut crm_of: HashMap<i64, Option<String>> = HashMap::new();
        let mut owner: HashMap<String, i64> = HashMap::new();
        let mut written = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(CRM_ID_CHUNK) {
            // Two lookups by index: `id IN (…) OR crm_id IN (…)` scanned the institution's
            // contacts.
            let mut p = Params::new(self.backend);
            let mut sql = String::from("SELECT id, crm_id FROM contacts WHERE institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(" AND id IN (");
            p.bind_list(&mut sql, chunk.iter().map(|(id, _)| *id))?;
            sql.push_str(") UNION ALL SELECT id, crm_id FROM contacts WHERE institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sql.push_str(" AND crm_id IN (");
            p.bind_list(&mut sql, chunk.iter().map(|(_, crm)| crm.as_str()))?;
            sql.push(')');
            for row in sqlx::query_with(AssertSqlSafe(sql), p.args)
                .fetch_all(&mut *tx)
                .await?
            {
                let id: i64 = row.try_get("id")?;
                // Known already: this transaction may have written it since.
                if crm_of.contains_key(&id) {
                    continue;
                }
                let crm: Option<String> = row.try_get("crm_id")?;
                if let Some(c) = &crm {
                    owner.insert(c.clone(), id);
                }
                crm_of.insert(id, crm);
            }
            let mut changes: Vec<(i64, &str)> = Vec::new();
            for (id, crm) in chunk {
                let ok = match crm_of.get(id) {
                    // The contact is gone (or of another institution).
                    None => false,
                    // The ID is another contact's.
                    Some(_) if owner.get(crm).is_some_and(|o| o != id) => false,
                    Some(Some(have)) if have == crm => true,
                    // The contact has another CRM ID.
                    Some(Some(have)) if !have.is_empty() => false,
                    Some(_) => {
                        crm_of.insert(*id, Some(crm.clone()));
                        owner.insert(crm.clone(), *id);
                        changes.push((*id, crm));
                        true
                    }
                };
                written.push(ok);
            }
            if changes.is_empty() {
                continue;
            }
            // A join with the list (a `CASE id WHEN …` of 500 branches was tried for every row).
            let mut p = Params::new(self.backend);
            let mut sql = String::from("UPDATE contacts SET crm_id = v.column2 FROM (VALUES ");
            for (i, (id, crm)) in changes.iter().enumerate() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                p.bind(&mut sql, *id)?;
                sql.push_str(", ");
                p.bind(&mut sql, *crm)?;
                sql.push(')');
            }
            sql.push_str(") AS v WHERE contacts.id = v.column1 AND contacts.institution_id = ");
            p.bind(&mut sql, institution_id)?;
            sqlx::query_with(AssertSqlSafe(sql), p.args)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// The keys of the institution's test users (platform IDs, CRM IDs, phones): incoming syncs
    /// leave records that match one of them alone, as test users never sync.
    pub async fn test_user_keys(&self, institution_id: i64) -> Result<TestUserKeys> {
        let rows = sqlx::query(
            "SELECT id, crm_id, phone FROM contacts WHERE institution_id = $1 AND test_user = TRUE",
        )
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?;
        let mut keys = TestUserKeys::default();
        for r in rows {
            keys.ids.insert(r.try_get("id")?);
            if let Some(c) = r.try_get::<Option<String>, _>("crm_id")? {
                keys.crm_ids.insert(c);
            }
            if let Some(p) = r.try_get::<Option<String>, _>("phone")? {
                keys.phones.insert(p);
            }
        }
        Ok(keys)
    }

    /// The highest change sequence of an institution (0 before the first change).
    pub async fn current_change_seq(&self, institution_id: i64) -> Result<i64> {
        let row = sqlx::query("SELECT change_seq FROM institutions WHERE id = $1")
            .bind(institution_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.ok_or(StoreError::NotFound)?.try_get(0)?)
    }

    /// Every institution's current change sequence, in one query (the worker's check for
    /// on-change integrations that are behind).
    pub async fn change_seqs(&self) -> Result<std::collections::HashMap<i64, i64>> {
        let rows = sqlx::query("SELECT id, change_seq FROM institutions")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// How many contacts match a query's search and filters (its cursor and size aside): the
    /// count beside a searched list.
    pub async fn count_contacts_matching(
        &self,
        institution_id: i64,
        q: &ContactQuery,
    ) -> Result<i64> {
        let mut f = Filter::new(
            self.backend,
            "SELECT COUNT(*) AS n FROM contacts WHERE institution_id =",
            institution_id,
        )?;
        contact_filters(&mut f, q)?;
        let rows = f.fetch_all(&self.read).await?;
        Ok(rows
            .first()
            .map(|r| r.try_get("n"))
            .transpose()?
            .unwrap_or(0))
    }

    /// How many contacts the institution has, archived and test users included.
    pub async fn count_contacts(&self, institution_id: i64) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM contacts WHERE institution_id = $1")
                .bind(institution_id)
                .fetch_one(&self.read)
                .await?
                .try_get(0)?,
        )
    }

    /// Archives the contacts whose CRM ID is one of `crm_ids` and that are not archived yet (the
    /// CRM deleted their records); test users are left alone. Returns the contacts archived.
    pub async fn archive_by_crm_ids(
        &self,
        institution_id: i64,
        crm_ids: &[String],
    ) -> Result<Vec<ContactId>> {
        let mut ids: Vec<ContactId> = Vec::new();
        for chunk in crm_ids.chunks(500) {
            let mut f = crate::util::Filter::new(
                self.backend,
                "SELECT id FROM contacts WHERE institution_id =",
                institution_id,
            )?;
            f.push(" AND archived = FALSE AND test_user = FALSE");
            f.and_in("crm_id", chunk.iter().map(String::as_str))?;
            for row in f.fetch_all(&self.read).await? {
                ids.push(row.try_get("id")?);
            }
        }
        for id in &ids {
            self.set_archived(institution_id, *id, true).await?;
        }
        Ok(ids)
    }

    /// Archives or restores a contact; a change like any other (it takes a change sequence).
    pub async fn set_archived(
        &self,
        institution_id: i64,
        id: ContactId,
        archived: bool,
    ) -> Result<Contact> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut contact = row
            .as_ref()
            .map(contact_from)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        if contact.data.archived != archived {
            let seq = allocate_change_seq(&mut tx, institution_id, 1).await?;
            let ts = now();
            sqlx::query(
                "UPDATE contacts SET archived = $1, change_seq = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(archived)
            .bind(seq)
            .bind(ts)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            contact.data.archived = archived;
            contact.change_seq = seq;
            contact.updated_at = crate::util::from_micros(ts);
        }
        tx.commit().await?;
        Ok(contact)
    }
}

/// Takes `n` values of the institution's change sequence; returns the last one.
pub(crate) async fn allocate_change_seq(
    tx: &mut Transaction<'static, Any>,
    institution_id: i64,
    n: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE institutions SET change_seq = change_seq + $1 WHERE id = $2 RETURNING change_seq",
    )
    .bind(n)
    .bind(institution_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.ok_or(StoreError::NotFound)?.try_get(0)?)
}

async fn fetch_by_keys(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    institution_id: i64,
    writes: &[ContactWrite],
) -> Result<Vec<Contact>> {
    let mut ids: Vec<i64> = writes.iter().filter_map(|w| w.platform_id).collect();
    let mut crms: Vec<&str> = writes
        .iter()
        .filter_map(|w| w.patch.crm_id.as_set().map(String::as_str))
        .collect();
    let mut phones: Vec<&str> = writes
        .iter()
        .filter_map(|w| w.patch.phone.as_set().map(Phone::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    crms.sort_unstable();
    crms.dedup();
    phones.sort_unstable();
    phones.dedup();
    // One SELECT per kind of key, so each uses its own index (an OR of the three made SQLite
    // scan every contact of the institution).
    let mut p = Params::new(backend);
    let mut sql = String::new();
    fn part<T: for<'t> sqlx::Encode<'t, Any> + sqlx::Type<Any>>(
        sql: &mut String,
        p: &mut Params,
        institution_id: i64,
        col: &str,
        values: Vec<T>,
    ) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        if !sql.is_empty() {
            sql.push_str(" UNION ALL ");
        }
        sql.push_str(&format!(
            "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = "
        ));
        p.bind(sql, institution_id)?;
        sql.push_str(&format!(" AND {col} IN ("));
        p.bind_list(sql, values)?;
        sql.push(')');
        Ok(())
    }
    part(&mut sql, &mut p, institution_id, "id", ids)?;
    part(
        &mut sql,
        &mut p,
        institution_id,
        "crm_id",
        crms.iter().map(|s| s.to_string()).collect(),
    )?;
    part(
        &mut sql,
        &mut p,
        institution_id,
        "phone",
        phones.iter().map(|s| s.to_string()).collect(),
    )?;
    if sql.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_with(AssertSqlSafe(sql), p.args)
        .fetch_all(&mut **tx)
        .await?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let c = contact_from(row)?;
        if seen.insert(c.id) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Writes every field of a contact (both drivers use it).
pub(crate) const UPDATE_CONTACT: &str = "UPDATE contacts SET first_name = $1, last_name = $2, preferred_name = $3, phone = $4, email = $5, enrollment_id = $6, crm_id = $7, \
     opt_in = $8, test_user = $9, archived = $10, custom = $11, cleared = $12, change_seq = $13, updated_at = $14, \
     sms_opt_in = $15, sms_opt_in_changed_at = $16, street_address = $17, street_address_2 = $18, city = $19, state = $20, zip_code = $21, country = $22 \
     WHERE id = $23 AND institution_id = $24";

/// Takes `n` values of an institution's change sequence; `$1` = n, `$2` = institution.
pub(crate) const ALLOCATE_CHANGE_SEQ: &str =
    "UPDATE institutions SET change_seq = change_seq + $1 WHERE id = $2 RETURNING change_seq";

async fn update_contact(
    tx: &mut Transaction<'static, Any>,
    institution_id: i64,
    id: ContactId,
    d: &ContactData,
    seq: i64,
    ts: i64,
) -> Result<()> {
    sqlx::query(UPDATE_CONTACT)
        .bind(d.first_name.clone())
        .bind(d.last_name.clone())
        .bind(d.preferred_name.clone())
        .bind(d.phone.as_ref().map(|p| p.as_str().to_string()))
        .bind(d.email.as_ref().map(|e| e.as_str().to_string()))
        .bind(d.enrollment_id.clone())
        .bind(d.crm_id.clone())
        .bind(d.opt_in)
        .bind(d.test_user)
        .bind(d.archived)
        .bind(custom_json(d))
        .bind(cleared_json(d))
        .bind(seq)
        .bind(ts)
        .bind(d.sms_opt_in.as_str())
        .bind(d.sms_opt_in_changed_at.map(micros))
        .bind(d.street_address.clone())
        .bind(d.street_address_2.clone())
        .bind(d.city.clone())
        .bind(d.state.clone())
        .bind(d.zip_code.clone())
        .bind(d.country.clone())
        .bind(id)
        .bind(institution_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts new contacts with one multi-row statement; returns (slot key, new id) pairs.
/// (PostgreSQL: SQLite contact writes go through `sqlite_bulk`.)
async fn insert_contacts(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    institution_id: i64,
    creates: &[(i64, &ContactData, i64)],
    ts: i64,
) -> Result<Vec<(i64, ContactId)>> {
    if creates.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::with_capacity(creates.len() * 64 + 200);
    sql.push_str("INSERT INTO contacts (institution_id, first_name, last_name, preferred_name, phone, email, enrollment_id, crm_id, opt_in, test_user, archived, custom, cleared, change_seq, created_at, updated_at, sms_opt_in, sms_opt_in_changed_at, street_address, street_address_2, city, state, zip_code, country) VALUES ");
    let mut p = Params::new(backend);
    for (i, (_, d, seq)) in creates.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        p.bind(&mut sql, institution_id)?;
        for text in [&d.first_name, &d.last_name, &d.preferred_name] {
            sql.push_str(", ");
            p.bind(&mut sql, text.clone())?;
        }
        sql.push_str(", ");
        p.bind(&mut sql, d.phone.as_ref().map(|p| p.as_str().to_string()))?;
        sql.push_str(", ");
        p.bind(&mut sql, d.email.as_ref().map(|e| e.as_str().to_string()))?;
        for text in [&d.enrollment_id, &d.crm_id] {
            sql.push_str(", ");
            p.bind(&mut sql, text.clone())?;
        }
        for flag in [d.opt_in, d.test_user, d.archived] {
            sql.push_str(", ");
            p.bind(&mut sql, flag)?;
        }
        sql.push_str(", ");
        p.bind(&mut sql, custom_json(d))?;
        sql.push_str(", ");
        p.bind(&mut sql, cleared_json(d))?;
        for n in [*seq, ts, ts] {
            sql.push_str(", ");
            p.bind(&mut sql, n)?;
        }
        sql.push_str(", ");
        p.bind(&mut sql, d.sms_opt_in.as_str())?;
        sql.push_str(", ");
        p.bind(&mut sql, d.sms_opt_in_changed_at.map(micros))?;
        for text in [
            &d.street_address,
            &d.street_address_2,
            &d.city,
            &d.state,
            &d.zip_code,
            &d.country,
        ] {
            sql.push_str(", ");
            p.bind(&mut sql, text.clone())?;
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING id, phone");
    let rows = sqlx::query_with(AssertSqlSafe(sql), p.args)
        .fetch_all(&mut **tx)
        .await?;
    // New contacts always have a phone, unique within the institution: map ids back by phone.
    let by_phone: HashMap<String, ContactId> = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("phone")?, r.try_get::<i64, _>("id")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    creates
        .iter()
        .map(|(key, d, _)| {
            let phone = d
                .phone
                .as_ref()
                .expect("new contacts have a phone")
                .as_str();
            by_phone.get(phone).map(|id| (*key, *id)).ok_or_else(|| {
                StoreError::Db(sqlx::Error::Protocol(
                    "inserted contact not returned".into(),
                ))
            })
        })
        .collect()
}

/// The search and filters of a [`ContactQuery`] (not its cursor or size).
fn contact_filters(f: &mut Filter, q: &ContactQuery) -> Result<()> {
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let haystack = "lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(preferred_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(crm_id, '') || ' ' || coalesce(enrollment_id, ''))";
        // "(617) 555" should find +1617555…: phones are also searched by their digits.
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 3 && digits.len() != text.len() {
            f.and(
                &format!(" AND ({haystack} LIKE $? ESCAPE '\\'"),
                like_pattern(text),
            )?;
            f.and(" OR phone LIKE $?)", format!("%{digits}%"))?;
        } else {
            f.and(
                &format!(" AND {haystack} LIKE $? ESCAPE '\\'"),
                like_pattern(text),
            )?;
        }
    }
    if let Some(a) = q.archived {
        f.and(" AND archived = $?", a)?;
    }
    if let Some(t) = q.test_user {
        f.and(" AND test_user = $?", t)?;
    }
    if let Some(since) = q.updated_since {
        f.and(" AND updated_at >= $?", micros(since))?;
    }
    Ok(())
}
