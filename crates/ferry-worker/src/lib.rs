//! The worker: schedules due runs, claims queued runs with a lease, keeps the lease alive with a
//! heartbeat while a connector runs, and records how each run ended.
//!
//! Any number of workers (threads of one process or separate processes) can share one store:
//! claiming is atomic (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite),
//! scheduling is idempotent (one run per integration and schedule slot), and a run whose worker
//! stopped heartbeating is re-queued by whichever worker notices first.
//!
//! ```no_run
//! # async fn demo(store: ferry_store::Store) {
//! use ferry_connectors::Registry;
//! use ferry_worker::{Worker, WorkerConfig};
//!
//! let worker = Worker::new(store, Registry::builtin("http://127.0.0.1:8080"), WorkerConfig::default());
//! worker.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # }
//! ```

#![warn(missing_docs)]

pub mod alerts;
mod config;
mod execute;
mod worker;

pub use config::{MIN_LEASE_HEARTBEATS, WorkerConfig, WorkerConfigError, default_worker_id};
pub use worker::{Worker, WorkerError, describe_metrics};
