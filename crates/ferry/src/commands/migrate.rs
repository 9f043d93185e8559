//! `ferry migrate`.

use anyhow::{Context, Result};

use crate::settings::Settings;

pub async fn run(settings: &Settings) -> Result<()> {
    let store = settings.connect().await?;
    let applied = store
        .migrate()
        .await
        .context("applying database migrations")?;
    store.close().await;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for name in applied {
            tracing::info!(migration = name, "applied migration");
            println!("applied {name}");
        }
    }
    Ok(())
}
