//! What a connector gets to work with: secrets, a cancellation signal, and for a run the store,
//! the integration, the run row and a buffered Sync Log.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ferry_core::run::{SyncDirection, SyncResult};
use ferry_store::{Integration, NewSyncLog, Run, Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::watch;

use crate::connector::RunError;

/// An integration's decrypted secrets, by name. `Debug` shows the names only; there is no
/// `Display` or `Serialize`, so the values cannot end up in a log line or a response by accident.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, SecretString>);

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Secrets::default()
    }

    /// From the JSON object the store decrypts. String values are taken as they are, other
    /// values as their JSON text; `null` means "not set" and is dropped.
    pub fn from_json(map: serde_json::Map<String, Value>) -> Self {
        Secrets(
            map.into_iter()
                .filter_map(|(name, value)| match value {
                    Value::Null => None,
                    Value::String(s) => Some((name, SecretString::from(s))),
                    other => Some((name, SecretString::from(other.to_string()))),
                })
                .collect(),
        )
    }

    /// Adds or replaces one secret.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), SecretString::from(value.into()));
    }

    /// The secret called `name`, still wrapped.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    /// The value of the secret called `name`, for handing to a client. Do not log it.
    pub fn expose(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.expose_secret())
    }

    /// The value of a secret the connector cannot work without; a clear [`RunError`] when unset.
    pub fn require(&self, name: &str) -> Result<&str, RunError> {
        self.expose(name).ok_or_else(|| {
            RunError::fatal(format!(
                "the secret `{name}` is not set; enter it in the integration's settings"
            ))
        })
    }

    /// The names of the secrets that are set, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// How many secrets are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, format_args!("***"))))
            .finish()
    }
}

/// The sending side of a cancellation: whoever runs a connector keeps it and calls
/// [`cancel`](CancelHandle::cancel) to ask the connector to stop.
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<watch::Sender<bool>>);

/// The receiving side of a cancellation, handed to connectors. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CancelSignal(watch::Receiver<bool>);

impl CancelHandle {
    /// A new, not yet cancelled, pair.
    pub fn new() -> (CancelHandle, CancelSignal) {
        let (tx, rx) = watch::channel(false);
        (CancelHandle(Arc::new(tx)), CancelSignal(rx))
    }

    /// Asks every holder of a signal of this handle to stop. Idempotent.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`cancel`](CancelHandle::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Another signal of this handle.
    pub fn signal(&self) -> CancelSignal {
        CancelSignal(self.0.subscribe())
    }
}

impl CancelSignal {
    /// A signal that is never raised.
    pub fn never() -> CancelSignal {
        let (_, rx) = watch::channel(false);
        CancelSignal(rx)
    }

    /// Whether stopping was requested.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when stopping is requested (at once if it was already); never, if the handle
    /// was dropped without cancelling. For `tokio::select!` around slow awaits.
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a connection test works with: the config and secrets (perhaps not saved yet).
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The institution the integration belongs to.
    pub institution_id: i64,
    /// The saved integration being tested, if it is saved.
    pub integration_id: Option<i64>,
    /// The config to test; validated by the connector's `validate_config` already.
    pub config: Value,
    /// The secrets to test with.
    pub secrets: Secrets,
    /// Raised when the caller gives up (a request timeout, a shutdown).
    pub cancel: CancelSignal,
    /// The store, for connectors whose credentials live there (OAuth accounts).
    pub store: Option<Store>,
}

impl ConnectorContext {
    /// A context that is never cancelled.
    pub fn new(
        institution_id: i64,
        integration_id: Option<i64>,
        config: Value,
        secrets: Secrets,
    ) -> Self {
        ConnectorContext {
            institution_id,
            integration_id,
            config,
            secrets,
            cancel: CancelSignal::never(),
            store: None,
        }
    }

    /// The same context with access to the store.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }
}

/// Sync Log rows are written in batches of this many while a run goes on; the rest when the
/// worker calls [`RunContext::flush_log`] at the end.
pub const LOG_FLUSH_AT: usize = 500;

/// Contact sync results (see [`RunContext::synced`]) are written in batches of this many while
/// a run goes on; the rest when the engine ends a chunk or the worker calls
/// [`RunContext::flush_log`].
pub const SYNCED_FLUSH_AT: usize = 1_000;

/// Everything one run of a connector works with.
pub struct RunContext {
    store: Store,
    integration: Integration,
    run: Run,
    secrets: Secrets,
    cancel: CancelSignal,
    pending: Mutex<Vec<NewSyncLog>>,
    logged: AtomicU64,
    /// What the run did with each contact, for their sync status; not yet written.
    synced: Mutex<Vec<SyncResult>>,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.run.id)
            .field("integration_id", &self.integration.id)
            .field("kind", &self.run.kind)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A context for `run` of `integration`, with its decrypted `secrets`.
    pub fn new(
        store: Store,
        integration: Integration,
        run: Run,
        secrets: Secrets,
        cancel: CancelSignal,
    ) -> Self {
        RunContext {
            store,
            integration,
            run,
            secrets,
            cancel,
            pending: Mutex::new(Vec::new()),
            logged: AtomicU64::new(0),
            synced: Mutex::new(Vec::new()),
        }
    }

    /// The store, to read and write contacts, messages and the integration's state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The integration instance being run (as loaded when the run started).
    pub fn integration(&self) -> &Integration {
        &self.integration
    }

    /// The institution the run belongs to.
    pub fn institution_id(&self) -> i64 {
        self.integration.institution_id
    }

    /// The integration's config, validated when it was saved.
    pub fn config(&self) -> &Value {
        &self.integration.config
    }

    /// The run row as claimed (status `running`).
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The connector's own state struct, as the last run saved it (`T::default()` for a new
    /// instance; a state that no longer reads as `T` is logged and taken as new).
    pub fn state<T: serde::de::DeserializeOwned + Default>(&self) -> T {
        let saved = &self.integration.state;
        if saved.is_null() || saved.as_object().is_some_and(|m| m.is_empty()) {
            return T::default();
        }
        serde_json::from_value(saved.clone()).unwrap_or_else(|e| {
            tracing::warn!(integration_id = self.integration.id, error = %e, "the integration's state does not read as this connector's; starting afresh");
            T::default()
        })
    }

    /// Saves the connector's state struct in place of the old one. Call it only once the remote
    /// confirmed what the state says was done (watermarks advance only then).
    pub async fn save_state<T: serde::Serialize>(&self, state: &T) -> Result<(), RunError> {
        let value = serde_json::to_value(state)
            .map_err(|e| RunError::fatal(format!("could not save the integration's state: {e}")))?;
        self.store
            .set_integration_state(self.integration.institution_id, self.integration.id, &value)
            .await?;
        Ok(())
    }

    /// The integration's decrypted secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The signal raised when the run should stop (shutdown, or the lease was lost).
    pub fn cancel(&self) -> &CancelSignal {
        &self.cancel
    }

    /// Whether the run should stop now.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A connection-test context with this run's config and secrets, for connectors that share
    /// their connect code between `test_connection` and `run`.
    pub fn connector_context(&self) -> ConnectorContext {
        ConnectorContext {
            institution_id: self.integration.institution_id,
            integration_id: Some(self.integration.id),
            config: self.integration.config.clone(),
            secrets: self.secrets.clone(),
            cancel: self.cancel.clone(),
            store: Some(self.store.clone()),
        }
    }

    /// Records a per-contact problem in the Sync Log, tagged with this integration and run.
    /// `code` comes from the error dictionary. Rows are buffered and written in batches of
    /// [`LOG_FLUSH_AT`]; an error means a batch could not be written (the rows stay buffered).
    pub async fn log(
        &self,
        contact_id: Option<i64>,
        direction: SyncDirection,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<(), StoreError> {
        let full = {
            let mut pending = self.lock_pending();
            pending.push(NewSyncLog {
                integration_id: Some(self.integration.id),
                run_id: Some(self.run.id),
                direction,
                contact_id,
                code: code.into(),
                message: message.into(),
            });
            self.logged.fetch_add(1, Ordering::Relaxed);
            pending.len() >= LOG_FLUSH_AT
        };
        if full {
            self.flush_log().await?;
        }
        Ok(())
    }

    /// Writes the buffered Sync Log rows, then the buffered contact sync results; returns how
    /// many Sync Log rows. The worker calls it when the run ends. On error the rows stay
    /// buffered for the next attempt.
    pub async fn flush_log(&self) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.lock_pending());
        let written = if batch.is_empty() {
            0
        } else {
            match self
                .store
                .add_sync_log(self.integration.institution_id, &batch)
                .await
            {
                Ok(()) => batch.len(),
                Err(e) => {
                    // Put the batch back in front of anything logged meanwhile, keeping the order.
                    let mut pending = self.lock_pending();
                    let newer = std::mem::replace(&mut *pending, batch);
                    pending.extend(newer);
                    return Err(e);
                }
            }
        };
        self.flush_synced().await?;
        Ok(written)
    }

    /// Records what the run did with one contact (written, failed with a code, or skipped),
    /// for the contact's sync status. Buffered and written in batches of
    /// [`SYNCED_FLUSH_AT`]; an error means a batch could not be written (it stays buffered).
    pub async fn synced(&self, result: SyncResult) -> Result<(), StoreError> {
        let full = {
            let mut synced = self.lock_synced();
            synced.push(result);
            synced.len() >= SYNCED_FLUSH_AT
        };
        if full {
            self.flush_synced().await?;
        }
        Ok(())
    }

    /// Writes the buffered contact sync results; returns how many. Engines call it when they
    /// finish a chunk of contacts. When the integration was deleted meanwhile, the results
    /// are dropped (there is no status left to show); on another error they stay buffered.
    pub async fn flush_synced(&self) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.lock_synced());
        if batch.is_empty() {
            return Ok(0);
        }
        match self
            .store
            .record_contact_syncs(self.integration.institution_id, self.integration.id, &batch)
            .await
        {
            Ok(()) => Ok(batch.len()),
            Err(StoreError::NotFound) => Ok(0),
            Err(e) => {
                let mut synced = self.lock_synced();
                let newer = std::mem::replace(&mut *synced, batch);
                synced.extend(newer);
                Err(e)
            }
        }
    }

    /// Contact sync results buffered and not yet written.
    pub fn pending_synced(&self) -> usize {
        self.lock_synced().len()
    }

    fn lock_synced(&self) -> MutexGuard<'_, Vec<SyncResult>> {
        self.synced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sync Log rows logged during this run so far (written or still buffered).
    pub fn logged(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }

    /// Sync Log rows buffered and not yet written.
    pub fn pending_log(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> MutexGuard<'_, Vec<NewSyncLog>> {
        // A panic while holding the lock leaves a valid Vec behind; keep using it.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_show_in_debug() {
        let mut map = serde_json::Map::new();
        map.insert("password".into(), json!("hunter2"));
        map.insert("pin".into(), json!(1234));
        map.insert("gone".into(), Value::Null);
        let s = Secrets::from_json(map);
        let shown = format!("{s:?}");
        assert_eq!(shown, r#"{"password": ***, "pin": ***}"#);
        assert_eq!(s.expose("password"), Some("hunter2"));
        assert_eq!(s.expose("pin"), Some("1234"));
        assert_eq!(s.names().collect::<Vec<_>>(), ["password", "pin"]);
        let ctx = ConnectorContext::new(1, None, json!({}), s);
        assert!(!format!("{ctx:?}").contains("hunter2"));
        let e = ctx.secrets.require("private_key").unwrap_err();
        assert!(e.reason.contains("`private_key` is not set") && !e.retryable);
    }

    #[tokio::test]
    async fn cancellation_reaches_every_signal() {
        let (handle, signal) = CancelHandle::new();
        let other = handle.signal();
        assert!(!signal.is_cancelled());
        let waiter = tokio::spawn(async move { other.cancelled().await });
        handle.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiter wakes up")
            .unwrap();
        assert!(signal.is_cancelled() && handle.is_cancelled());
        // Already cancelled: completes at once.
        signal.cancelled().await;
        // Never raised: stays pending.
        let never = CancelSignal::never();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), never.cancelled())
                .await
                .is_err()
        );
    }
}
