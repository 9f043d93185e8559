//! `ferry worker`, and the worker half of `ferry serve`.

use std::future::Future;

use anyhow::{Context, Result};
use ferry_connectors::Registry;
use ferry_store::Store;
use ferry_worker::{Worker, WorkerConfig};
use tokio::task::JoinHandle;

use crate::settings::Settings;

pub async fn run(settings: &Settings, once: bool) -> Result<()> {
    let config = settings.worker_config()?;
    let store = settings.connect_and_migrate().await?;
    let result = if once {
        run_once(&store, settings.registry(), config).await
    } else {
        spawn(
            store.clone(),
            settings.registry(),
            config,
            crate::server::signal(),
        )
        .await
        .context("the worker panicked")?
    };
    store.close().await;
    result
}

/// Queues the scheduled runs that are due, re-queues abandoned ones, then executes at most one
/// queued run, so that `ferry worker --once` from cron makes progress on its own.
async fn run_once(store: &Store, registry: Registry, config: WorkerConfig) -> Result<()> {
    let w = Worker::new(store.clone(), registry, config);
    let now = jiff::Timestamp::now();
    w.schedule_due(now)
        .await
        .context("queueing scheduled runs")?;
    w.requeue_stale(now)
        .await
        .context("re-queueing abandoned runs")?;
    match w.run_once().await.context("running a queued run")? {
        Some(id) => println!("ran run {id}"),
        None => println!("no queued run"),
    }
    Ok(())
}

/// Starts the worker on its own task; it finishes its current run and stops when `shutdown`
/// resolves. `config` comes from [`Settings::worker_config`] (validated there).
pub fn spawn(
    store: Store,
    registry: Registry,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<()>> {
    let w = Worker::new(store, registry, config);
    tokio::spawn(async move {
        w.run(shutdown).await;
        Ok(())
    })
}
