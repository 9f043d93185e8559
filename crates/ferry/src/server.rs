//! Running Ferry: the web server and the worker in one process, and a graceful shutdown of both
//! on Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use ferry_store::Store;
use ferry_web::{AppState, WebConfig};
use tokio::sync::watch;

use crate::settings::Settings;

/// How long open requests and the current run get to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(60);

/// A shutdown switch: many waiters, one trigger.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once [`Shutdown::trigger`] was called.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives in between is not lost.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => tokio::select! {
                    _ = int.recv() => tracing::info!("Ctrl-C received: shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
                },
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for Ctrl-C and SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("Ctrl-C received: shutting down"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The address to open in a browser: the public URL if set, else the bound address (with
/// loopback for a wildcard address such as 0.0.0.0).
pub fn browse_url(public_url: Option<&str>, addr: SocketAddr) -> String {
    if let Some(u) = public_url {
        return format!("{}/", u.trim_end_matches('/'));
    }
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/")
}

/// The `host:port` customers connect to: the public URL's host if set, else the bound address
/// (loopback for a wildcard address).
pub fn sftp_address(public_url: Option<&str>, addr: SocketAddr) -> String {
    let host = public_url
        .and_then(|u| u.split("://").nth(1))
        .map(|rest| rest.split(['/', ':']).next().unwrap_or(rest).to_string())
        .filter(|h| !h.is_empty());
    match host {
        Some(h) => format!("{h}:{}", addr.port()),
        None => browse_url(None, addr)
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// Starts Ferry's own SFTP server if `--sftp-listen` is not `off`.
pub async fn start_sftp(
    settings: &Settings,
    store: &Store,
) -> Result<Option<ferry_sftpd::SftpServer>> {
    let Some(listen) = &settings.sftp_listen else {
        return Ok(None);
    };
    let vault = settings.vault()?;
    let server = ferry_sftpd::SftpServer::start(
        store.clone(),
        vault,
        listen,
        ferry_sftpd::ServerConfig::default(),
    )
    .await
    .with_context(|| format!("starting the SFTP server on {listen}"))?;
    for key in server.host_keys() {
        tracing::info!(
            algorithm = %key.algorithm,
            fingerprint = %key.fingerprint,
            "SFTP host key"
        );
    }
    Ok(Some(server))
}

/// Serves the web UI and API, the SFTP server (unless it is off) and runs the worker until a
/// signal, then stops them gracefully. `ready` is called with the URL to open once requests are
/// accepted.
pub async fn run(settings: &Settings, store: Store, ready: impl FnOnce(&str)) -> Result<()> {
    let worker_config = settings.worker_config()?;
    let stop = signal();
    let sftp = start_sftp(settings, &store).await?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();

    let config = WebConfig {
        public_url: settings.public_url.clone(),
        egress_ips: settings.egress_ips.clone(),
        trusted_proxies: settings.trusted_proxies.clone(),
        sftp_address: sftp
            .as_ref()
            .map(|s| sftp_address(settings.public_url.as_deref(), s.local_addr())),
        smtp_configured: worker_config.smtp.is_some(),
        ..WebConfig::default()
    };
    let registry = settings.registry();
    let mut state = AppState::new(store.clone(), config, registry.clone());
    if let Ok(vault) = settings.vault() {
        state = state.with_vault(vault);
    }
    // The web state installed the metrics recorder; the worker's metrics describe themselves to it.
    ferry_worker::describe_metrics();
    let mut web = tokio::spawn(ferry_web::serve(listener, state, shutdown.wait()));
    let mut worker =
        crate::commands::worker::spawn(store.clone(), registry, worker_config, shutdown.wait());
    tracing::info!(
        address = %addr,
        sftp = ?sftp.as_ref().map(|s| s.local_addr()),
        public_url = ?settings.public_url,
        database = %settings.database_url_redacted(),
        "Ferry is serving"
    );
    ready(&browse_url(settings.public_url.as_deref(), addr));

    let (mut web_done, mut worker_done) = (false, false);
    let early = tokio::select! {
        () = stop => None,
        r = &mut web => Some({ web_done = true; match r {
            Ok(Ok(())) => anyhow!("the web server stopped unexpectedly"),
            Ok(Err(e)) => anyhow!(e).context("the web server failed"),
            Err(e) => anyhow!(e).context("the web server panicked"),
        }}),
        r = &mut worker => Some({ worker_done = true; match r {
            Ok(Ok(())) => anyhow!("the worker stopped unexpectedly"),
            Ok(Err(e)) => e.context("the worker failed"),
            Err(e) => anyhow!(e).context("the worker panicked"),
        }}),
    };
    shutdown.trigger();
    if let Some(e) = &early {
        tracing::error!(error = format!("{e:#}"), "stopping");
    }

    let both = async {
        // A task that already ended was awaited above and must not be polled again.
        if !web_done {
            match (&mut web).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "web server shutdown"),
                Err(e) => tracing::error!(error = %e, "web server task"),
            }
        }
        if !worker_done {
            match (&mut worker).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "worker shutdown"),
                Err(e) => tracing::error!(error = %e, "worker task"),
            }
        }
    };
    if let Some(sftp) = sftp {
        sftp.shutdown().await;
    }
    tokio::select! {
        _ = both => tracing::info!("stopped"),
        _ = tokio::time::sleep(GRACE) => tracing::warn!(grace_secs = GRACE.as_secs(), "open work did not finish in time; exiting anyway"),
        _ = signal() => tracing::warn!("second signal: exiting without waiting"),
    }
    store.close().await;
    match early {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browse_urls() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(browse_url(None, a), "http://127.0.0.1:8080/");
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(browse_url(None, any), "http://127.0.0.1:9000/");
        let any6: SocketAddr = "[::]:9000".parse().unwrap();
        assert_eq!(browse_url(None, any6), "http://[::1]:9000/");
        assert_eq!(
            browse_url(Some("https://ferry.example.edu"), a),
            "https://ferry.example.edu/"
        );
        let sftp: SocketAddr = "0.0.0.0:2222".parse().unwrap();
        assert_eq!(sftp_address(None, sftp), "127.0.0.1:2222");
        assert_eq!(
            sftp_address(Some("https://ferry.example.edu:8443/x"), sftp),
            "ferry.example.edu:2222"
        );
    }
}
