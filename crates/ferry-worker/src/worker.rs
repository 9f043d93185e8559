//! The loop: schedule, re-queue stale runs, claim, execute, wait.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_connectors::{CancelHandle, CancelSignal, Registry};
use ferry_core::run::Trigger;
use ferry_store::{NewRun, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::alerts::AlertSender;
use crate::config::WorkerConfig;

/// Errors of the worker's store operations.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

/// Registers the descriptions of the worker's metrics with the installed recorder. Call it once
/// after installing the exporter.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "ferry_runs_finished_total",
        "Runs this worker finished, by connector kind and final status"
    );
    metrics::describe_histogram!(
        "ferry_run_duration_seconds",
        metrics::Unit::Seconds,
        "Time from claiming a run to recording its outcome, by connector kind"
    );
    metrics::describe_counter!(
        "ferry_runs_released_total",
        "Runs given back to the queue unfinished (shutdown, transient store failure), by kind"
    );
}

/// A worker. Cheap to clone; clones share the same identity, so give each concurrently running
/// worker its own [`WorkerConfig::worker_id`].
#[derive(Clone)]
pub struct Worker {
    pub(crate) store: Store,
    pub(crate) registry: Registry,
    pub(crate) config: WorkerConfig,
    /// Kinds without a connector that were warned about already.
    warned_kinds: Arc<Mutex<HashSet<String>>>,
    /// Delivers the alerts runs' outcomes queued.
    alerts: Arc<AlertSender>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `store` that runs the connectors of `registry`.
    pub fn new(store: Store, registry: Registry, config: WorkerConfig) -> Self {
        let alerts = AlertSender::new(config.smtp.as_ref()).unwrap_or_else(|e| {
            error!(error = %e, "alert emails are off");
            AlertSender::new(None).expect("a sender without SMTP builds")
        });
        Worker {
            store,
            registry,
            config,
            warned_kinds: Arc::default(),
            alerts: Arc::new(alerts),
        }
    }

    /// Delivers the alerts due now (the worker does this every
    /// [`WorkerConfig::alert_interval`]); returns how many were delivered.
    pub async fn deliver_alerts(&self) -> Result<usize, WorkerError> {
        Ok(self
            .alerts
            .deliver_due(&self.store, &self.config.worker_id, self.config.alert_retry)
            .await?)
    }

    /// This worker's id, as written in the leases it holds.
    pub fn id(&self) -> &str {
        &self.config.worker_id
    }

    /// The worker's settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs until `shutdown` completes: every `scheduler_interval` it queues due scheduled runs,
    /// every `heartbeat_interval` it re-queues stale runs (so an idle worker takes a dead
    /// worker's run over within [`WorkerConfig::takeover_bound`] of its last heartbeat), and it
    /// executes up to [`WorkerConfig::concurrency`] queued runs at once (never two of one
    /// integration), waiting `poll_interval` when there are none.
    ///
    /// On shutdown it claims nothing more and asks the running connectors to stop. If a connector
    /// stops within `shutdown_grace`, its outcome is recorded (a retryable error puts the run
    /// back in the queue); if not, the run is given back to the queue for another worker.
    /// Store failures are logged and retried; they do not end the loop.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stop_signal) = CancelHandle::new();
        let main = self.main_loop(stop_signal);
        tokio::pin!(main);
        tokio::select! {
            () = &mut main => {}
            () = shutdown => {
                info!(worker_id = %self.config.worker_id, "shutdown requested");
                stop.cancel();
                main.await;
            }
        }
    }

    async fn main_loop(&self, stop: CancelSignal) {
        info!(worker_id = %self.config.worker_id, kinds = ?self.registry.kinds(), "worker started");
        let at_least = |d: Duration| d.max(Duration::from_millis(1));
        let mut next_schedule = Instant::now();
        let mut next_requeue = Instant::now();
        let mut next_change = Instant::now();
        let mut running: JoinSet<()> = JoinSet::new();
        let concurrency = self.config.concurrency.max(1);
        let signal = self.store.runs_signal();
        let listening = Arc::new(AtomicBool::new(false));
        let listener = tokio::spawn(listen_for_runs(
            self.store.clone(),
            signal.clone(),
            listening.clone(),
            stop.clone(),
        ));
        let alerts = {
            let (worker, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                let every = worker.config.alert_interval.max(Duration::from_millis(1));
                while !stop.is_cancelled() {
                    if let Err(e) = worker.deliver_alerts().await {
                        warn!(error = %e, "could not deliver alerts");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        () = stop.cancelled() => {}
                    }
                }
            })
        };
        while !stop.is_cancelled() {
            // Armed before the queue is looked at, so an announcement made meanwhile wakes us.
            let announced = signal.notified();
            tokio::pin!(announced);
            announced.as_mut().enable();
            while let Some(done) = running.try_join_next() {
                reap(done);
            }
            let now = Instant::now();
            if now >= next_schedule {
                next_schedule = now + at_least(self.config.scheduler_interval);
                if let Err(e) = self.schedule_due(Timestamp::now()).await {
                    warn!(error = %e, "could not queue scheduled runs");
                }
            }
            if now >= next_change {
                next_change = now + at_least(self.config.change_interval);
                if let Err(e) = self.queue_changed(Timestamp::now()).await {
                    warn!(error = %e, "could not queue change runs");
                }
                if let Err(e) = self.queue_arrived_files().await {
                    warn!(error = %e, "could not queue runs for arrived files");
                }
            }
            if now >= next_requeue {
                next_requeue = now + at_least(self.config.heartbeat_interval);
                if let Err(e) = self.requeue_stale(Timestamp::now()).await {
                    warn!(error = %e, "could not re-queue stale runs");
                }
            }
            if stop.is_cancelled() {
                break;
            }
            if running.len() < concurrency {
                match self.store.claim_run(&self.config.worker_id).await {
                    Ok(Some(run)) => {
                        let (worker, stop) = (self.clone(), stop.clone());
                        running.spawn(async move { worker.execute(run, &stop).await });
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "could not claim a run"),
                }
            }
            // Waking for the stale check too keeps takeover within one heartbeat interval of
            // the lease running out, whatever the poll interval. While PostgreSQL announces
            // queued runs (LISTEN/NOTIFY), there is no poll: an announcement wakes the worker.
            let mut wake = next_schedule.min(next_change).min(next_requeue);
            if !listening.load(Ordering::Relaxed) {
                wake = wake.min(Instant::now() + at_least(self.config.poll_interval));
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = &mut announced => {}
                () = stop.cancelled() => {}
                Some(done) = running.join_next(), if !running.is_empty() => reap(done),
            }
        }
        listener.abort();
        let _ = alerts.await;
        // Each run stops by itself once asked (or is given back after the grace period).
        while let Some(done) = running.join_next().await {
            reap(done);
        }
        info!(worker_id = %self.config.worker_id, "worker stopped");
    }

    /// Claims one queued run and executes it to the end; returns its id, or `None` when the
    /// queue had nothing this worker may take.
    pub async fn run_once(&self) -> Result<Option<i64>, WorkerError> {
        let Some(run) = self.store.claim_run(&self.config.worker_id).await? else {
            return Ok(None);
        };
        let id = run.id;
        self.execute(run, &CancelSignal::never()).await;
        Ok(Some(id))
    }

    /// Queues a run for the latest schedule slot that has begun at `now`, for every enabled
    /// integration whose connector gives it a schedule. Slots that began before the integration
    /// was created are not run (no backfill), and a slot that has a run already gets no other.
    /// Returns how many runs were queued.
    pub async fn schedule_due(&self, now: Timestamp) -> Result<usize, WorkerError> {
        let mut queued = 0;
        for integration in self.store.enabled_integrations().await? {
            let Some(connector) = self.registry.get(&integration.kind) else {
                self.warn_unknown_kind(&integration.kind);
                continue;
            };
            let Some(schedule) = connector.schedule(&integration.config) else {
                continue;
            };
            if let Err(e) = schedule.validate() {
                warn!(integration_id = integration.id, kind = %integration.kind, error = %e, "invalid schedule; not scheduled");
                continue;
            }
            let Some(slot) = schedule.latest_slot(now) else {
                continue;
            };
            if slot < integration.created_at {
                continue;
            }
            let new = NewRun {
                institution_id: integration.institution_id,
                integration_id: integration.id,
                kind: integration.kind.clone(),
                trigger: Trigger::Scheduled,
                scheduled_for: Some(slot),
            };
            if let Some(run) = self.store.enqueue_run(&new).await? {
                queued += 1;
                info!(run_id = run.id, integration_id = integration.id, kind = %integration.kind, %slot, "scheduled run queued");
            }
        }
        Ok(queued)
    }

    /// Queues a `change` run for every enabled instance of a kind that runs on change whose
    /// [`Connector::change_watermark`](ferry_connectors::Connector::change_watermark) is behind
    /// its institution's change sequence (unless one is queued, or
    /// its last run failed within `change_backoff`). Returns how many were queued.
    pub async fn queue_changed(&self, now: Timestamp) -> Result<usize, WorkerError> {
        let mut queued = 0;
        let integrations = self.store.enabled_integrations().await?;
        if !integrations.iter().any(|i| {
            self.registry
                .get(&i.kind)
                .is_some_and(|c| c.runs_on_change())
        }) {
            return Ok(0);
        }
        // Two queries whatever the number of institutions and integrations; the last run is
        // read only for an integration that is behind.
        let seqs = self.store.change_seqs().await?;
        for integration in integrations {
            let Some(connector) = self
                .registry
                .get(&integration.kind)
                .filter(|c| c.runs_on_change())
            else {
                continue;
            };
            let Some(&current) = seqs.get(&integration.institution_id) else {
                continue; // the institution was deleted since
            };
            let watermark = connector.change_watermark(&integration.state).unwrap_or(0);
            if current <= watermark {
                continue;
            }
            let last = self
                .store
                .list_runs(
                    integration.institution_id,
                    &ferry_store::RunQuery {
                        integration_id: Some(integration.id),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?;
            let backoff =
                SignedDuration::try_from(self.config.change_backoff).unwrap_or(SignedDuration::MAX);
            let failed_recently = last.first().is_some_and(|r| {
                r.status == ferry_core::run::RunStatus::Failed
                    && r.finished_at
                        .is_some_and(|f| f.checked_add(backoff).is_ok_and(|until| until > now))
            });
            if failed_recently {
                continue;
            }
            let new = NewRun {
                institution_id: integration.institution_id,
                integration_id: integration.id,
                kind: integration.kind.clone(),
                trigger: Trigger::Change,
                scheduled_for: None,
            };
            if let Some(run) = self.store.enqueue_run(&new).await? {
                queued += 1;
                info!(run_id = run.id, integration_id = integration.id, kind = %integration.kind, "change run queued");
            }
        }
        Ok(queued)
    }

    /// Queues a `file_arrived` run for each file uploaded to Ferry's SFTP server that completed
    /// and has no run yet, on its institution's enabled instance of a kind that takes uploaded
    /// files (a file of an institution without one waits until one is enabled). The store links
    /// the run to the file in the same transaction, so each file gets one run whatever the
    /// number of workers. Returns how many were queued.
    pub async fn queue_arrived_files(&self) -> Result<usize, WorkerError> {
        let files = self.store.sftp_files_awaiting_run(200).await?;
        if files.is_empty() {
            return Ok(0);
        }
        let integrations = self.store.enabled_integrations().await?;
        let mut queued = 0;
        for file in files {
            let Some(integration) = integrations.iter().find(|i| {
                i.institution_id == file.institution_id
                    && self
                        .registry
                        .get(&i.kind)
                        .is_some_and(|c| c.takes_uploaded_files())
            }) else {
                continue;
            };
            let new = NewRun {
                institution_id: integration.institution_id,
                integration_id: integration.id,
                kind: integration.kind.clone(),
                trigger: Trigger::FileArrived,
                scheduled_for: None,
            };
            if let Some(run) = self.store.enqueue_file_run(&new, file.id).await? {
                queued += 1;
                info!(run_id = run.id, file_id = file.id, path = %file.path, "file run queued");
            }
        }
        Ok(queued)
    }

    /// Re-queues running runs whose heartbeat is older than `stale_after` at `now` (or fails
    /// them after `max_attempts` claims). Returns (re-queued, failed).
    pub async fn requeue_stale(&self, now: Timestamp) -> Result<(u64, u64), WorkerError> {
        let stale_after =
            SignedDuration::try_from(self.config.stale_after).unwrap_or(SignedDuration::MAX);
        let before = now.checked_sub(stale_after).unwrap_or(Timestamp::MIN);
        let (requeued, failed) = self
            .store
            .requeue_stale_runs(before, i64::from(self.config.max_attempts))
            .await?;
        if requeued + failed > 0 {
            warn!(
                requeued,
                failed, "runs whose worker stopped heartbeating were re-queued or failed"
            );
        }
        Ok((requeued, failed))
    }

    fn warn_unknown_kind(&self, kind: &str) {
        let first = self
            .warned_kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind.to_string());
        if first {
            warn!(%kind, "integrations of this kind are not scheduled: this build has no connector for it");
        }
    }
}

/// Logs a run task that panicked outside the connector (a connector's own panic is caught and
/// recorded on its run by `execute`).
/// Relays the run queue's announcements from other processes (PostgreSQL `LISTEN`) to this
/// process's signal, reconnecting after a failure; `listening` says whether it is connected.
/// Returns at once on SQLite.
async fn listen_for_runs(
    store: Store,
    signal: Arc<Notify>,
    listening: Arc<AtomicBool>,
    stop: CancelSignal,
) {
    loop {
        match store.listen_for_runs().await {
            Ok(Some(mut listener)) => {
                listening.store(true, Ordering::Relaxed);
                // Runs queued before the LISTEN began are found by this first look.
                signal.notify_waiters();
                loop {
                    tokio::select! {
                        r = listener.recv() => match r {
                            Ok(()) => signal.notify_waiters(),
                            Err(e) => {
                                warn!(error = %e, "lost the run queue's announcements; polling until reconnected");
                                break;
                            }
                        },
                        () = stop.cancelled() => return,
                    }
                }
                listening.store(false, Ordering::Relaxed);
            }
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "could not listen for the run queue's announcements; polling")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = stop.cancelled() => return,
        }
    }
}

fn reap(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        warn!(error = %e, "a run's task ended abnormally");
    }
}
