#![warn(missing_docs)]
//! Ferry's HTTP server: the REST API v1 (JSON, OpenAPI at `/api/openapi.json`) and the
//! server-rendered UI, both built from one route table that also declares who may call what.

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
mod extract;
pub mod observe;
pub mod routes;
mod signin;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use ferry_connectors::{IntegrationService, Registry};
use ferry_store::Store;

/// Settings of the web server.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The address people reach Ferry at (e.g. `https://ferry.example.edu`); links and the
    /// cookie's `Secure` flag follow it.
    pub public_url: Option<String>,
    /// The largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// The largest CSV import body, in bytes.
    pub max_import_bytes: usize,
    /// The addresses Ferry's SFTP uploads come from (`FERRY_EGRESS_IPS`), shown on the SFTP
    /// screens for customers' allow lists.
    pub egress_ips: Vec<String>,
    /// How long a save waits for the remote's check, and Test Connection for the remote.
    pub remote_timeout: std::time::Duration,
    /// The reverse proxies whose `X-Forwarded-For` names the client (`FERRY_TRUSTED_PROXIES`);
    /// from any other peer the header is ignored.
    pub trusted_proxies: client::TrustedProxies,
    /// How failed sign-ins slow further attempts.
    pub signin: ferry_core::signin::Policy,
    /// The `host:port` customers connect to for Ferry's own SFTP server, when it runs.
    pub sftp_address: Option<String>,
    /// Whether alert emails can be sent (`FERRY_SMTP_URL` is set): Settings → Alerts says so.
    pub smtp_configured: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            public_url: None,
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 64 * 1024 * 1024,
            egress_ips: Vec::new(),
            remote_timeout: ferry_connectors::service::DEFAULT_REMOTE_TIMEOUT,
            trusted_proxies: Default::default(),
            signin: Default::default(),
            sftp_address: None,
            smtp_configured: false,
        }
    }
}

impl WebConfig {
    /// Whether the session cookie gets the `Secure` flag (the public URL is `https://`).
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The server's settings.
    pub config: Arc<WebConfig>,
    /// The connectors: integration kinds, config validation, Test Connection.
    pub registry: Registry,
    /// The integration lifecycle (create, change, Test Connection, Run now) over the store and
    /// the registry.
    pub service: IntegrationService,
    /// Where uploaded files (and call recordings) are stored, encrypted; `None` when this
    /// process has no file storage (recordings then cannot be played).
    pub vault: Option<ferry_vault::Vault>,
    pub(crate) metrics: observe::MetricsHandle,
}

impl AppState {
    /// The state of a server over `store` with `config` and the connectors of `registry`.
    pub fn new(store: Store, config: WebConfig, registry: Registry) -> AppState {
        AppState {
            service: IntegrationService::new(store.clone(), registry.clone())
                .with_remote_timeout(config.remote_timeout),
            store,
            config: Arc::new(config),
            registry,
            vault: None,
            metrics: observe::metrics_handle(),
        }
    }

    /// The same state reading recordings from `vault`.
    pub fn with_vault(mut self, vault: ferry_vault::Vault) -> AppState {
        self.vault = Some(vault);
        self
    }
}

/// Serves Ferry on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = routes::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
