//! `ferry emulate hubspot`, `ferry emulate everyaction` and `ferry emulate salesforce`: an external API on a local address,
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

/// Serves the Salesforce emulator on `listen` until Ctrl-C, with the connected app's JWT
/// certificate read from `jwt_certificate` and a daily limit of `daily_limit` calls; over HTTPS
/// with a generated certificate (its PEM file printed) when `tls`.
pub async fn salesforce(
    listen: &str,
    jwt_certificate: Option<std::path::PathBuf>,
    daily_limit: u64,
    tls: bool,
) -> Result<()> {
    use ferry_emulators::salesforce::{self, SalesforceEmulator};
    let jwt_certificate = match jwt_certificate {
        Some(path) => {
            let pem = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            salesforce::jwt::public_key_der(&pem).map_err(|e| {
                anyhow::anyhow!("{} is not a usable certificate: {e}", path.display())
            })?;
            Some(pem)
        }
        None => None,
    };
    let config = salesforce::EmulatorConfig {
        jwt_certificate,
        limits: salesforce::Limits {
            daily_max: daily_limit,
            used: 0,
        },
        tls,
        ..salesforce::EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let scheme = if tls { "https" } else { "http" };
    println!(
        "Salesforce emulator on {scheme}://{addr} (consumer key {}, user {}, Ctrl-C to stop)",
        config.client_id, config.username
    );
    let emulator = SalesforceEmulator::new(config);
    if tls {
        let mut ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
        let material = salesforce::tls::self_signed(&["localhost"], &ips)
            .map_err(|e| anyhow::anyhow!("cannot make a certificate: {e}"))?;
        let path =
            std::env::temp_dir().join(format!("ferry-salesforce-emulator-{}.pem", addr.port()));
        std::fs::write(&path, &material.cert_pem)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("CA file (trust it in the client): {}", path.display());
        emulator
            .serve_tls(listener, &material, crate::server::signal())
            .await
            .context("the Salesforce emulator stopped")?;
    } else {
        emulator
            .serve(listener, crate::server::signal())
            .await
            .context("the Salesforce emulator stopped")?;
    }
    Ok(())
}
