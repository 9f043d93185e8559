//! Ferry's own SFTP server: accounts per institution (public keys, an optional argon2 password),
//! host keys shared by every node (private halves sealed under the context `sftp_host_key:<alg>`),
//! the defender's per-IP scores and bans, and the namespace each account sees.
//!
//! The namespace lives here, not in the file system: folders are rows, and each upload is a row
//! with its own object key in the vault. Client paths therefore never become storage paths, and
//! a listing selects by exact parent (a sibling sharing a prefix is never matched). Paths are
//! absolute and normalised (`/`, `/inbox`, `/inbox/calls.csv`); the server normalises what
//! clients send, and the store refuses anything else.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::auth::{DUMMY_HASH, hash_password, verify_password};
use crate::util::{found, from_micros, get_bool, get_opt_ts, get_ts, micros, now};
use crate::{Result, Store, StoreError};

/// Usernames nobody gets: scanners try them (AWS Transfer Family blocks them too).
const RESERVED_USERNAMES: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "ftp",
    "sftp",
    "guest",
    "test",
    "user",
    "ubuntu",
    "oracle",
    "postgres",
    "ferry",
];

/// An SFTP account as people see it (the password only as whether one is set).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SftpAccount {
    /// The ID.
    pub id: i64,
    /// The institution it belongs to.
    pub institution_id: i64,
    /// The login name, unique across the server.
    pub username: String,
    /// Whether a password is set (password logins are off otherwise).
    pub password_set: bool,
    /// Disabled accounts cannot log in.
    pub enabled: bool,
    /// The last successful login.
    pub last_login_at: Option<Timestamp>,
    /// The address of the last successful login.
    pub last_login_ip: Option<String>,
    /// The public keys that may log in.
    pub keys: Vec<SftpKey>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its settings, keys or password last changed.
    pub updated_at: Timestamp,
}

/// A public key of an account.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SftpKey {
    /// The ID.
    pub id: i64,
    /// The SSH algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …).
    pub algorithm: String,
    /// The OpenSSH public key line, without the comment.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// The key's comment, for people.
    pub comment: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// A public key to add, already parsed and checked by the caller.
#[derive(Debug, Clone)]
pub struct NewSftpKey {
    /// The SSH algorithm.
    pub algorithm: String,
    /// The OpenSSH public key line, without the comment.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// A comment for people (may be empty).
    pub comment: String,
}

/// A host key of the server.
#[derive(Debug, Clone)]
pub struct SftpHostKey {
    /// The key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`).
    pub algorithm: String,
    /// The private key in OpenSSH format.
    pub private_key: SecretString,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// `SHA256:…`, for admins to give customers.
    pub fingerprint: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// How the defender scores and bans addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefenderPolicy {
    /// A ban starts when the score passes this within the observation window.
    pub threshold: i64,
    /// Seconds over which scores add up.
    pub observation_secs: i64,
    /// Seconds of the first ban; each later ban of the same address doubles it.
    pub ban_secs: i64,
    /// The longest ban.
    pub max_ban_secs: i64,
}

impl Default for DefenderPolicy {
    /// SFTPGo's defaults: a ban of 30 minutes when the score passes 15 within 30 minutes.
    fn default() -> Self {
        DefenderPolicy {
            threshold: 15,
            observation_secs: 30 * 60,
            ban_secs: 30 * 60,
            max_ban_secs: 24 * 3600,
        }
    }
}

/// Where an address stands after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefenderVerdict {
    /// The score within the current window.
    pub score: i64,
    /// Until when the address is banned, if it is.
    pub banned_until: Option<Timestamp>,
}

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SftpFileStatus {
    /// Being written.
    Uploading,
    /// The connection ended before a clean close: never ingested.
    Partial,
    /// Closed cleanly with content.
    Complete,
    /// Closed cleanly with no content: reported, not ingested.
    Empty,
    /// The same content as a file of the account already taken: not ingested again.
    Duplicate,
    /// Taken in by ingestion.
    Ingested,
    /// Refused by ingestion (no template takes it, or its columns differ): moved to
    /// `quarantine/` with the reason beside it.
    Quarantined,
}

impl SftpFileStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SftpFileStatus::Uploading => "uploading",
            SftpFileStatus::Partial => "partial",
            SftpFileStatus::Complete => "complete",
            SftpFileStatus::Empty => "empty",
            SftpFileStatus::Duplicate => "duplicate",
            SftpFileStatus::Ingested => "ingested",
            SftpFileStatus::Quarantined => "quarantined",
        }
    }

    fn parse(s: &str) -> Result<SftpFileStatus> {
        Ok(match s {
            "uploading" => SftpFileStatus::Uploading,
            "partial" => SftpFileStatus::Partial,
            "complete" => SftpFileStatus::Complete,
            "empty" => SftpFileStatus::Empty,
            "duplicate" => SftpFileStatus::Duplicate,
            "ingested" => SftpFileStatus::Ingested,
            "quarantined" => SftpFileStatus::Quarantined,
            other => {
                return Err(StoreError::Db(sqlx::Error::Decode(
                    format!("unknown SFTP file status {other:?}").into(),
                )));
            }
        })
    }
}

/// An uploaded file (one upload attempt).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SftpFile {
    /// The ID.
    pub id: i64,
    /// The institution.
    pub institution_id: i64,
    /// The account that uploaded it.
    pub account_id: i64,
    /// Its path in the account's namespace.
    pub path: String,
    /// Where the vault keeps it.
    #[serde(skip)]
    pub object_key: String,
    /// Where the upload stands.
    pub status: SftpFileStatus,
    /// Whether the account sees it (a later upload of the same name, or a REMOVE, hides it).
    pub visible: bool,
    /// Plaintext bytes.
    pub size: i64,
    /// SHA-256 of the plaintext, once complete.
    pub sha256: Option<String>,
    /// When it became ready for ingestion: complete under an accepted name.
    pub ready_at: Option<Timestamp>,
    /// When the upload began.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// The run that ingests it (trigger `file_arrived`), once one is queued.
    pub run_id: Option<i64>,
    /// The template it was read with, once ingestion picked one.
    pub template_id: Option<i64>,
    /// When ingestion ended (ingested or quarantined).
    pub ingested_at: Option<Timestamp>,
    /// When retention deleted its content (the record stays, hidden).
    pub purged_at: Option<Timestamp>,
    /// Written by Ferry (a report, a quarantine note), not uploaded: never ingested.
    pub by_ferry: bool,
}

/// An entry of an account's namespace.
#[derive(Debug, Clone, PartialEq)]
// Entries live briefly (a listing, a lookup); boxing the file would only add allocations.
#[allow(clippy::large_enum_variant)]
pub enum SftpEntry {
    /// A folder (the root `/` always exists and has no row).
    Dir {
        /// Its path.
        path: String,
        /// When it was made.
        created_at: Timestamp,
    },
    /// A visible file.
    File(SftpFile),
}

impl SftpEntry {
    /// The entry's path.
    pub fn path(&self) -> &str {
        match self {
            SftpEntry::Dir { path, .. } => path,
            SftpEntry::File(f) => &f.path,
        }
    }
}

/// Checks a namespace path (absolute, normalised, not the root) and returns its parent.
pub fn sftp_parent(path: &str) -> Result<&str> {
    let bad = || {
        StoreError::invalid(
            "path",
            "invalid_value",
            format!("{path:?} is not a normalised absolute path"),
        )
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty()
        || rest
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\0'))
    {
        return Err(bad());
    }
    let cut = path.rfind('/').expect("starts with a slash");
    Ok(if cut == 0 { "/" } else { &path[..cut] })
}

fn check_username(username: &str) -> Result<()> {
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let starts = username
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=32).contains(&username.len()) || !ok_chars || !starts {
        return Err(StoreError::invalid(
            "username",
            "invalid_value",
            "a username has 3 to 32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    if RESERVED_USERNAMES.contains(&username) {
        return Err(StoreError::invalid(
            "username",
            "invalid_value",
            format!("{username:?} is reserved"),
        ));
    }
    Ok(())
}

const ACCOUNT_COLS: &str = "id, institution_id, username, password_hash, enabled, last_login_at, last_login_ip, created_at, updated_at";
pub(crate) const FILE_COLS: &str = "id, institution_id, account_id, path, object_key, status, visible, size, sha256, ready_at, created_at, updated_at, run_id, template_id, ingested_at, purged_at, by_ferry";

fn key_from(row: &AnyRow) -> Result<SftpKey> {
    Ok(SftpKey {
        id: row.try_get("id")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        comment: row.try_get("comment")?,
        created_at: get_ts(row, "created_at")?,
    })
}

pub(crate) fn file_from(row: &AnyRow) -> Result<SftpFile> {
    Ok(SftpFile {
        id: row.try_get("id")?,
        institution_id: row.try_get("institution_id")?,
        account_id: row.try_get("account_id")?,
        path: row.try_get("path")?,
        object_key: row.try_get("object_key")?,
        status: SftpFileStatus::parse(&row.try_get::<String, _>("status")?)?,
        visible: get_bool(row, "visible")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        ready_at: get_opt_ts(row, "ready_at")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        run_id: row.try_get("run_id")?,
        template_id: row.try_get("template_id")?,
        ingested_at: get_opt_ts(row, "ingested_at")?,
        purged_at: get_opt_ts(row, "purged_at")?,
        by_ferry: get_bool(row, "by_ferry")?,
    })
}

fn host_context(algorithm: &str) -> String {
    format!("sftp_host_key:{algorithm}")
}

impl Store {
    async fn sftp_account_from(&self, row: &AnyRow) -> Result<SftpAccount> {
        let id: i64 = row.try_get("id")?;
        let keys = sqlx::query("SELECT id, algorithm, public_key, fingerprint, comment, created_at FROM sftp_account_keys WHERE account_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(key_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(SftpAccount {
            id,
            institution_id: row.try_get("institution_id")?,
            username: row.try_get("username")?,
            password_set: row.try_get::<Option<String>, _>("password_hash")?.is_some(),
            enabled: get_bool(row, "enabled")?,
            last_login_at: get_opt_ts(row, "last_login_at")?,
            last_login_ip: row.try_get("last_login_ip")?,
            keys,
            created_at: get_ts(row, "created_at")?,
            updated_at: get_ts(row, "updated_at")?,
        })
    }

    /// Creates an enabled account with no keys and no password.
    pub async fn create_sftp_account(
        &self,
        institution_id: i64,
        username: &str,
    ) -> Result<SftpAccount> {
        check_username(username)?;
        let ts = now();
        let row = sqlx::query("INSERT INTO sftp_accounts (institution_id, username, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id")
            .bind(institution_id)
            .bind(username)
            .bind(true)
            .bind(ts)
            .fetch_one(&self.write)
            .await
            .map_err(|e| {
                if StoreError::is_unique_violation(&e) {
                    StoreError::Conflict(format!("the username {username:?} is taken"))
                } else {
                    e.into()
                }
            })?;
        self.sftp_account(institution_id, row.try_get(0)?).await
    }

    /// One account of the institution.
    pub async fn sftp_account(&self, institution_id: i64, id: i64) -> Result<SftpAccount> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLS} FROM sftp_accounts WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        self.sftp_account_from(&row).await
    }

    /// The institution's accounts, oldest first.
    pub async fn sftp_accounts(&self, institution_id: i64) -> Result<Vec<SftpAccount>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLS} FROM sftp_accounts WHERE institution_id = $1 ORDER BY id"
        )))
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.sftp_account_from(r).await?);
        }
        Ok(out)
    }

    /// The account with this username, whatever its institution (for the server's logins).
    pub async fn sftp_account_by_username(&self, username: &str) -> Result<Option<SftpAccount>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLS} FROM sftp_accounts WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        match row {
            Some(r) => Ok(Some(self.sftp_account_from(&r).await?)),
            None => Ok(None),
        }
    }

    /// Enables or disables an account.
    pub async fn set_sftp_account_enabled(
        &self,
        institution_id: i64,
        id: i64,
        enabled: bool,
    ) -> Result<SftpAccount> {
        found(
            sqlx::query("UPDATE sftp_accounts SET enabled = $1, updated_at = $2 WHERE institution_id = $3 AND id = $4")
                .bind(enabled)
                .bind(now())
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?,
        )?;
        self.sftp_account(institution_id, id).await
    }

    /// Sets (argon2id) or clears the account's password.
    pub async fn set_sftp_password(
        &self,
        institution_id: i64,
        id: i64,
        password: Option<&str>,
    ) -> Result<SftpAccount> {
        let hash = match password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        found(
            sqlx::query("UPDATE sftp_accounts SET password_hash = $1, updated_at = $2 WHERE institution_id = $3 AND id = $4")
                .bind(hash)
                .bind(now())
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?,
        )?;
        self.sftp_account(institution_id, id).await
    }

    /// Deletes an account with its keys and namespace rows (the vault's objects stay until
    /// retention removes them).
    pub async fn delete_sftp_account(&self, institution_id: i64, id: i64) -> Result<()> {
        found(
            sqlx::query("DELETE FROM sftp_accounts WHERE institution_id = $1 AND id = $2")
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?,
        )
    }

    /// Adds a public key to an account; `Conflict` if the account has it already.
    pub async fn add_sftp_key(
        &self,
        institution_id: i64,
        account_id: i64,
        key: &NewSftpKey,
    ) -> Result<SftpKey> {
        self.sftp_account(institution_id, account_id).await?;
        let ts = now();
        let row = sqlx::query("INSERT INTO sftp_account_keys (account_id, algorithm, public_key, fingerprint, comment, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, algorithm, public_key, fingerprint, comment, created_at")
            .bind(account_id)
            .bind(&key.algorithm)
            .bind(&key.public_key)
            .bind(&key.fingerprint)
            .bind(&key.comment)
            .bind(ts)
            .fetch_one(&self.write)
            .await
            .map_err(|e| {
                if StoreError::is_unique_violation(&e) {
                    StoreError::Conflict(format!("the account already has the key {}", key.fingerprint))
                } else {
                    e.into()
                }
            })?;
        sqlx::query("UPDATE sftp_accounts SET updated_at = $1 WHERE id = $2")
            .bind(ts)
            .bind(account_id)
            .execute(&self.write)
            .await?;
        key_from(&row)
    }

    /// Removes a public key from an account.
    pub async fn delete_sftp_key(
        &self,
        institution_id: i64,
        account_id: i64,
        key_id: i64,
    ) -> Result<()> {
        self.sftp_account(institution_id, account_id).await?;
        found(
            sqlx::query("DELETE FROM sftp_account_keys WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(key_id)
                .execute(&self.write)
                .await?,
        )
    }

    /// Checks a password login: the account when the username exists, is enabled, has a password
    /// and it matches; `None` otherwise (an argon2 verification runs either way, so the time
    /// taken does not tell which).
    pub async fn verify_sftp_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<SftpAccount>> {
        let row = sqlx::query(
            "SELECT id, institution_id, password_hash, enabled FROM sftp_accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        let (candidate, hash) = match &row {
            Some(r) => match r.try_get::<Option<String>, _>("password_hash")? {
                Some(h) if get_bool(r, "enabled")? => (
                    Some((
                        r.try_get::<i64, _>("institution_id")?,
                        r.try_get::<i64, _>("id")?,
                    )),
                    h,
                ),
                _ => (None, DUMMY_HASH.to_string()),
            },
            None => (None, DUMMY_HASH.to_string()),
        };
        let ok = verify_password(password.to_string(), hash).await;
        match candidate {
            Some((inst, id)) if ok => Ok(Some(self.sftp_account(inst, id).await?)),
            _ => Ok(None),
        }
    }

    /// Records a successful login.
    pub async fn record_sftp_login(&self, account_id: i64, ip: &str) -> Result<()> {
        sqlx::query(
            "UPDATE sftp_accounts SET last_login_at = $1, last_login_ip = $2 WHERE id = $3",
        )
        .bind(now())
        .bind(ip)
        .bind(account_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The server's host keys, by algorithm.
    pub async fn sftp_host_keys(&self) -> Result<Vec<SftpHostKey>> {
        let rows = sqlx::query("SELECT algorithm, private_key, public_key, fingerprint, created_at FROM sftp_host_keys ORDER BY algorithm")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                let algorithm: String = r.try_get("algorithm")?;
                let sealed: Vec<u8> = r.try_get("private_key")?;
                let private = self.secrets.open(&host_context(&algorithm), &sealed)?;
                let private = String::from_utf8(private)
                    .map_err(|_| StoreError::Crypto("host key is not text".into()))?;
                Ok(SftpHostKey {
                    algorithm,
                    private_key: SecretString::from(private),
                    public_key: r.try_get("public_key")?,
                    fingerprint: r.try_get("fingerprint")?,
                    created_at: get_ts(r, "created_at")?,
                })
            })
            .collect()
    }

    /// The host keys' algorithms and `SHA256:…` fingerprints (nothing secret), for admins.
    pub async fn sftp_host_fingerprints(&self) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT algorithm, fingerprint FROM sftp_host_keys ORDER BY algorithm")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("algorithm")?, r.try_get("fingerprint")?)))
            .collect()
    }

    /// Keeps `key` as the host key of its algorithm unless one exists already; returns the one
    /// kept. Several nodes starting at once agree on one key.
    pub async fn add_sftp_host_key_if_absent(&self, key: &SftpHostKey) -> Result<SftpHostKey> {
        let sealed = self.secrets.seal(
            &host_context(&key.algorithm),
            key.private_key.expose_secret().as_bytes(),
        );
        sqlx::query("INSERT INTO sftp_host_keys (algorithm, private_key, public_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (algorithm) DO NOTHING")
            .bind(&key.algorithm)
            .bind(sealed)
            .bind(&key.public_key)
            .bind(&key.fingerprint)
            .bind(micros(key.created_at))
            .execute(&self.write)
            .await?;
        self.sftp_host_keys()
            .await?
            .into_iter()
            .find(|k| k.algorithm == key.algorithm)
            .ok_or(StoreError::NotFound)
    }

    /// Until when `ip` is banned, if it is.
    pub async fn sftp_banned_until(&self, ip: &str) -> Result<Option<Timestamp>> {
        let row = sqlx::query("SELECT banned_until FROM sftp_defender WHERE ip = $1")
            .bind(ip)
            .fetch_optional(&self.read)
            .await?;
        let now = now();
        Ok(row
            .map(|r| r.try_get::<Option<i64>, _>("banned_until"))
            .transpose()?
            .flatten()
            .filter(|&until| until > now)
            .map(from_micros))
    }

    /// Adds `points` to `ip`'s score (scores older than the observation window are forgotten);
    /// bans it when the score passes the threshold, each ban twice as long as the one before.
    pub async fn sftp_defender_event(
        &self,
        ip: &str,
        points: i64,
        policy: &DefenderPolicy,
    ) -> Result<DefenderVerdict> {
        let mut tx = self.begin_write().await?;
        let now = now();
        let row = sqlx::query(
            "SELECT score, window_start, banned_until, bans FROM sftp_defender WHERE ip = $1",
        )
        .bind(ip)
        .fetch_optional(&mut *tx)
        .await?;
        let (mut score, mut window_start, mut banned_until, mut bans) = match &row {
            Some(r) => (
                r.try_get::<i64, _>("score")?,
                r.try_get::<i64, _>("window_start")?,
                r.try_get::<Option<i64>, _>("banned_until")?,
                r.try_get::<i64, _>("bans")?,
            ),
            None => (0, now, None, 0),
        };
        if now - window_start > policy.observation_secs * 1_000_000 {
            score = 0;
            window_start = now;
        }
        score += points;
        let banned_now = banned_until.is_some_and(|u| u > now);
        if !banned_now && score > policy.threshold {
            let secs = policy
                .ban_secs
                .saturating_mul(1i64 << bans.clamp(0, 20))
                .min(policy.max_ban_secs);
            banned_until = Some(now + secs * 1_000_000);
            bans += 1;
            score = 0;
            window_start = now;
        }
        sqlx::query("INSERT INTO sftp_defender (ip, score, window_start, banned_until, bans, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ip) DO UPDATE SET score = excluded.score, window_start = excluded.window_start, banned_until = excluded.banned_until, bans = excluded.bans, updated_at = excluded.updated_at")
            .bind(ip)
            .bind(score)
            .bind(window_start)
            .bind(banned_until)
            .bind(bans)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DefenderVerdict {
            score,
            banned_until: banned_until.filter(|&u| u > now).map(from_micros),
        })
    }

    /// Lifts the ban of `ip` and forgets its score.
    pub async fn sftp_unban(&self, ip: &str) -> Result<()> {
        sqlx::query("DELETE FROM sftp_defender WHERE ip = $1")
            .bind(ip)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The entry at `path` in the account's namespace (`/` is always a folder).
    pub async fn sftp_lookup(&self, account_id: i64, path: &str) -> Result<Option<SftpEntry>> {
        if path == "/" {
            return Ok(Some(SftpEntry::Dir {
                path: "/".into(),
                created_at: Timestamp::UNIX_EPOCH,
            }));
        }
        sftp_parent(path)?;
        let file = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE account_id = $1 AND path = $2 AND visible = $3"
        )))
        .bind(account_id)
        .bind(path)
        .bind(true)
        .fetch_optional(&self.read)
        .await?;
        if let Some(f) = file {
            return Ok(Some(SftpEntry::File(file_from(&f)?)));
        }
        let dir = sqlx::query(
            "SELECT path, created_at FROM sftp_dirs WHERE account_id = $1 AND path = $2",
        )
        .bind(account_id)
        .bind(path)
        .fetch_optional(&self.read)
        .await?;
        Ok(match dir {
            Some(d) => Some(SftpEntry::Dir {
                path: d.try_get("path")?,
                created_at: get_ts(&d, "created_at")?,
            }),
            None => None,
        })
    }

    /// The folders and visible files directly in folder `dir`, folders first, by name.
    pub async fn sftp_list(&self, account_id: i64, dir: &str) -> Result<Vec<SftpEntry>> {
        let mut out = Vec::new();
        for d in sqlx::query(
            "SELECT path, created_at FROM sftp_dirs WHERE account_id = $1 AND parent = $2 ORDER BY path",
        )
        .bind(account_id)
        .bind(dir)
        .fetch_all(&self.read)
        .await?
        {
            out.push(SftpEntry::Dir {
                path: d.try_get("path")?,
                created_at: get_ts(&d, "created_at")?,
            });
        }
        for f in sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE account_id = $1 AND parent = $2 AND visible = $3 ORDER BY path"
        )))
        .bind(account_id)
        .bind(dir)
        .bind(true)
        .fetch_all(&self.read)
        .await?
        {
            out.push(SftpEntry::File(file_from(&f)?));
        }
        Ok(out)
    }

    async fn sftp_check_free(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        account_id: i64,
        path: &str,
    ) -> Result<()> {
        let parent = sftp_parent(path)?;
        if parent != "/" {
            let p = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2")
                .bind(account_id)
                .bind(parent)
                .fetch_optional(&mut **tx)
                .await?;
            if p.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        let taken = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2 UNION ALL SELECT 1 FROM sftp_files WHERE account_id = $1 AND path = $2 AND visible = $3")
            .bind(account_id)
            .bind(path)
            .bind(true)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("{path} already exists")));
        }
        Ok(())
    }

    /// Makes a folder; `NotFound` if its parent is missing, `Conflict` if the name is taken.
    pub async fn sftp_mkdir(&self, account_id: i64, path: &str) -> Result<()> {
        let parent = sftp_parent(path)?.to_string();
        let mut tx = self.begin_write().await?;
        self.sftp_check_free(&mut tx, account_id, path).await?;
        sqlx::query(
            "INSERT INTO sftp_dirs (account_id, parent, path, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(parent)
        .bind(path)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an empty folder; `Conflict` if something is in it.
    pub async fn sftp_rmdir(&self, account_id: i64, path: &str) -> Result<()> {
        sftp_parent(path)?;
        let mut tx = self.begin_write().await?;
        let inside = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND parent = $2 UNION ALL SELECT 1 FROM sftp_files WHERE account_id = $1 AND parent = $2 AND visible = $3")
            .bind(account_id)
            .bind(path)
            .bind(true)
            .fetch_optional(&mut *tx)
            .await?;
        if inside.is_some() {
            return Err(StoreError::Conflict(format!("{path} is not empty")));
        }
        found(
            sqlx::query("DELETE FROM sftp_dirs WHERE account_id = $1 AND path = $2")
                .bind(account_id)
                .bind(path)
                .execute(&mut *tx)
                .await?,
        )?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an upload beginning at `path` (its parent must exist and the path must not be a
    /// folder; an existing file stays visible until this one completes).
    pub async fn sftp_begin_upload(
        &self,
        account_id: i64,
        path: &str,
        object_key: &str,
    ) -> Result<SftpFile> {
        let parent = sftp_parent(path)?.to_string();
        let mut tx = self.begin_write().await?;
        if parent != "/" {
            sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2")
                .bind(account_id)
                .bind(&parent)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        }
        let is_dir = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2")
            .bind(account_id)
            .bind(path)
            .fetch_optional(&mut *tx)
            .await?;
        if is_dir.is_some() {
            return Err(StoreError::Conflict(format!("{path} is a folder")));
        }
        let ts = now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sftp_files (institution_id, account_id, parent, path, object_key, status, visible, created_at, updated_at) SELECT institution_id, id, $1, $2, $3, $4, $5, $6, $6 FROM sftp_accounts WHERE id = $7 RETURNING {FILE_COLS}"
        )))
        .bind(&parent)
        .bind(path)
        .bind(object_key)
        .bind(SftpFileStatus::Uploading.as_str())
        .bind(false)
        .bind(ts)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        file_from(&row)
    }

    /// Marks an upload complete (or empty) after a clean close: it becomes the visible file at
    /// its path (hiding the one before). With `accepted_name` (not a temporary name) a complete
    /// file becomes ready for ingestion, or `Duplicate` when the account already has a ready
    /// file with the same content.
    pub async fn sftp_finish_upload(
        &self,
        file_id: i64,
        size: i64,
        sha256: &str,
        accepted_name: bool,
    ) -> Result<SftpFile> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE id = $1"
        )))
        .bind(file_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let file = file_from(&row)?;
        if file.status != SftpFileStatus::Uploading {
            return Err(StoreError::Conflict(format!(
                "upload {file_id} is already {}",
                file.status.as_str()
            )));
        }
        let ts = now();
        sqlx::query("UPDATE sftp_files SET visible = $1, updated_at = $2 WHERE account_id = $3 AND path = $4 AND visible = $5")
            .bind(false)
            .bind(ts)
            .bind(file.account_id)
            .bind(&file.path)
            .bind(true)
            .execute(&mut *tx)
            .await?;
        let status = if size == 0 {
            SftpFileStatus::Empty
        } else {
            SftpFileStatus::Complete
        };
        sqlx::query("UPDATE sftp_files SET status = $1, visible = $2, size = $3, sha256 = $4, updated_at = $5 WHERE id = $6")
            .bind(status.as_str())
            .bind(true)
            .bind(size)
            .bind(sha256)
            .bind(ts)
            .bind(file_id)
            .execute(&mut *tx)
            .await?;
        if accepted_name && status == SftpFileStatus::Complete {
            make_ready(&mut tx, file_id, file.account_id, sha256, ts).await?;
        }
        tx.commit().await?;
        self.sftp_file(file_id).await
    }

    /// Marks an upload whose connection ended before a clean close as partial: never ingested.
    pub async fn sftp_mark_partial(&self, file_id: i64, size: i64) -> Result<SftpFile> {
        sqlx::query("UPDATE sftp_files SET status = $1, size = $2, updated_at = $3 WHERE id = $4 AND status = $5")
            .bind(SftpFileStatus::Partial.as_str())
            .bind(size)
            .bind(now())
            .bind(file_id)
            .bind(SftpFileStatus::Uploading.as_str())
            .execute(&self.write)
            .await?;
        self.sftp_file(file_id).await
    }

    /// Notes that an upload is still being written (and how far it got), so that sweeps of
    /// abandoned uploads leave it alone.
    pub async fn sftp_touch_upload(&self, file_id: i64, size: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sftp_files SET size = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(size)
        .bind(now())
        .bind(file_id)
        .bind(SftpFileStatus::Uploading.as_str())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Marks uploads not written to since `before` as partial: their server stopped (a crashed
    /// node) without seeing the connection end. Returns them.
    pub async fn sftp_sweep_abandoned_uploads(&self, before: Timestamp) -> Result<Vec<SftpFile>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sftp_files SET status = $1, updated_at = $2 WHERE status = $3 AND updated_at < $4 RETURNING {FILE_COLS}"
        )))
        .bind(SftpFileStatus::Partial.as_str())
        .bind(now())
        .bind(SftpFileStatus::Uploading.as_str())
        .bind(micros(before))
        .fetch_all(&self.write)
        .await?
        .iter()
        .map(file_from)
        .collect()
    }

    /// Hides the visible file at `path` (REMOVE); its record stays.
    pub async fn sftp_remove(&self, account_id: i64, path: &str) -> Result<SftpFile> {
        sftp_parent(path)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sftp_files SET visible = $1, updated_at = $2 WHERE account_id = $3 AND path = $4 AND visible = $5 RETURNING {FILE_COLS}"
        )))
        .bind(false)
        .bind(now())
        .bind(account_id)
        .bind(path)
        .bind(true)
        .fetch_optional(&self.write)
        .await?
        .ok_or(StoreError::NotFound)?;
        file_from(&row)
    }

    /// Renames a visible file (folders are not renamed). The target must be free. Renamed
    /// into an accepted name, a complete file that was not ready becomes ready (or `Duplicate`).
    pub async fn sftp_rename(
        &self,
        account_id: i64,
        from: &str,
        to: &str,
        accepted_name: bool,
    ) -> Result<SftpFile> {
        sftp_parent(from)?;
        let to_parent = sftp_parent(to)?.to_string();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE account_id = $1 AND path = $2 AND visible = $3"
        )))
        .bind(account_id)
        .bind(from)
        .bind(true)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let is_dir = sqlx::query("SELECT 1 FROM sftp_dirs WHERE account_id = $1 AND path = $2")
                .bind(account_id)
                .bind(from)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(if is_dir.is_some() {
                StoreError::invalid("path", "invalid_value", "folders cannot be renamed")
            } else {
                StoreError::NotFound
            });
        };
        let file = file_from(&row)?;
        self.sftp_check_free(&mut tx, account_id, to).await?;
        let ts = now();
        sqlx::query("UPDATE sftp_files SET path = $1, parent = $2, updated_at = $3 WHERE id = $4")
            .bind(to)
            .bind(&to_parent)
            .bind(ts)
            .bind(file.id)
            .execute(&mut *tx)
            .await?;
        if accepted_name && file.status == SftpFileStatus::Complete && file.ready_at.is_none() {
            let sha = file.sha256.clone().unwrap_or_default();
            make_ready(&mut tx, file.id, account_id, &sha, ts).await?;
        }
        tx.commit().await?;
        self.sftp_file(file.id).await
    }

    /// One upload record, by ID (server side: no institution check).
    pub async fn sftp_file(&self, id: i64) -> Result<SftpFile> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        file_from(&row)
    }

    /// The institution's upload records, newest first.
    pub async fn sftp_files(&self, institution_id: i64, limit: i64) -> Result<Vec<SftpFile>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE institution_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(institution_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(file_from)
        .collect()
    }

    /// Files ready for ingestion and not yet taken, oldest first.
    pub async fn sftp_ready_files(&self, limit: i64) -> Result<Vec<SftpFile>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLS} FROM sftp_files WHERE status = $1 AND ready_at IS NOT NULL ORDER BY ready_at, id LIMIT $2"
        )))
        .bind(SftpFileStatus::Complete.as_str())
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(file_from)
        .collect()
    }

    /// Marks a ready file as ingested (once: `Conflict` if it was not waiting).
    pub async fn sftp_mark_ingested(&self, file_id: i64) -> Result<()> {
        let done = sqlx::query("UPDATE sftp_files SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND ready_at IS NOT NULL")
            .bind(SftpFileStatus::Ingested.as_str())
            .bind(now())
            .bind(file_id)
            .bind(SftpFileStatus::Complete.as_str())
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "file {file_id} is not waiting for ingestion"
            )));
        }
        Ok(())
    }
}

async fn make_ready(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    file_id: i64,
    account_id: i64,
    sha256: &str,
    ts: i64,
) -> Result<()> {
    let same = sqlx::query("SELECT 1 FROM sftp_files WHERE account_id = $1 AND sha256 = $2 AND id <> $3 AND ready_at IS NOT NULL AND status IN ($4, $5)")
        .bind(account_id)
        .bind(sha256)
        .bind(file_id)
        .bind(SftpFileStatus::Complete.as_str())
        .bind(SftpFileStatus::Ingested.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    let status = if same.is_some() {
        SftpFileStatus::Duplicate
    } else {
        SftpFileStatus::Complete
    };
    sqlx::query("UPDATE sftp_files SET status = $1, ready_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(ts)
        .bind(file_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parents() {
        assert_eq!(sftp_parent("/a").unwrap(), "/");
        assert_eq!(sftp_parent("/a/b.csv").unwrap(), "/a");
        for bad in ["", "/", "a", "/a/", "//a", "/a/../b", "/./a", "/a\0b"] {
            assert!(sftp_parent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames() {
        assert!(check_username("state-u.uploads").is_ok());
        for bad in ["ab", "root", "Admin", "../x", "a b", "-ab", &"a".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
    }
}
