//! How a worker behaves.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A worker's settings. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Names this worker in run leases and logs; unique among the workers sharing a store.
    /// Default: `hostname-pid-random`.
    pub worker_id: String,
    /// How long to wait before looking again when the queue is empty. Default 1 s. Runs queued
    /// in the same process wake the worker at once; on PostgreSQL so do runs queued by any
    /// process (`LISTEN`/`NOTIFY`), and the worker does not poll while it is listening.
    pub poll_interval: Duration,
    /// How often a running run's heartbeat is written, and how often an idle worker looks for
    /// runs whose heartbeat went stale. Default 3 s.
    pub heartbeat_interval: Duration,
    /// The lease: a running run whose heartbeat is older than this is taken to have lost its
    /// worker and is queued again. Default 10 s, so that an idle worker takes a dead worker's
    /// run over within `stale_after + heartbeat_interval` (13 s) of its last heartbeat. At
    /// least [`MIN_LEASE_HEARTBEATS`] heartbeats long (see [`WorkerConfig::validate`]).
    pub stale_after: Duration,
    /// A stale run that was claimed this many times already fails instead of being queued
    /// again. Default 3.
    pub max_attempts: u32,
    /// On shutdown, how long a running connector gets to stop after it was asked to; after
    /// that its run goes back to the queue. Default 30 s.
    pub shutdown_grace: Duration,
    /// How often due scheduled runs are queued. Default 30 s.
    pub scheduler_interval: Duration,
    /// How often the worker looks for contacts changed since an on-change instance's
    /// watermark; changes within one interval go out in one run. Default 2 s.
    pub change_interval: Duration,
    /// After an on-change instance's run failed, how long before a change queues another.
    /// Default 5 min.
    pub change_backoff: Duration,
    /// How many runs the worker executes at once (runs of one integration never overlap: the
    /// store claims at most one running run per integration), so a long export does not hold
    /// back the pushes of other integrations. Default 4.
    pub concurrency: usize,
    /// How many times a run is tried again, within the same claim, after the connector reported
    /// a retryable error. Default 2.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further retry (at most 5 min).
    /// Default 10 s.
    pub retry_backoff: Duration,
    /// How often the worker delivers queued alerts (webhooks, emails). Default 5 s.
    pub alert_interval: Duration,
    /// The wait after an alert's first failed delivery; it doubles after each further one (at
    /// most 4 hours). Default 30 s.
    pub alert_retry: Duration,
    /// The SMTP server alert emails go through; `None`: emails are not sent (each is recorded
    /// as failed, with the reason).
    pub smtp: Option<crate::alerts::SmtpSettings>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: default_worker_id(),
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(3),
            stale_after: Duration::from_secs(10),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            scheduler_interval: Duration::from_secs(30),
            change_interval: Duration::from_secs(2),
            change_backoff: Duration::from_secs(300),
            concurrency: 4,
            retries: 2,
            retry_backoff: Duration::from_secs(10),
            alert_interval: Duration::from_secs(5),
            alert_retry: Duration::from_secs(30),
            smtp: None,
        }
    }
}

/// The longest wait between two tries of a run.
pub(crate) const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(300);

/// The lease must last at least this many heartbeat intervals, so that one or two slow or
/// failed heartbeat writes do not hand a live worker's run to another.
pub const MIN_LEASE_HEARTBEATS: u32 = 3;

/// Settings a worker refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerConfigError {
    /// The heartbeat interval is zero.
    #[error("the heartbeat interval must be at least 1 ms")]
    ZeroHeartbeat,
    /// The lease is not well above the heartbeat interval.
    #[error(
        "the lease ({lease:?}) must be at least {MIN_LEASE_HEARTBEATS} times the heartbeat interval ({heartbeat:?}), \
         or a live worker can lose its run to another after a slow heartbeat"
    )]
    LeaseTooShort {
        /// The lease (`stale_after`).
        lease: Duration,
        /// The heartbeat interval.
        heartbeat: Duration,
    },
}

impl WorkerConfig {
    /// Checks that the heartbeat and the lease fit together: a heartbeat interval above zero
    /// and a lease at least [`MIN_LEASE_HEARTBEATS`] heartbeats long.
    pub fn validate(&self) -> Result<(), WorkerConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(WorkerConfigError::ZeroHeartbeat);
        }
        if self.stale_after < self.heartbeat_interval.saturating_mul(MIN_LEASE_HEARTBEATS) {
            return Err(WorkerConfigError::LeaseTooShort {
                lease: self.stale_after,
                heartbeat: self.heartbeat_interval,
            });
        }
        Ok(())
    }

    /// The longest time from a run's last heartbeat to another, idle worker re-queuing it:
    /// the lease plus one stale check interval (the heartbeat interval).
    pub fn takeover_bound(&self) -> Duration {
        self.stale_after.saturating_add(self.heartbeat_interval)
    }

    /// The wait before retry number `retry` (1-based).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(MAX_RETRY_BACKOFF)
    }
}

/// `hostname-pid-random`, e.g. `app-1-4242-9f3ac2e1`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    // The standard library's randomly keyed hasher is random enough to tell workers apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        hasher.finish() as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_name_the_process() {
        let (a, b) = (default_worker_id(), default_worker_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn the_defaults_take_a_dead_workers_run_over_within_15_s() {
        let c = WorkerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.takeover_bound() <= Duration::from_secs(15), "{c:?}");
    }

    #[test]
    fn a_lease_close_to_the_heartbeat_is_refused() {
        let c = |heartbeat, lease| WorkerConfig {
            heartbeat_interval: Duration::from_secs(heartbeat),
            stale_after: Duration::from_secs(lease),
            ..WorkerConfig::default()
        };
        assert_eq!(c(3, 9).validate(), Ok(()));
        assert_eq!(
            c(3, 8).validate(),
            Err(WorkerConfigError::LeaseTooShort {
                lease: Duration::from_secs(8),
                heartbeat: Duration::from_secs(3)
            })
        );
        assert_eq!(c(0, 10).validate(), Err(WorkerConfigError::ZeroHeartbeat));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let c = WorkerConfig {
            retry_backoff: Duration::from_secs(10),
            ..WorkerConfig::default()
        };
        assert_eq!(c.backoff(1), Duration::from_secs(10));
        assert_eq!(c.backoff(2), Duration::from_secs(20));
        assert_eq!(c.backoff(3), Duration::from_secs(40));
        assert_eq!(c.backoff(60), MAX_RETRY_BACKOFF);
    }
}
