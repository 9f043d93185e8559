//! `ferry serve`.

use anyhow::Result;

use crate::settings::Settings;

pub async fn serve(settings: &Settings) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    crate::server::run(settings, store, |url| {
        eprintln!("Ferry is serving {url} (Ctrl-C to stop)");
    })
    .await
}

/// `ferry sftp-server`: only the SFTP server, until Ctrl-C or SIGTERM.
pub async fn sftp_server(settings: &Settings) -> Result<()> {
    let stop = crate::server::signal();
    let store = settings.connect_and_migrate().await?;
    let Some(server) = crate::server::start_sftp(settings, &store).await? else {
        anyhow::bail!("--sftp-listen (FERRY_SFTP_LISTEN) is off: there is nothing to serve");
    };
    eprintln!(
        "Ferry's SFTP server is listening on {} (Ctrl-C to stop)",
        server.local_addr()
    );
    for key in server.host_keys() {
        eprintln!("  host key {} {}", key.algorithm, key.fingerprint);
    }
    stop.await;
    server.shutdown().await;
    store.close().await;
    Ok(())
}
