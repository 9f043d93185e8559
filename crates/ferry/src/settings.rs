//! Settings resolved from flags and the environment: where data lives, which database, which
//! master key. The store is chosen here, once, from the URL's scheme.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_store::{MasterKey, SecretBox, Store};
use ferry_worker::{MIN_LEASE_HEARTBEATS, WorkerConfig, WorkerConfigError};

use crate::cli::GlobalArgs;

/// The environment variable that holds the master key. Never a flag: flags show in `ps`.
pub const MASTER_KEY_ENV: &str = "FERRY_MASTER_KEY";

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn of(url: &str) -> Result<DbKind> {
        if url.starts_with("sqlite:") {
            Ok(DbKind::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(DbKind::Postgres)
        } else {
            bail!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
                ferry_store::redact_url(url)
            )
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Absolute, so that the SQLite URL and messages do not depend on the working directory.
    pub data_dir: PathBuf,
    database_url: String,
    /// Whether the URL is the default SQLite file in the data directory.
    database_url_is_default: bool,
    pub db_kind: DbKind,
    pub listen: String,
    pub public_url: Option<String>,
    /// Where Ferry's SFTP uploads come from, for customers' allow lists.
    pub egress_ips: Vec<String>,
    /// `--trusted-proxies`: the peers whose X-Forwarded-For is believed.
    pub trusted_proxies: ferry_web::client::TrustedProxies,
    /// HubSpot settings that replace the environment's (`ferry demo` points them at its
    /// emulator).
    pub hubspot_override: Option<ferry_connectors::hubspot::HubSpotSettings>,
    /// Salesforce settings that replace the environment's (`ferry demo` points them at its
    /// emulator).
    pub salesforce_override: Option<ferry_connectors::salesforce::SalesforceSettings>,
    /// `--worker-heartbeat-secs`: how often a worker writes its run's heartbeat.
    pub worker_heartbeat: Duration,
    /// `--worker-lease-secs`: how old a heartbeat may get before another worker takes over.
    pub worker_lease: Duration,
    /// `--worker-concurrency`: how many runs a worker executes at once.
    pub worker_concurrency: usize,
    /// `--sftp-listen`: where Ferry's SFTP server listens; `None` when it is `off`.
    pub sftp_listen: Option<String>,
    /// `--storage-url`: where uploaded files are kept; `None` for DATA_DIR/vault.
    pub storage_url: Option<String>,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings> {
        let data_dir = std::path::absolute(&args.data_dir)
            .with_context(|| format!("data directory {}", args.data_dir.display()))?;
        let explicit = args
            .database_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let (database_url, database_url_is_default) = match explicit {
            Some(u) => (u.to_string(), false),
            None => (ferry_store::default_sqlite_url(&data_dir), true),
        };
        let db_kind = DbKind::of(&database_url)?;
        let public_url = args
            .public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());
        if let Some(u) = public_url
            .as_ref()
            .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            bail!("--public-url must start with http:// or https:// (got {u:?})");
        }
        let trusted_proxies =
            ferry_web::client::TrustedProxies::parse(args.trusted_proxies.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("--trusted-proxies (FERRY_TRUSTED_PROXIES): {e}"))?;
        Ok(Settings {
            trusted_proxies,
            data_dir,
            database_url,
            database_url_is_default,
            db_kind,
            listen: args.listen.clone(),
            public_url,
            egress_ips: args
                .egress_ips
                .iter()
                .map(|ip| ip.trim().to_string())
                .filter(|ip| !ip.is_empty())
                .collect(),
            hubspot_override: None,
            salesforce_override: None,
            worker_heartbeat: Duration::from_secs(args.worker_heartbeat_secs),
            worker_lease: Duration::from_secs(args.worker_lease_secs),
            worker_concurrency: usize::from(args.worker_concurrency),
            sftp_listen: Some(args.sftp_listen.trim().to_string())
                .filter(|a| !a.is_empty() && !a.eq_ignore_ascii_case("off")),
            storage_url: args
                .storage_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string),
        })
    }

    /// The worker's settings: the defaults with this heartbeat and lease. Refused when the
    /// lease is not well above the heartbeat (checked here, not in [`Settings::resolve`], so
    /// that only the commands that run a worker refuse to start).
    pub fn worker_config(&self) -> Result<WorkerConfig> {
        let config = WorkerConfig {
            heartbeat_interval: self.worker_heartbeat,
            stale_after: self.worker_lease,
            concurrency: self.worker_concurrency,
            smtp: smtp_settings()?,
            ..WorkerConfig::default()
        };
        match config.validate() {
            Ok(()) => Ok(config),
            Err(WorkerConfigError::LeaseTooShort { lease, heartbeat }) => bail!(
                "--worker-lease-secs (FERRY_WORKER_LEASE_SECS) is {} s but must be at least {MIN_LEASE_HEARTBEATS} times \
                 --worker-heartbeat-secs (FERRY_WORKER_HEARTBEAT_SECS, {} s), i.e. at least {} s: with a shorter lease \
                 one slow heartbeat would hand a live worker's run to another",
                lease.as_secs(),
                heartbeat.as_secs(),
                heartbeat.as_secs() * u64::from(MIN_LEASE_HEARTBEATS)
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// The start of links to Ferry's pages (exports link to messages): the public URL, else the
    /// listen address.
    pub fn link_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.clone(),
            None => {
                let listen = self.listen.replace("0.0.0.0", "127.0.0.1");
                format!("http://{listen}")
            }
        }
    }

    /// The connectors, with links under [`Settings::link_base`].
    pub fn registry(&self) -> ferry_connectors::Registry {
        let registry = ferry_connectors::Registry::builtin_with(&self.link_base(), &self.hubspot())
            .with_salesforce(&self.salesforce());
        match self.vault() {
            Ok(vault) => registry.with_upload_vault(vault),
            Err(e) => {
                tracing::warn!(error = %e, "no vault: bulk file runs cannot read uploaded files");
                registry
            }
        }
    }

    /// HubSpot's addresses and OAuth app, from `FERRY_HUBSPOT_API_URL`, `FERRY_HUBSPOT_AUTH_URL`,
    /// `FERRY_HUBSPOT_CLIENT_ID` and `FERRY_HUBSPOT_CLIENT_SECRET` (environment only: the secret
    /// must not show in `ps`).
    pub fn hubspot(&self) -> ferry_connectors::hubspot::HubSpotSettings {
        if let Some(h) = &self.hubspot_override {
            return h.clone();
        }
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut h = ferry_connectors::hubspot::HubSpotSettings::default();
        if let Some(u) = var("FERRY_HUBSPOT_API_URL") {
            h.api_url = u.trim_end_matches('/').to_string();
        }
        if let Some(u) = var("FERRY_HUBSPOT_AUTH_URL") {
            h.auth_url = u;
        }
        if let (Some(id), Some(secret)) = (
            var("FERRY_HUBSPOT_CLIENT_ID"),
            var("FERRY_HUBSPOT_CLIENT_SECRET"),
        ) {
            h.app = Some(ferry_connectors::hubspot::oauth::OAuthApp {
                client_id: id,
                client_secret: secret.into(),
            });
        }
        h
    }

    /// Salesforce's login host and connected app, from `FERRY_SALESFORCE_LOGIN_URL`,
    /// `FERRY_SALESFORCE_CLIENT_ID` and `FERRY_SALESFORCE_CLIENT_SECRET` (environment only: the
    /// secret must not show in `ps`).
    pub fn salesforce(&self) -> ferry_connectors::salesforce::SalesforceSettings {
        if let Some(s) = &self.salesforce_override {
            return s.clone();
        }
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut s = ferry_connectors::salesforce::SalesforceSettings::default();
        if let Some(u) = var("FERRY_SALESFORCE_LOGIN_URL") {
            s.login_url = u.trim_end_matches('/').to_string();
        }
        if let (Some(id), Some(secret)) = (
            var("FERRY_SALESFORCE_CLIENT_ID"),
            var("FERRY_SALESFORCE_CLIENT_SECRET"),
        ) {
            s.app = Some(ferry_connectors::salesforce::oauth::OAuthApp {
                client_id: id,
                client_secret: secret.into(),
            });
        }
        s
    }

    /// The database URL with any password hidden, for messages and logs.
    pub fn database_url_redacted(&self) -> String {
        ferry_store::redact_url(&self.database_url)
    }

    /// Creates the data directory (mode 0700) if it does not exist.
    pub fn ensure_data_dir(&self) -> Result<()> {
        create_private_dir(&self.data_dir)
    }

    /// The master key from `FERRY_MASTER_KEY`, else the key file in the data directory.
    pub fn secrets(&self) -> Result<SecretBox> {
        Ok(SecretBox::new(self.master_key()?))
    }

    /// Where uploaded files are kept, encrypted under a key derived from the master key: the
    /// storage URL (an S3-compatible bucket shared by several nodes), else DATA_DIR/vault.
    pub fn vault(&self) -> Result<ferry_vault::Vault> {
        let key = ferry_vault::VaultKey::from_bytes(self.master_key()?.derive_key("vault"));
        if let Some(url) = &self.storage_url {
            return ferry_vault::Vault::from_url(url, key)
                .with_context(|| format!("--storage-url (FERRY_STORAGE_URL) {url:?}"));
        }
        let dir = self.data_dir.join("vault");
        create_private_dir(&dir)?;
        ferry_vault::Vault::local(&dir, key)
            .with_context(|| format!("cannot open the vault in {}", dir.display()))
    }

    fn master_key(&self) -> Result<MasterKey> {
        let key = match std::env::var(MASTER_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => MasterKey::parse(&v)
                .map_err(|e| anyhow::anyhow!("{MASTER_KEY_ENV} is not a valid key: {e}"))?,
            _ => {
                self.ensure_data_dir()?;
                let path = self.data_dir.join("master.key");
                MasterKey::load_or_create(&path).map_err(anyhow::Error::msg)?
            }
        };
        Ok(key)
    }

    /// Connects to the database (creating the data directory for the default SQLite file).
    /// Does not migrate.
    pub async fn connect(&self) -> Result<Store> {
        if self.database_url_is_default {
            self.ensure_data_dir()?;
        }
        let secrets = self.secrets()?;
        let store = Store::connect(&self.database_url, secrets)
            .await
            .with_context(|| {
                format!("cannot open the database {}", self.database_url_redacted())
            })?;
        tracing::debug!(backend = ?self.db_kind, database = %self.database_url_redacted(), "connected");
        Ok(store)
    }

    /// Connects and applies pending migrations, logging what was applied.
    pub async fn connect_and_migrate(&self) -> Result<Store> {
        let store = self.connect().await?;
        let applied = store
            .migrate()
            .await
            .context("applying database migrations")?;
        for name in &applied {
            tracing::info!(migration = name, "applied migration");
        }
        Ok(store)
    }
}

/// Creates a directory and its parents; the last one gets mode 0700 on Unix.
pub fn create_private_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// The SMTP server for alert emails, from `FERRY_SMTP_URL` and `FERRY_ALERT_FROM` (environment
/// only: the URL may hold a password); `None` when `FERRY_SMTP_URL` is unset. Checked here so
/// that a bad URL stops the worker at start, not at the first alert.
fn smtp_settings() -> Result<Option<ferry_worker::alerts::SmtpSettings>> {
    let Some(url) = std::env::var("FERRY_SMTP_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let Some(from) = std::env::var("FERRY_ALERT_FROM")
        .ok()
        .filter(|f| !f.trim().is_empty())
    else {
        bail!(
            "FERRY_SMTP_URL is set but FERRY_ALERT_FROM is not: set the From address of alert emails, e.g. Ferry <ferry@example.edu>"
        );
    };
    let settings = ferry_worker::alerts::SmtpSettings {
        url: url.trim().to_string(),
        from: from.trim().to_string(),
    };
    ferry_worker::alerts::AlertSender::new(Some(&settings))?;
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_store() {
        assert_eq!(DbKind::of("sqlite:///tmp/x.db").unwrap(), DbKind::Sqlite);
        assert_eq!(DbKind::of("postgres://u:p@h/db").unwrap(), DbKind::Postgres);
        assert_eq!(DbKind::of("postgresql://h/db").unwrap(), DbKind::Postgres);
        let err = DbKind::of("mysql://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
