//! `ferry emulate hubspot` and `ferry emulate everyaction`: an external API on a local address,
//! for trying Ferry without an account there and for tests (never a production path).

use anyhow::{Context, Result};
use ferry_emulators::everyaction::{self, EveryActionEmulator};
use ferry_emulators::hubspot::{EmulatorConfig, HubSpotEmulator};

/// Serves the HubSpot emulator on `listen` until Ctrl-C; `token` is accepted as a private-app
/// token.
pub async fn hubspot(listen: &str, token: Option<String>) -> Result<()> {
    let config = EmulatorConfig {
        private_app_tokens: token.into_iter().collect(),
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "HubSpot emulator on http://{addr} (OAuth client id {}, Ctrl-C to stop)",
        config.oauth.client_id
    );
    HubSpotEmulator::new(config)
        .serve(listener, crate::server::signal())
        .await
        .context("the HubSpot emulator stopped")?;
    Ok(())
}

/// Serves the EveryAction emulator on `listen` until Ctrl-C; the password `API_KEY|1` is
/// accepted, with at most `rate_limit` requests per second.
pub async fn everyaction(
    listen: &str,
    app_name: String,
    api_key: String,
    rate_limit: u32,
) -> Result<()> {
    let config = everyaction::EmulatorConfig {
        app_name,
        api_key,
        rate_limit_per_second: rate_limit,
        ..everyaction::EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "EveryAction emulator on http://{addr}/v4/ (application {}, {} requests/s, Ctrl-C to stop)",
        config.app_name, config.rate_limit_per_second
    );
    EveryActionEmulator::new(config)
        .serve(listener, crate::server::signal())
        .await
        .context("the EveryAction emulator stopped")?;
    Ok(())
}
