//! `ferry emulate hubspot`: HubSpot's API on a local address, for trying Ferry without a
//! HubSpot account and for tests (never a production path).

use anyhow::{Context, Result};
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
