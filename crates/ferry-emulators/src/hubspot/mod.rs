//! A HubSpot emulator, faithful to HubSpot's published API (CRM contacts v3, properties v3,
//! OAuth v1) and to the behaviours our notes record, for Ferry's tests, benchmarks and demo.
//!
//! HubSpot's paths are served at the root of the listening address:
//!
//! | path | what |
//! |---|---|
//! | `GET /oauth/authorize` | consent page; its form (`POST /oauth/authorize`) redirects to `redirect_uri` with `code` and `state` |
//! | `POST /oauth/v1/token` | `authorization_code` and `refresh_token` grants (form-encoded) |
//! | `GET /oauth/v1/access-tokens/{token}`, `GET\|DELETE /oauth/v1/refresh-tokens/{token}` | token information, refresh-token revocation |
//! | `GET\|POST /crm/v3/objects/contacts` | list (`limit` ≤ 100, `after`, `properties`, `archived`), create |
//! | `GET\|PATCH\|DELETE /crm/v3/objects/contacts/{id}` | read (also `?idProperty=email`), update, archive |
//! | `POST /crm/v3/objects/contacts/batch/{read,create,update,upsert,archive}` | ≤ 100 inputs |
//! | `POST /crm/v3/objects/contacts/search` | filter groups, operators, one sort, `after` paging, `limit` ≤ 200, the 10,000-result cap |
//! | `GET\|POST /crm/v3/properties/contacts`, `GET /crm/v3/properties/contacts/{name}` | property definitions |
//! | `/__emulator/…` | test-only administration (see [`admin`](self#administration)) |
//!
//! # Administration
//!
//! Not part of HubSpot; no authentication, no faults, not counted:
//! `POST /__emulator/contacts` (seed: `{"contacts":[{"properties":{…},"createdAt"?,"updatedAt"?,"archived"?}]}` → `{"ids":[…]}`),
//! `POST /__emulator/properties` (a `PropertyCreate` body), `GET /__emulator/state`
//! (`{"contacts":[…every contact, archived too…],"counters":{…}}`), `POST /__emulator/reset`,
//! `GET|PUT /__emulator/faults` ([`Faults`] as JSON), `GET|PUT /__emulator/limits`
//! ([`RateLimits`] as JSON), `GET /__emulator/counters` ([`Counters`]),
//! `POST /__emulator/clock/advance` (`{"ms":…}`), `POST /__emulator/oauth/expire` (expire every
//! access token now) and `POST /__emulator/oauth/tokens` (`{"scopes"?:[…]}` → a token grant
//! without the consent page). The same operations are methods of [`HubSpotEmulator`].
//!
//! # Behaviour where the documents leave room
//!
//! Sources: HubSpot's OpenAPI documents (`specs/hubspot/`) and `../shared/notes/external-apis.md`.
//! Where neither says, the emulator chooses the stricter reading, so a client that works here
//! does not rely on leniency HubSpot may not have.
//!
//! - **Values**: every value is a string; a requested property without a value is `null` (the
//!   notes; the schemas omit `nullable`). `createdate`, `lastmodifieddate` and custom `datetime`
//!   values come back as ISO 8601 UTC with milliseconds, custom `date` values as `YYYY-MM-DD`;
//!   both accept epoch milliseconds or ISO 8601 on input and in search filters. Emails are stored
//!   trimmed and lowercased. JSON numbers and booleans are accepted as values; `null` is refused.
//!   `""` clears. Ids are above `i32::MAX` and not contiguous.
//! - **Writes**: unknown, read-only and ill-typed values fail the whole request with HubSpot's
//!   `Property values were not valid: [...]` 400. Batch create is all or nothing (409 for the first
//!   existing email, 400 for two inputs with one email); batch update fails whole on validation
//!   errors, duplicate ids and conflicts but answers 207 for unknown ids and updates the rest;
//!   `idProperty=email` is refused by batch update (the notes' "non-unique property" trap) and
//!   required (or a custom unique property) by batch upsert. Batch results come back in a fixed
//!   scrambled order (HubSpot does not promise input order); `objectWriteTraceId` is echoed.
//!   Archiving an unknown id is a 204.
//! - **Search**: up to 6 filter groups (the spec), 6 filters per group and 18 in all, one sort
//!   (objects `{propertyName, direction}` or the spec's strings, `-name` descending), `limit`
//!   1–200, `after` ≥ 10,000 is a 400 while `paging.next` is still offered up to 10,000 (so a
//!   client meets the cap as it would at HubSpot); `total` counts every match. Comparisons of
//!   strings are case-insensitive; `NEQ`, `NOT_IN`, `NOT_HAS_PROPERTY` and `NOT_CONTAINS_TOKEN`
//!   match contacts without a value; tokens split on spaces and punctuation, `*` is a wildcard.
//!   Writes may be made visible to search late ([`EmulatorConfig::search_visibility_delay`]).
//! - **Errors** carry `status`, `message`, `correlationId` (a UUID) and `category`. The 429 body
//!   is the documented one plus `category: "RATE_LIMITS"` and a `groupName`; token-endpoint errors
//!   use HubSpot's `status` codes (`BAD_AUTH_CODE`, `BAD_REFRESH_TOKEN`, `BAD_CLIENT_ID`,
//!   `BAD_CLIENT_SECRET`, `BAD_REDIRECT_URI`, `BAD_GRANT_TYPE`) plus `category`, which the
//!   published `Error` schema requires. A 404 always has an `Error` body. Messages the sources
//!   do not give (more than 100 inputs, the 10,000 cap, search limits) are the emulator's own.
//!   URLs over [`MAX_URI_LENGTH`] get the edge's 414 HTML page.
//! - **Limits and headers**: see [`RateLimits`]. Every authenticated CRM answer carries
//!   `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`; private apps also get
//!   `-Daily` and `-Daily-Remaining` (HubSpot leaves them out for OAuth). The deprecated
//!   `-Secondly` headers and `Retry-After` are not sent. The day is the UTC day.
//!
//! Not emulated: associations (accepted, ignored), `propertiesWithHistory`, merge, GDPR delete,
//! property groups and property update/archive/batch endpoints, other object types, the
//! `client_credentials` grant, legacy API keys (`hapikey`), webhooks.

mod admin;
mod api;
mod config;
mod error;
mod gate;
mod oauth;
mod properties;
mod search;
mod store;
mod time;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Router, middleware};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use config::{
    ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, Faults, OAuthClient,
    RateLimits,
};

use crate::rng::Rng;
use gate::Limiter;
use oauth::Tokens;
use store::Store;
use time::{Clock, ms_to_ts};

/// HubSpot's batch endpoints take at most this many inputs.
pub const MAX_BATCH_INPUTS: usize = 100;
/// Largest `limit` of `GET /crm/v3/objects/contacts`.
pub const MAX_LIST_LIMIT: i64 = 100;
/// Largest `limit` of a search (the spec's 200; HubSpot long allowed only 100).
pub const MAX_SEARCH_LIMIT: i64 = 200;
/// A search query pages through at most this many results; `after` beyond is a 400.
pub const SEARCH_RESULT_CAP: usize = 10_000;
/// Longest path and query HubSpot's edge accepts (its CDN's 16 KB URL limit); longer is a 414
/// with an HTML body. Asking for ~900 properties in a GET overflows it.
pub const MAX_URI_LENGTH: usize = 16 * 1024;

/// A handle on one emulated HubSpot account. Clones share the account.
#[derive(Clone)]
pub struct HubSpotEmulator {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: EmulatorConfig,
    clock: Clock,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
}

pub(crate) struct State {
    store: Store,
    tokens: Tokens,
    limiter: Limiter,
    limits: RateLimits,
    faults: Faults,
    fault_rng: Rng,
    burst_left: u32,
    counters: Counters,
    schema_violations: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn search_delay_ms(&self) -> i64 {
        i64::try_from(self.config.search_visibility_delay.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Request and answer counts, for tests and benchmarks to assert on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests by endpoint, keyed `"METHOD /path/template"` with the templates of the OpenAPI
    /// documents (`"POST /crm/v3/objects/contacts/batch/create"`,
    /// `"GET /crm/v3/objects/contacts/{contactId}"`).
    pub requests: BTreeMap<String, u64>,
    /// Answers by HTTP status (injected faults included).
    pub statuses: BTreeMap<u16, u64>,
    /// 429s sent because a limit was reached, by policy (`TEN_SECONDLY_ROLLING`, `SECONDLY`,
    /// `DAILY`). Injected bursts are counted in `injected`.
    pub rate_limited: BTreeMap<String, u64>,
    /// Injected faults.
    pub injected: InjectedCounts,
}

/// Counts of injected faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedCounts {
    /// 5xx answers.
    pub errors: u64,
    /// Requests that hung and then got a 504.
    pub timeouts: u64,
    /// 429s of injected bursts.
    pub bursts_429: u64,
}

impl Counters {
    /// Requests to one endpoint (`"POST /crm/v3/objects/contacts/search"`).
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests to HubSpot's CRM API (`/crm/…`), whatever their answer.
    pub fn api_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.contains(" /crm/"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every 429 sent, real limits and injected bursts.
    pub fn total_429(&self) -> u64 {
        self.statuses.get(&429).copied().unwrap_or(0)
    }
}

/// A contact as the emulator holds it (admin dump): every stored value plus the computed
/// `hs_object_id`, `createdate` and `lastmodifieddate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    /// The record id (`hs_object_id`).
    pub id: String,
    /// Property values.
    pub properties: BTreeMap<String, String>,
    /// `createdAt`.
    pub created_at: Timestamp,
    /// `updatedAt` (= `lastmodifieddate`).
    pub updated_at: Timestamp,
    /// Whether the contact is archived.
    pub archived: bool,
    /// When it was archived.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub archived_at: Option<Timestamp>,
}

impl ContactRecord {
    /// A property value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }
}

/// A contact to seed (values are validated like API writes; the dates may be set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedContact {
    /// Property values (`createdate` and `lastmodifieddate` are accepted here).
    pub properties: BTreeMap<String, String>,
    /// `createdAt`; now by default.
    pub created_at: Option<Timestamp>,
    /// `updatedAt`; `created_at` (or now) by default.
    pub updated_at: Option<Timestamp>,
    /// Seed it archived.
    pub archived: bool,
}

impl SeedContact {
    /// A live contact with these property values.
    pub fn new<K: Into<String>, V: Into<String>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> SeedContact {
        SeedContact {
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..SeedContact::default()
        }
    }
}

/// Tokens as `POST /oauth/v1/token` returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// Bearer token for the CRM API.
    pub access_token: String,
    /// Token for the `refresh_token` grant.
    pub refresh_token: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
}

/// An administrative operation was refused (the same answer the API would give).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct EmulatorError {
    /// The HTTP status the API would answer.
    pub status: u16,
    /// HubSpot's message.
    pub message: String,
}

impl From<error::ApiError> for EmulatorError {
    fn from(e: error::ApiError) -> Self {
        EmulatorError {
            status: e.status.as_u16(),
            message: e
                .body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

impl HubSpotEmulator {
    /// An emulated account with no contacts and HubSpot's default contact properties.
    pub fn new(config: EmulatorConfig) -> HubSpotEmulator {
        let clock = Clock::default();
        let state = State::new(&config, clock.now_ms());
        let (shutdown, _) = watch::channel(false);
        HubSpotEmulator {
            shared: Arc::new(Shared {
                config,
                clock,
                state: Mutex::new(state),
                shutdown,
            }),
        }
    }

    /// The configuration it was created with (limits and faults may have changed since; see
    /// [`HubSpotEmulator::limits`] and [`HubSpotEmulator::faults`]).
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Serves HubSpot's API on `listener` until `shutdown` completes; requests hanging on an
    /// injected timeout are released at shutdown.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shared.shutdown.clone();
        let app = router(self.shared.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                signal.send_replace(true);
            })
            .await
    }

    /// Seeds contacts; returns their ids in order. Fails on the first invalid one (earlier ones
    /// stay), e.g. an existing email (409) or an unknown property (400).
    pub fn seed_contacts(
        &self,
        contacts: impl IntoIterator<Item = SeedContact>,
    ) -> Result<Vec<String>, EmulatorError> {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        let mut ids = Vec::new();
        for c in contacts {
            let input: serde_json::Map<String, Value> = c
                .properties
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let id = st.store.seed(
                &input,
                c.created_at.map(|t| t.as_millisecond()),
                c.updated_at.map(|t| t.as_millisecond()),
                c.archived,
                now,
            )?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// Creates a contact property from a `PropertyCreate` JSON body, as
    /// `POST /crm/v3/properties/contacts` does.
    pub fn create_property(&self, definition: Value) -> Result<(), EmulatorError> {
        let input: properties::PropertyCreate =
            serde_json::from_value(definition).map_err(|e| error::ApiError::invalid_json(&e))?;
        let def = input.into_def(self.shared.clock.now())?;
        self.shared.lock().store.add_property(def)?;
        Ok(())
    }

    /// Every contact, archived ones included, by id.
    pub fn contacts(&self) -> Vec<ContactRecord> {
        self.shared
            .lock()
            .store
            .contacts
            .values()
            .map(record)
            .collect()
    }

    /// One contact by id, archived or not.
    pub fn contact(&self, id: &str) -> Option<ContactRecord> {
        let id: u64 = id.parse().ok()?;
        self.shared.lock().store.contacts.get(&id).map(record)
    }

    /// The live contact with this email (case-insensitive).
    pub fn contact_by_email(&self, email: &str) -> Option<ContactRecord> {
        let st = self.shared.lock();
        let id = st.store.resolve(email, Some("email"), false).ok()??;
        st.store.contacts.get(&id).map(record)
    }

    /// Forgets contacts and custom properties, zeroes counters and rate-limit windows, re-seeds
    /// the fault RNG and restarts ids. Tokens, the clock and recorded schema violations are kept.
    pub fn reset(&self) {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        let tokens = std::mem::take(&mut st.tokens);
        let violations = std::mem::take(&mut st.schema_violations);
        let limits = st.limits;
        let faults = st.faults;
        *st = State::new(&self.shared.config, now);
        st.tokens = tokens;
        st.schema_violations = violations;
        st.limits = limits;
        st.faults = faults;
        st.fault_rng = Rng::new(faults.seed);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults
    }

    /// Replaces the faults and re-seeds the fault RNG with `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.shared.lock();
        st.faults = faults;
        st.fault_rng = Rng::new(faults.seed);
        st.burst_left = 0;
    }

    /// The rate limits in force.
    pub fn limits(&self) -> RateLimits {
        self.shared.lock().limits
    }

    /// Replaces the rate limits (windows already counted are kept).
    pub fn set_limits(&self, limits: RateLimits) {
        self.shared.lock().limits = limits;
    }

    /// Answers that did not conform to HubSpot's published schemas, as
    /// `"METHOD /path STATUS: violations"` (at most 100 kept). Empty unless the emulator has a
    /// bug; connector tests assert it stays empty. Needs [`EmulatorConfig::validate_responses`].
    pub fn schema_violations(&self) -> Vec<String> {
        self.shared.lock().schema_violations.clone()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Moves the emulator's clock forward: tokens expire and rate-limit windows slide without
    /// waiting. Timestamps of later writes move too.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Expires every OAuth access token now (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        let now = self.shared.clock.now_ms();
        self.shared.lock().tokens.expire_all(now);
    }

    /// Issues OAuth tokens for the configured app as if its consent page had been approved
    /// (`scopes` empty: the contacts read/write scopes).
    pub fn issue_tokens(&self, scopes: &[&str]) -> TokenGrant {
        let scopes: Vec<String> = if scopes.is_empty() {
            vec![
                "crm.objects.contacts.read".into(),
                "crm.objects.contacts.write".into(),
            ]
        } else {
            scopes.iter().map(|s| s.to_string()).collect()
        };
        let now = self.shared.clock.now_ms();
        let lifetime = self.shared.config.access_token_lifetime;
        self.shared.lock().tokens.issue(scopes, now, lifetime)
    }
}

fn record(c: &store::Contact) -> ContactRecord {
    let mut properties: BTreeMap<String, String> = c.props.clone();
    for name in store::ALWAYS {
        if let Some(v) = c.get(name) {
            properties.insert(name.to_string(), v.into_owned());
        }
    }
    ContactRecord {
        id: c.id.to_string(),
        properties,
        created_at: ms_to_ts(c.created_ms),
        updated_at: ms_to_ts(c.updated_ms),
        archived: c.archived(),
        archived_at: c.archived_ms.map(ms_to_ts),
    }
}

impl State {
    fn new(config: &EmulatorConfig, now_ms: i64) -> State {
        State {
            store: Store::new(config.first_contact_id, config.id_seed, now_ms),
            tokens: Tokens::default(),
            limiter: Limiter::default(),
            limits: config.limits,
            faults: config.faults,
            fault_rng: Rng::new(config.faults.seed),
            burst_left: 0,
            counters: Counters::default(),
            schema_violations: Vec::new(),
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    use axum::routing::MethodRouter;
    let contacts = "/crm/v3/objects/contacts";
    let batch = |action: &str| format!("{contacts}/batch/{action}");
    let routes: Vec<(String, MethodRouter<Arc<Shared>>)> = vec![
        (contacts.into(), get(api::list).post(api::create)),
        (format!("{contacts}/search"), post(search::search)),
        (batch("read"), post(api::batch_read)),
        (batch("create"), post(api::batch_create)),
        (batch("update"), post(api::batch_update)),
        (batch("upsert"), post(api::batch_upsert)),
        (batch("archive"), post(api::batch_archive)),
        (
            format!("{contacts}/{{contact_id}}"),
            get(api::get_one).patch(api::update).delete(api::archive),
        ),
        (
            "/crm/v3/properties/{object_type}".into(),
            get(api::list_properties).post(api::create_property),
        ),
        (
            "/crm/v3/properties/{object_type}/{property_name}".into(),
            get(api::get_property),
        ),
        (
            "/oauth/authorize".into(),
            get(oauth::authorize_page).post(oauth::authorize_decision),
        ),
        ("/oauth/v1/token".into(), post(oauth::token)),
        (
            "/oauth/v1/access-tokens/{token}".into(),
            get(oauth::access_token_info),
        ),
        (
            "/oauth/v1/refresh-tokens/{token}".into(),
            get(oauth::refresh_token_info).delete(oauth::revoke_refresh_token),
        ),
    ];
    let mut app = Router::new();
    for (path, route) in routes {
        app = app.route(&path, route);
    }
    app.nest("/__emulator", admin::router())
        .fallback(api::unknown_path)
        .layer(middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// An emulator serving on a loopback port, for tests. Dropping it stops the server.
pub struct RunningEmulator {
    base_url: String,
    emulator: HubSpotEmulator,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts an emulator on `127.0.0.1:0`.
pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let emulator = HubSpotEmulator::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(emulator.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Ok(RunningEmulator {
        base_url: format!("http://{addr}"),
        emulator,
        stop: Some(stop),
        task: Some(task),
    })
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, to stand in for both `https://api.hubapi.com` and
    /// `https://app.hubspot.com`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator, for seeding, dumping, faults, limits and counters.
    pub fn state(&self) -> &HubSpotEmulator {
        &self.emulator
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Release requests hanging on an injected timeout even if the task is not awaited.
        self.emulator.shared.shutdown.send_replace(true);
    }
}
