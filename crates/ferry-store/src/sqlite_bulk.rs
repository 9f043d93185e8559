//! Contact writes on SQLite through a dedicated rusqlite connection.
//!
//! sqlx-sqlite binds every value through its `Any` layer and a worker thread, which cost the
//! CSV import most of its time (a 1M-row import ran at a fifth of `sqlite3 .import`). Contact
//! batch writes are the one hot path, so on SQLite they run here: prepared statements bound by
//! index on a connection of their own, inside a blocking task. The matching (`Chunk`) and the SQL
//! of updates and sequence allocation are the same as the sqlx path's.

use parking_lot::FairMutex;
use std::path::PathBuf;
use std::time::Duration;

use ferry_core::contact::{Contact, ContactData, ContactWrite};
use ferry_core::email::Email;
use ferry_core::phone::Phone;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::contacts::{
    ALLOCATE_CHANGE_SEQ, CONTACT_COLS, Chunk, UPDATE_CONTACT, WriteKind, WriteOutcome,
    cleared_json, custom_json, outcomes,
};
use crate::util::{from_micros, micros, now};
use crate::{Result, StoreError};

/// The write connection for contact batches.
pub(crate) struct SqliteBulk {
    /// Handed over in the order writers asked for it: a single write that asks while an
    /// import's chunk is being written goes before the import's next chunk, so it waits at
    /// most one chunk (an unfair lock let the import take it back chunk after chunk).
    writer: FairMutex<Writer>,
    path: PathBuf,
}

struct Writer {
    conn: Connection,
    keys: Option<KeyFilter>,
}

/// Which of an institution's CRM IDs and phones may exist, so that a large import does not
/// probe the indexes for keys that cannot be there (on a fresh import, every key: skipping those
/// probes took a 1M-row import from 15-17 s to 11-13 s on the 2-core CI machine).
///
/// It holds hashes of every CRM ID and phone the institution's contacts had when it was built
/// and of every one this connection wrote since: a superset of the keys in the table, as long as
/// no other connection wrote. A key not in it is certainly absent; a key in it (or a hash
/// collision) is looked up as before. `PRAGMA data_version` changes when another connection
/// commits anything, and the filter is then dropped; deletes only make it larger than needed.
struct KeyFilter {
    institution_id: i64,
    /// `PRAGMA data_version` as this connection saw it when the filter was last known current.
    data_version: i64,
    hasher: foldhash::fast::RandomState,
    keys: crate::contacts::FastSet<u64>,
}

/// What a key is, so that a CRM ID and a phone with the same text hash apart.
#[derive(Hash, Clone, Copy)]
enum KeyKind {
    Crm,
    Phone,
}

impl KeyFilter {
    fn hash(&self, kind: KeyKind, key: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((kind, key))
    }

    fn may_hold(&self, kind: KeyKind, key: &str) -> bool {
        self.keys.contains(&self.hash(kind, key))
    }

    fn add(&mut self, kind: KeyKind, key: &str) {
        let h = self.hash(kind, key);
        self.keys.insert(h);
    }

    /// Reads the institution's keys, unless it has more than `budget` contacts (then probing is
    /// cheaper than the scan): `None`.
    fn build(
        tx: &rusqlite::Transaction<'_>,
        institution_id: i64,
        data_version: i64,
        budget: usize,
    ) -> Result<Option<KeyFilter>> {
        let mut filter = KeyFilter {
            institution_id,
            data_version,
            hasher: Default::default(),
            keys: Default::default(),
        };
        // Two covering scans of the unique indexes, each stopped past the budget.
        for (kind, sql) in [
            (
                KeyKind::Crm,
                "SELECT crm_id FROM contacts INDEXED BY contacts_crm_id \
                 WHERE institution_id = ?1 AND crm_id IS NOT NULL LIMIT ?2",
            ),
            (
                KeyKind::Phone,
                "SELECT phone FROM contacts INDEXED BY contacts_phone \
                 WHERE institution_id = ?1 AND phone IS NOT NULL LIMIT ?2",
            ),
        ] {
            let mut stmt = tx.prepare_cached(sql)?;
            let mut rows = stmt.query(params![institution_id, budget as i64 + 1])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                n += 1;
                if n > budget {
                    return Ok(None);
                }
                if let Some(key) = row.get::<_, Option<String>>(0)? {
                    filter.add(kind, &key);
                }
            }
        }
        Ok(Some(filter))
    }
}

/// The database file of a `sqlite:` URL, if it names one (not `:memory:`).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

/// Undoes `%XX` escapes, as sqlx does for the same URL.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

fn contact_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    let custom: String = row.get("custom")?;
    Ok(Contact {
        id: row.get("id")?,
        institution_id: row.get("institution_id")?,
        data: ContactData {
            first_name: row.get("first_name")?,
            last_name: row.get("last_name")?,
            preferred_name: row.get("preferred_name")?,
            phone: row
                .get::<_, Option<String>>("phone")?
                .map(Phone::from_trusted),
            email: row
                .get::<_, Option<String>>("email")?
                .map(Email::from_trusted),
            enrollment_id: row.get("enrollment_id")?,
            crm_id: row.get("crm_id")?,
            opt_in: row.get("opt_in")?,
            test_user: row.get("test_user")?,
            archived: row.get("archived")?,
            custom: serde_json::from_str(&custom).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    12,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            cleared: serde_json::from_str(&row.get::<_, String>("cleared")?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    13,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            sms_opt_in: row.get::<_, String>("sms_opt_in")?.parse().map_err(
                |e: ferry_core::UnknownValue| {
                    rusqlite::Error::FromSqlConversionFailure(
                        17,
                        rusqlite::types::Type::Text,
                        e.to_string().into(),
                    )
                },
            )?,
            sms_opt_in_changed_at: row
                .get::<_, Option<i64>>("sms_opt_in_changed_at")?
                .map(from_micros),
            street_address: row.get("street_address")?,
            street_address_2: row.get("street_address_2")?,
            city: row.get("city")?,
            state: row.get("state")?,
            zip_code: row.get("zip_code")?,
            country: row.get("country")?,
        },
        change_seq: row.get("change_seq")?,
        created_at: from_micros(row.get("created_at")?),
        updated_at: from_micros(row.get("updated_at")?),
    })
}

impl SqliteBulk {
    /// Opens the database file (which the sqlx pools created and migrated) with the same settings.
    pub(crate) fn open(path: &std::path::Path) -> Result<SqliteBulk> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // A page cache of up to 256 MiB and memory-mapped reads keep the contact indexes in
        // memory during large imports (1M rows: 83k -> 101k rows/s); the cache only grows as
        // pages are touched.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 1073741824; PRAGMA wal_autocheckpoint = 8192;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteBulk {
            writer: FairMutex::new(Writer { conn, keys: None }),
            path: path.to_path_buf(),
        })
    }

    /// A read-only connection of its own to the same file, for long streaming reads (exports)
    /// that should not hold one of the pool's connections. Blocking.
    pub(crate) fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // A one-pass scan reuses few pages: with mmap every page read stays in the process's
        // RSS (the whole database, for a large window), and a big page cache is anonymous
        // memory. The OS page cache does the caching; memory stays flat (bench export).
        conn.execute_batch("PRAGMA cache_size = -2000; PRAGMA mmap_size = 0;")?;
        Ok(conn)
    }

    /// Lets go of the key filter (an import is over; it may hold millions of hashes).
    pub(crate) fn forget_keys(&self) {
        self.writer.lock().keys = None;
    }

    /// Matches and writes one chunk in one `BEGIN IMMEDIATE` transaction. Blocking.
    pub(crate) fn apply_chunk(
        &self,
        institution_id: i64,
        writes: &[ContactWrite],
        kind: WriteKind,
    ) -> Result<Vec<WriteOutcome>> {
        let mut writer = self.writer.lock();
        let Writer { conn, keys } = &mut *writer;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The write lock is held from here on: no other connection commits until we do.
        let data_version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if keys
            .as_ref()
            .is_some_and(|f| f.institution_id != institution_id || f.data_version != data_version)
        {
            *keys = None;
        }
        if keys.is_none() && kind == WriteKind::Import {
            *keys = KeyFilter::build(&tx, institution_id, data_version, writes.len())?;
        }
        let mut chunk = Chunk::default();
        {
            let mut by_id = tx.prepare(&format!(
                "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = ?1 AND id = ?2"
            ))?;
            let mut by_crm = tx.prepare(&format!(
                "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = ?1 AND crm_id = ?2"
            ))?;
            let mut by_phone = tx.prepare(&format!(
                "SELECT {CONTACT_COLS} FROM contacts WHERE institution_id = ?1 AND phone = ?2"
            ))?;
            let mut seen = crate::contacts::FastSet::default();
            let mut found = Vec::new();
            for w in writes {
                if let Some(id) = w.platform_id {
                    found.push(
                        by_id
                            .query_row(params![institution_id, id], contact_from)
                            .optional()?,
                    );
                }
                if let Some(crm) = w.patch.crm_id.as_set()
                    && keys.as_ref().is_none_or(|f| f.may_hold(KeyKind::Crm, crm))
                {
                    found.push(
                        by_crm
                            .query_row(params![institution_id, crm], contact_from)
                            .optional()?,
                    );
                }
                if let Some(phone) = w.patch.phone.as_set()
                    && keys
                        .as_ref()
                        .is_none_or(|f| f.may_hold(KeyKind::Phone, phone.as_str()))
                {
                    found.push(
                        by_phone
                            .query_row(params![institution_id, phone.as_str()], contact_from)
                            .optional()?,
                    );
                }
            }
            for c in found.into_iter().flatten() {
                if seen.insert(c.id) {
                    chunk.add_existing(c);
                }
            }
        }
        let landed: Vec<_> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| chunk.apply(i, w, kind))
            .collect();
        let dirty = chunk.dirty_in_write_order();
        let mut ids = chunk.existing_ids();
        if !dirty.is_empty() {
            let last: i64 = tx
                .prepare_cached(ALLOCATE_CHANGE_SEQ)?
                .query_row(params![dirty.len() as i64, institution_id], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let mut seq = last - dirty.len() as i64;
            let ts = now();
            let mut update = tx.prepare_cached(UPDATE_CONTACT)?;
            // The parameters of UPDATE_CONTACT; the insert takes the same ones (the 23rd, the ID,
            // unused).
            let mut insert = tx.prepare_cached(
                "INSERT INTO contacts (first_name, last_name, preferred_name, phone, email, enrollment_id, crm_id, opt_in, test_user, archived, custom, cleared, change_seq, created_at, updated_at, institution_id, \
                 sms_opt_in, sms_opt_in_changed_at, street_address, street_address_2, city, state, zip_code, country) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?24, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
            )?;
            for key in dirty {
                seq += 1;
                let (d, exists) = chunk.slot(key);
                let phone = d.phone.as_ref().map(Phone::as_str);
                if let Some(f) = keys.as_mut() {
                    if let Some(crm) = &d.crm_id {
                        f.add(KeyKind::Crm, crm);
                    }
                    if let Some(phone) = phone {
                        f.add(KeyKind::Phone, phone);
                    }
                }
                let values = params![
                    d.first_name,
                    d.last_name,
                    d.preferred_name,
                    phone,
                    d.email.as_ref().map(Email::as_str),
                    d.enrollment_id,
                    d.crm_id,
                    d.opt_in,
                    d.test_user,
                    d.archived,
                    custom_json(d),
                    cleared_json(d),
                    seq,
                    ts,
                    d.sms_opt_in.as_str(),
                    d.sms_opt_in_changed_at.map(micros),
                    d.street_address,
                    d.street_address_2,
                    d.city,
                    d.state,
                    d.zip_code,
                    d.country,
                    key,
                    institution_id
                ];
                if exists {
                    update.execute(values)?;
                } else {
                    insert.execute(values)?;
                    ids.insert(key, tx.last_insert_rowid());
                }
            }
        }
        tx.commit()?;
        Ok(outcomes(landed, &ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_filter_holds_every_key_or_is_not_built() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, institution_id INTEGER, phone TEXT, crm_id TEXT);
             CREATE UNIQUE INDEX contacts_phone ON contacts (institution_id, phone);
             CREATE UNIQUE INDEX contacts_crm_id ON contacts (institution_id, crm_id);
             INSERT INTO contacts (institution_id, phone, crm_id) VALUES
               (1, '+16175550101', 'A'), (1, '+16175550102', NULL), (1, NULL, 'C'),
               (2, '+16175550199', 'Z');",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        // Two CRM IDs and two phones: a budget of one is not enough for either scan.
        assert!(KeyFilter::build(&tx, 1, 0, 1).unwrap().is_none());
        let f = KeyFilter::build(&tx, 1, 0, 2)
            .unwrap()
            .expect("within budget");
        for (kind, key) in [
            (KeyKind::Crm, "A"),
            (KeyKind::Crm, "C"),
            (KeyKind::Phone, "+16175550101"),
            (KeyKind::Phone, "+16175550102"),
        ] {
            assert!(f.may_hold(kind, key), "{key}");
        }
        // Another institution's keys, and a CRM ID asked for as a phone, are not in it.
        assert!(!f.may_hold(KeyKind::Crm, "Z"));
        assert!(!f.may_hold(KeyKind::Phone, "+16175550199"));
        assert!(!f.may_hold(KeyKind::Phone, "A"));
    }

    #[test]
    fn paths_from_urls() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/ferry/ferry.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/ferry/ferry.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://data/ferry.db"),
            Some(PathBuf::from("data/ferry.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/pct%41/f.db"),
            Some(PathBuf::from("/tmp/pctA/f.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
