//! Ferry's store: one implementation over SQLite (embedded default) and PostgreSQL.
//!
//! The queries are shared: both backends take `$N` placeholders, `RETURNING`, `ON CONFLICT`
//! and partial unique indexes, so one set of SQL gives one behaviour. Where the dialects differ
//! (the DDL, how a write transaction starts, `FOR UPDATE SKIP LOCKED`, and generated statements,
//! which take anonymous `?` on SQLite through `util::Params`) the code branches on [`Backend`]
//! in one visible place. Contact batch writes on SQLite go through `sqlite_bulk`. The
//! conformance tests in `tests/` run against both.

#![warn(missing_docs)]

mod accounts;
mod alerts;
pub mod audit;
mod auth;
mod bulk;
mod contact_sync;
mod contacts;
pub mod crypto;
mod csv_rows;
mod export;
mod fields;
mod import;
mod integrations;
mod messages;
mod migrate;
mod optin;
mod runs;
mod sftp;
mod signin;
mod sqlite_bulk;
mod synclog;
mod util;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use accounts::{CrmAccount, OAUTH_STATE_TTL_SECS};
pub use alerts::{
    AlertRecord, AlertSettings, AlertSettingsInput, PendingAlert, SecretChange,
    event as alert_event,
};
pub use audit::{Actor, ActorKind, AuditEntry, AuditPage, AuditQuery, NewAuditEvent};
pub use auth::{
    ApiToken, Institution, LAST_USED_GRANULARITY_SECS, MIN_PASSWORD_LEN, Membership, Principal,
    Session, SessionInfo, User, normalize_login,
};
pub use bulk::{
    BulkTemplate, CallInfo, MissingRecording, NewBulkTemplate, NewCall, RetentionCounts,
};
pub use contact_sync::ContactSync;
pub use contacts::{
    Applied, AppliedAction, ContactPage, ContactQuery, RowError, TestUserKeys, WriteKind,
    WriteOutcome,
};
pub use crypto::{MasterKey, SecretBox};
pub use export::{EXPORT_BATCH, ExportMessage, ExportStream, MessageWindow};
pub use import::{CsvImport, ImportError, ImportReport, ImportRowError, failed_rows_csv};
pub use integrations::{Integration, IntegrationUpdate, NewIntegration};
pub use messages::{Message, MessageCounts, MessageQuery, NewMessage};
pub use optin::{OptInPath, OptInPathInput, OutboxMessage};
pub use runs::{NewRun, Run, RunListener, RunOutcome, RunQuery};
pub use sftp::{
    DefenderPolicy, DefenderVerdict, NewSftpKey, SftpAccount, SftpEntry, SftpFile, SftpFileStatus,
    SftpHostKey, SftpKey, sftp_parent,
};
pub use synclog::{NewSyncLog, SyncLogEntry, SyncLogQuery};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Errors of the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist, or belongs to another institution.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (the message says which).
    #[error("{0}")]
    Conflict(String),
    /// The input broke a rule the store checks (the message says which).
    #[error("{field}: {message}")]
    Invalid {
        /// The input field at fault.
        field: String,
        /// The error dictionary's code.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// The database URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A sealed secret did not open: the master key, the context or the bytes are wrong.
    #[error("secret could not be decrypted: {0}")]
    Crypto(String),
    /// The database failed, through sqlx.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The database failed, through the SQLite connection that takes contact batch writes.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_string(),
            code,
            message: message.into(),
        }
    }

    /// Whether this is a unique-constraint violation, from either driver.
    pub(crate) fn is_unique(&self) -> bool {
        match self {
            StoreError::Db(e) => Self::is_unique_violation(e),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            }
            _ => false,
        }
    }

    /// Whether the error is a unique-constraint violation reported by the database.
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}

/// The store's result: its error defaults to [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle every part of Ferry uses to read and write state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Readers. On SQLite several connections read a WAL database concurrently.
    read: AnyPool,
    /// Writers. On SQLite a single connection, so that writes queue in-process instead of
    /// failing with SQLITE_BUSY; on PostgreSQL the same pool as `read`.
    write: AnyPool,
    secrets: SecretBox,
    /// SQLite only: the connection contact batch writes go through (see `sqlite_bulk`).
    bulk: Option<std::sync::Arc<sqlite_bulk::SqliteBulk>>,
    /// Wakes this process's workers when a run may have become claimable (see `runs_signal`).
    runs_changed: std::sync::Arc<tokio::sync::Notify>,
    /// PostgreSQL only: the URL a `LISTEN` connection of its own is opened with. Never logged.
    listen_url: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The SQLite database file inside a data directory.
pub fn default_sqlite_url(data_dir: &Path) -> String {
    // The path becomes part of a URL: escape what a URL would read as syntax.
    let path = data_dir.join("ferry.db").display().to_string();
    let escaped: String = path
        .chars()
        .map(|c| match c {
            '%' => "%25".to_string(),
            '?' => "%3F".to_string(),
            '#' => "%23".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("sqlite://{escaped}")
}

impl Store {
    /// Seals `plaintext` under the master key for `context` as URL-safe text, for a value that
    /// must travel through a browser without being readable there (a secret typed into a form
    /// whose save failed, so that it need not be typed again). Open it with
    /// [`Store::open_text`] and the same context.
    pub fn seal_text(&self, context: &str, plaintext: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.secrets.seal(context, plaintext.as_bytes()))
    }

    /// Opens what [`Store::seal_text`] sealed for the same context; `None` when it was sealed
    /// for another context or key, or was altered.
    pub fn open_text(&self, context: &str, sealed: &str) -> Option<String> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.trim())
            .ok()?;
        String::from_utf8(self.secrets.open(context, &bytes).ok()?).ok()
    }

    /// Connects to `sqlite://PATH` (created if missing, WAL) or `postgres://…`. Does not migrate.
    pub async fn connect(url: &str, secrets: SecretBox) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        // Contact writes on SQLite go through a connection of their own to the database file
        // (see `sqlite_bulk`), so an in-memory database, which each connection would see empty,
        // cannot work.
        let bulk_path = match backend {
            Backend::Sqlite => Some(sqlite_bulk::sqlite_path(url).ok_or_else(|| {
                StoreError::UnsupportedUrl(format!(
                    "{} (in-memory SQLite is not supported; name a file)",
                    redact_url(url)
                ))
            })?),
            Backend::Postgres => None,
        };
        let opts = match backend {
            Backend::Sqlite => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let with_mode = if url.contains("mode=") {
                    url.to_string()
                } else {
                    format!("{url}{sep}mode=rwc")
                };
                AnyConnectOptions::from_str(&with_mode)?
            }
            Backend::Postgres => AnyConnectOptions::from_str(url)?,
        };
        let (read, write) = match backend {
            Backend::Sqlite => {
                let pool = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                                     PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let write = pool(1).connect_with(opts.clone()).await?;
                let read = pool(4).connect_with(opts).await?;
                (read, write)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let bulk = match &bulk_path {
            Some(path) => Some(std::sync::Arc::new(sqlite_bulk::SqliteBulk::open(path)?)),
            None => None,
        };
        Ok(Store {
            backend,
            read,
            write,
            secrets,
            bulk,
            runs_changed: Default::default(),
            listen_url: match backend {
                Backend::Postgres => Some(url.into()),
                Backend::Sqlite => None,
            },
        })
    }

    /// Applies the migrations this build knows and the database has not seen.
    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        migrate::run(self).await
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. On SQLite `BEGIN IMMEDIATE` takes the write lock up front, so
    /// two processes on one file wait for each other instead of failing mid-transaction.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// Closes every connection (the WAL is checkpointed on SQLite).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

/// Hides a password in a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(feature = "testing")]
pub mod testing;
