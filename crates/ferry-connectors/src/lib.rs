//! Connectors: the code that moves data between Ferry's store and one kind of remote system
//! (an SFTP server, a CRM's REST API), and the [`Registry`] that finds them by kind.
//!
//! The worker (`ferry-worker`) claims a queued run, builds a [`RunContext`] for it and calls
//! [`Connector::run`]. The REST API, the screens and `ferry demo` create, change and test
//! integrations through the [`IntegrationService`], which validates with the [`Registry`], checks
//! with the remote within a bounded time and only then stores. A connector never
//! touches HTTP handlers or SQL: it reads and writes Ferry's data through the
//! [`Store`](ferry_store::Store) in its context, and talks to its remote through its own client.
//!
//! # Adding a connector
//!
//! Each kind lives in its own folder, `src/<kind>/`:
//!
//! - `mod.rs` — the type that implements [`Connector`]; it only wires the parts below together.
//! - `config.rs` — the config struct: `#[derive(Deserialize)]` with
//!   `#[serde(deny_unknown_fields)]`, parsed with [`parse_config`]. The doc comment on every
//!   field is the user documentation of that field. [`Connector::validate_config`] parses it and
//!   checks cross-field rules; [`Connector::schedule`] reads the schedule from it.
//! - `client.rs` — the remote (HTTP API or SFTP) behind a small API of our own, so that no
//!   foreign client types leak out of the folder.
//! - `run.rs` — the sync or export itself: reads and writes the store through the
//!   [`RunContext`], records per-contact problems with [`RunContext::log`], checks
//!   [`RunContext::is_cancelled`] between batches, and advances watermarks (the integration's
//!   state) only after the remote confirmed.
//! - `tests.rs` — tests against a fresh store (`ferry_store::testing::fresh_store`) and an
//!   emulated remote.
//!
//! Then register it in [`Registry::builtin`].
//!
//! A CRM reached by a REST API needs no `run.rs` of its own: its client implements
//! [`crm::CrmClient`] (on the HTTP plumbing of [`crm::http`]) with a [`crm::ValueCodec`], and
//! its connector's `run` calls [`crm::run_outgoing`] or [`crm::run_incoming`] (see `hubspot/`).

#![warn(missing_docs)]

pub mod bulk_upload;
mod connector;
mod context;
pub mod crm;
pub mod describe;
pub mod everyaction;
pub mod explain;
pub mod failpoint;
pub mod hubspot;
mod registry;
pub mod salesforce;
pub mod service;
pub mod sftp_export;

pub use connector::{
    ConfigError, ConnectionReport, Connector, ReportStatus, RunError, RunReport, parse_config,
};
pub use context::{
    CancelHandle, CancelSignal, ConnectorContext, LOG_FLUSH_AT, RunContext, Secrets,
};
pub use registry::{Registry, RegistryError, ValidateError};
pub use service::{IntegrationService, ServiceError};
