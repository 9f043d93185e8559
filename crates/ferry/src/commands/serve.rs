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
