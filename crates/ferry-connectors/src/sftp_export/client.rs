//! Connecting to the export's SFTP server: credentials from the secrets, the host key pinned as
//! OpenSSH's `accept-new` does, and SFTP errors turned into reasons for people.

use ferry_sftp::{Auth, ClientOptions, HostKeyPolicy, Session, SftpError, SftpTarget};
use ferry_store::{IntegrationUpdate, Store};
use secrecy::SecretString;

use super::config::ExportConfig;
use crate::connector::RunError;
use crate::context::Secrets;

/// The login from the secrets: the private key if one is set, else the password.
pub fn auth(secrets: &Secrets) -> Result<Auth, RunError> {
    if let Some(pem) = secrets
        .expose("private_key")
        .filter(|k| !k.trim().is_empty())
    {
        return Ok(Auth::PrivateKey {
            pem: SecretString::from(pem.to_string()),
            passphrase: secrets
                .expose("passphrase")
                .filter(|p| !p.is_empty())
                .map(|p| SecretString::from(p.to_string())),
        });
    }
    match secrets.expose("password").filter(|p| !p.is_empty()) {
        Some(p) => Ok(Auth::Password(SecretString::from(p.to_string()))),
        None => Err(RunError::fatal(
            "no SFTP password or private key is set; enter one in the integration's settings",
        )),
    }
}

/// Connects and logs in, checking the host key against the pinned one (any key when none is
/// pinned yet: the caller pins it with [`pin_host_key`]).
pub async fn connect(
    config: &ExportConfig,
    secrets: &Secrets,
    options: &ClientOptions,
) -> Result<Session, SftpError> {
    let auth = auth(secrets).map_err(|e| SftpError::InvalidTarget { reason: e.reason })?;
    let target = SftpTarget::new(config.sftp.host.trim(), config.sftp.username.clone(), auth)
        .with_port(config.sftp.port);
    let policy = match config.host_key() {
        Some(key) => HostKeyPolicy::Pinned(key.to_string()),
        None => HostKeyPolicy::AcceptNew,
    };
    ferry_sftp::connect_with(&target, &policy, options).await
}

/// Records `fingerprint` as the integration's pinned host key if none is pinned yet
/// (OpenSSH's `accept-new`). Leaves a key that an admin pinned meanwhile alone.
pub async fn pin_host_key(
    store: &Store,
    institution_id: i64,
    integration_id: i64,
    fingerprint: &str,
) -> Result<(), RunError> {
    let current = store.integration(institution_id, integration_id).await?;
    let mut config = current.config;
    let pinned = config
        .pointer("/sftp/host_key")
        .and_then(|v| v.as_str())
        .is_some_and(|k| !k.is_empty());
    if pinned {
        return Ok(());
    }
    if let Some(sftp) = config.get_mut("sftp").and_then(|v| v.as_object_mut()) {
        sftp.insert("host_key".into(), fingerprint.into());
        store
            .update_integration(
                institution_id,
                integration_id,
                IntegrationUpdate {
                    config: Some(config),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(
            integration_id,
            fingerprint,
            "pinned the SFTP server's host key"
        );
    }
    Ok(())
}

/// An SFTP failure as a run error: the reason as the client words it, retryable when trying
/// again later may help (a timeout, a dropped connection) and not when a person must act.
pub fn run_error(e: &SftpError) -> RunError {
    let reason = format!("{} ({})", e, e.code());
    if e.is_transient() {
        RunError::retryable(reason)
    } else if e.code() == "sftp_auth_failed" {
        RunError::credentials_refused(reason)
    } else {
        RunError::fatal(reason)
    }
}
