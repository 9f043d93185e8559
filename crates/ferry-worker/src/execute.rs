//! Executing one claimed run: heartbeat, connector task, stop handling, outcome.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::{
    CancelHandle, CancelSignal, Connector, RunContext, RunError, RunReport, Secrets,
};
use ferry_core::run::RunStatus;
use ferry_store::{Integration, Run, RunOutcome, Store, StoreError};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::WorkerConfig;
use crate::worker::Worker;

/// What Recent Runs shows for a connector that panicked; the details go to the server log.
pub(crate) const PANIC_REASON: &str = "internal error in connector; see the server log";

/// How the connector task ended.
enum Ending {
    /// The connector returned.
    Returned(Result<RunReport, RunError>),
    /// The connector panicked.
    Panicked,
    /// The connector was asked to stop and did not within the grace period; it was aborted.
    Abandoned,
}

/// Why a claimed run could not start.
enum LoadError {
    /// The integration was deleted (and the run with it).
    Gone,
    /// Loading failed; the error says whether trying again may help.
    Failed(RunError),
}

fn failed(reason: impl Into<String>) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Failed,
        rows: 0,
        error: Some(reason.into()),
        detail: serde_json::json!({}),
        credentials_refused: false,
    }
}

impl Worker {
    /// Executes a claimed run to the end. `stop` is the worker's shutdown signal.
    pub(crate) async fn execute(&self, run: Run, stop: &CancelSignal) {
        let span = info_span!("run", run_id = run.id, kind = %run.kind);
        self.execute_in_span(run, stop).instrument(span).await
    }

    async fn execute_in_span(&self, run: Run, stop: &CancelSignal) {
        let started = Instant::now();
        info!(attempt = run.attempt, trigger = %run.trigger, integration_id = run.integration_id, "run claimed");
        let Some(connector) = self.registry.get(&run.kind).cloned() else {
            let reason = format!("no connector for kind {}", run.kind);
            self.finish(&run, failed(reason), started).await;
            return;
        };
        let (integration, secrets) = match self.load(&run).await {
            Ok(loaded) => loaded,
            Err(LoadError::Gone) => {
                info!("the integration was deleted after the run was claimed; nothing to do");
                return;
            }
            Err(LoadError::Failed(e)) if e.retryable => {
                self.release(&run).await;
                return;
            }
            Err(LoadError::Failed(e)) => {
                self.finish(&run, failed(e.reason), started).await;
                return;
            }
        };

        let (cancel, cancel_signal) = CancelHandle::new();
        let (lost, lost_signal) = CancelHandle::new();
        let (done, done_signal) = CancelHandle::new();
        let ctx = Arc::new(RunContext::new(
            self.store.clone(),
            integration,
            run.clone(),
            secrets,
            cancel_signal,
        ));
        let heartbeat = tokio::spawn(
            heartbeat(Heartbeat {
                store: self.store.clone(),
                run_id: run.id,
                worker_id: self.config.worker_id.clone(),
                every: self.config.heartbeat_interval,
                done: done_signal,
                cancel: cancel.clone(),
                lost: lost.clone(),
            })
            .in_current_span(),
        );
        let mut task = tokio::spawn(
            run_with_retries(connector, ctx.clone(), self.config.clone()).in_current_span(),
        );

        let ending = tokio::select! {
            joined = &mut task => ending_of(joined),
            () = stop.cancelled() => {
                info!("shutting down; asking the connector to stop");
                cancel.cancel();
                self.wind_down(&mut task).await
            }
            () = lost_signal.cancelled() => {
                cancel.cancel();
                self.wind_down(&mut task).await
            }
        };
        done.cancel();
        if let Err(e) = heartbeat.await {
            error!(error = %e, "the heartbeat task failed");
        }
        // Rows logged before a failure, a panic or a stop are real problems: keep them.
        if let Err(e) = ctx.flush_log().await {
            error!(error = %e, rows = ctx.pending_log(), "could not write the run's Sync Log rows");
        }

        if lost.is_cancelled() {
            warn!("another worker took the run over; its outcome here is not recorded");
            return;
        }
        match ending {
            Ending::Abandoned => self.release(&run).await,
            Ending::Returned(Err(e)) if e.retryable && stop.is_cancelled() => {
                info!(reason = %e.reason, "stopped by shutdown; the run goes back to the queue");
                self.release(&run).await
            }
            Ending::Returned(Ok(report)) => {
                let outcome = RunOutcome {
                    status: report.status.run_status(),
                    rows: report.rows,
                    error: None,
                    detail: report.detail,
                    credentials_refused: false,
                };
                self.finish(&run, outcome, started).await
            }
            Ending::Returned(Err(e)) => {
                let outcome = RunOutcome {
                    credentials_refused: e.credentials_refused,
                    // What the run was queued with (e.g. the arrived file's name) stays.
                    detail: run.detail.clone(),
                    ..failed(e.reason)
                };
                self.finish(&run, outcome, started).await
            }
            Ending::Panicked => self.finish(&run, failed(PANIC_REASON), started).await,
        }
    }

    /// Loads the integration and its decrypted secrets.
    async fn load(&self, run: &Run) -> Result<(Integration, Secrets), LoadError> {
        let map = |e: StoreError| match e {
            StoreError::NotFound => LoadError::Gone,
            other => LoadError::Failed(RunError::from(other)),
        };
        let integration = self
            .store
            .integration(run.institution_id, run.integration_id)
            .await
            .map_err(map)?;
        let secrets = self
            .store
            .integration_secrets(run.institution_id, run.integration_id)
            .await
            .map_err(map)?;
        Ok((integration, Secrets::from_json(secrets)))
    }

    /// After the connector was asked to stop: waits up to the grace period, then aborts it.
    async fn wind_down(&self, task: &mut JoinHandle<Result<RunReport, RunError>>) -> Ending {
        match tokio::time::timeout(self.config.shutdown_grace, &mut *task).await {
            Ok(joined) => ending_of(joined),
            Err(_) => {
                warn!(
                    grace_ms = self.config.shutdown_grace.as_millis() as u64,
                    "the connector did not stop in time; abandoning it"
                );
                task.abort();
                Ending::Abandoned
            }
        }
    }

    /// Records the outcome, if this worker still holds the lease.
    async fn finish(&self, run: &Run, outcome: RunOutcome, started: Instant) {
        let status = outcome.status;
        match self
            .store
            .finish_run(run.id, &self.config.worker_id, &outcome)
            .await
        {
            Ok(true) => {
                let secs = started.elapsed().as_secs_f64();
                metrics::counter!(
                    "ferry_runs_finished_total",
                    "kind" => run.kind.clone(),
                    "status" => status.as_str()
                )
                .increment(1);
                metrics::histogram!("ferry_run_duration_seconds", "kind" => run.kind.clone())
                    .record(secs);
                match &outcome.error {
                    Some(reason) => warn!(%status, %reason, secs, "run failed"),
                    None => info!(%status, rows = outcome.rows, secs, "run finished"),
                }
            }
            Ok(false) => {
                warn!("the run's lease was lost before it finished; its outcome was not recorded")
            }
            Err(e) => error!(
                error = %e,
                "could not record the run's outcome; it is re-queued once its heartbeat is stale"
            ),
        }
    }

    /// Gives the run back to the queue.
    async fn release(&self, run: &Run) {
        match self.store.release_run(run.id, &self.config.worker_id).await {
            Ok(true) => {
                metrics::counter!("ferry_runs_released_total", "kind" => run.kind.clone())
                    .increment(1);
                info!("the run went back to the queue");
            }
            Ok(false) => warn!("the run's lease was lost before it could be given back"),
            Err(e) => error!(
                error = %e,
                "could not give the run back; it is re-queued once its heartbeat is stale"
            ),
        }
    }
}

fn ending_of(joined: Result<Result<RunReport, RunError>, JoinError>) -> Ending {
    match joined {
        Ok(result) => Ending::Returned(result),
        Err(e) if e.is_panic() => {
            error!(panic = %panic_message(e.into_panic().as_ref()), "the connector panicked");
            Ending::Panicked
        }
        // Cancelled from outside (the runtime is shutting down): someone else should run it.
        Err(_) => Ending::Abandoned,
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// Runs the connector, trying again after retryable errors with a growing wait.
async fn run_with_retries(
    connector: Arc<dyn Connector>,
    ctx: Arc<RunContext>,
    config: WorkerConfig,
) -> Result<RunReport, RunError> {
    let mut retry = 0;
    loop {
        match connector.run(&ctx).await {
            Err(e) if e.retryable && retry < config.retries && !ctx.is_cancelled() => {
                retry += 1;
                let wait = config.backoff(retry);
                warn!(reason = %e.reason, retry, wait_ms = wait.as_millis() as u64, "retryable failure; trying again");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = ctx.cancel().cancelled() => return Err(e),
                }
            }
            other => return other,
        }
    }
}

struct Heartbeat {
    store: Store,
    run_id: i64,
    worker_id: String,
    every: Duration,
    /// Raised when the run is over.
    done: CancelSignal,
    /// The run's cancellation, raised when the lease is lost.
    cancel: CancelHandle,
    /// Raised when the lease is lost.
    lost: CancelHandle,
}

/// Writes the run's heartbeat every `every` until `done`; when the lease turns out to be lost
/// (the run was re-queued as stale), stops the run.
///
/// It runs on its own task, apart from the connector's, so a long connector step does not delay
/// it; and on a fixed cadence, so a slow heartbeat write does not push the next one back.
async fn heartbeat(h: Heartbeat) {
    let every = h.every.max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = h.done.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = Instant::now();
        let written = h.store.heartbeat_run(h.run_id, &h.worker_id).await;
        if started.elapsed() > every {
            warn!(
                took_ms = started.elapsed().as_millis() as u64,
                "a heartbeat write took longer than the heartbeat interval; the run may be taken over"
            );
        }
        match written {
            Ok(true) => debug!("heartbeat"),
            Ok(false) => {
                warn!("lost the run's lease (it went stale and was re-queued); stopping it");
                h.lost.cancel();
                h.cancel.cancel();
                return;
            }
            Err(e) => warn!(error = %e, "could not write the heartbeat; trying again"),
        }
    }
}
