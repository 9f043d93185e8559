//! A Salesforce emulator, faithful to Salesforce's REST API and OAuth as the team's notes record
//! them (`../shared/notes/salesforce-slate-ellucian.md`, section 1), for Ferry's tests,
//! benchmarks and demo.
//!
//! | path | what |
//! |---|---|
//! | `GET /services/oauth2/authorize` | login and consent page (web-server flow, PKCE `S256`); its form (`POST`) redirects with `code` and `state` |
//! | `POST /services/oauth2/token` | `authorization_code` (with `code_verifier`), `refresh_token`, and JWT bearer (`urn:ietf:params:oauth:grant-type:jwt-bearer`, RS256, verified against the connected app's certificate) |
//! | `POST /services/oauth2/revoke` | revokes a refresh token (and its sessions) or an access token |
//! | `GET /services/data/` | the API versions (no authentication, not counted) |
//! | `GET /services/data/vXX.X/` | the version's resources |
//! | `GET …/limits` | `DailyApiRequests` `Max` and `Remaining` |
//! | `GET …/sobjects`, `GET …/sobjects/{object}`, `GET …/sobjects/{object}/describe` | describeGlobal, basic info, describe (Contact and Lead) |
//! | `POST …/sobjects/{object}` | create |
//! | `GET\|PATCH\|DELETE …/sobjects/{object}/{id}` | read (`?fields=`), update, delete (to the recycle bin) |
//! | `GET\|PATCH …/sobjects/{object}/{field}/{value}` | read or upsert by external id (201 created, 200 updated, 300 several matches; `?updateOnly=true`) |
//! | `GET …/sobjects/{object}/updated?start&end`, `…/deleted?start&end` | changed ids, deleted records |
//! | `GET …/query?q=`, `GET …/queryAll?q=`, `GET …/query/{locator}-{offset}` | SOQL subset ([`soql`](self#soql)), pages of up to 2,000 rows |
//! | `POST\|PATCH\|DELETE …/composite/sobjects`, `PATCH …/composite/sobjects/{object}/{field}` | sObject Collections create, update, delete, upsert (≤ 200, `allOrNone`) |
//! | `POST …/jobs/ingest`, `PUT …/jobs/ingest/{id}/batches`, `PATCH\|GET\|DELETE …/jobs/ingest/{id}`, `GET …/jobs/ingest/{id}/successfulResults\|failedResults\|unprocessedrecords` | Bulk API 2.0 ingest (CSV insert, update, upsert, delete) |
//! | `POST …/jobs/query`, `GET\|DELETE …/jobs/query/{id}`, `GET …/jobs/query/{id}/results?locator&maxRecords` | Bulk API 2.0 query (CSV pages, `Sforce-Locator`, `Sforce-NumberOfRecords`) |
//! | `/__emulator/…` | test-only administration (see [below](self#administration)) |
//!
//! # Behaviour where the notes leave room
//!
//! - **Paths** under `/services/data/vXX.X/` are served with or without a trailing slash, as
//!   Salesforce does (simple-salesforce always adds one). A JWT bearer assertion's `exp` may be a
//!   number or a string of digits (Salesforce's own example claims set quotes it).
//! - **Sessions** expire `session_lifetime` after their last use (or on demand); an expired or
//!   unknown token gets 401 `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
//!   Refresh tokens do not rotate; the refresh answer has no `refresh_token`, nor does the JWT
//!   bearer answer. Token answers carry `instance_url` (configured, or the request's own host).
//! - **Limits**: every call under `/services/data/vXX.X/` counts toward the daily limit and
//!   carries `Sforce-Limit-Info: api-usage=N/M`; past the limit a call gets 403
//!   `REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded.") and is not counted.
//! - **Timestamps** have whole seconds (Salesforce's `.000`), so records often share a
//!   `SystemModstamp`; a write sets `SystemModstamp` and `LastModifiedDate` to now.
//! - **Writes** check field existence (`INVALID_FIELD`), create/update rights
//!   (`INVALID_FIELD_FOR_INSERT_UPDATE`), required and non-nillable fields
//!   (`REQUIRED_FIELD_MISSING`, also for `null` or `""` on such a field), email syntax
//!   (`INVALID_EMAIL_ADDRESS`), restricted picklists, lengths (`STRING_TOO_LONG`), types,
//!   ids (`MALFORMED_ID`), unique external ids (`DUPLICATE_VALUE`) and, unless disabled, a
//!   blocking duplicate rule on `Email` (`DUPLICATES_DETECTED`, "Use one of these records?").
//!   `null` or `""` clears a nillable field. Text external ids match case-insensitively.
//! - **Collections** answer 200 with one result per record in request order: `{id, success,
//!   errors:[{statusCode, message, fields}]}` (upsert adds `created`); with `allOrNone` a failure
//!   rolls everything back and the others get `ALL_OR_NONE_OPERATION_ROLLED_BACK`. More than 200
//!   records is a 400 `EXCEEDED_ID_LIMIT`.
//! - **Queries** are snapshots: a locator pages through the rows as they were when the query
//!   ran. `Sforce-Query-Options: batchSize=N` (200–2,000) sets the page size. At most 10
//!   locators stay open; older ones, and those unused for
//!   [`EmulatorConfig::query_locator_idle`] (15 minutes), give `INVALID_QUERY_LOCATOR`. Without `ORDER BY` rows come
//!   in id (creation) order.
//! - **Bulk API 2.0**: a job does its work when closed (`UploadComplete`; a query job at
//!   creation, as a snapshot) but reads `InProgress` for the first
//!   [`EmulatorConfig::bulk_polls_in_progress`] polls. Data is uploaded once per job; its line
//!   endings must match `lineEnding` (else the job fails). An empty cell leaves a field alone and
//!   `#N/A` sets it to null. `sf__Error` is `CODE:message:fields --`. Query results must be read
//!   with the job's API version (409 otherwise); locators are base64 offsets, the last page's
//!   `Sforce-Locator` is `null`.
//! - **Errors** are `[{"message","errorCode","fields"}]`; token errors `{error,
//!   error_description}`.
//!
//! # SOQL
//!
//! See [`soql`]: `SELECT` of plain fields, `FROM` Contact or Lead, `WHERE` with `AND`, `OR`,
//! `NOT`, parentheses, `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `IN`, `NOT IN`, `LIKE`, `NULL`,
//! `ORDER BY … ASC|DESC NULLS FIRST|LAST`, `LIMIT`; everything else is `MALFORMED_QUERY`.
//!
//! # Administration
//!
//! Not part of Salesforce; no authentication, no faults, not counted:
//! `POST /__emulator/records/{object}` (seed `{"records":[{field: value, …}]}`; `CreatedDate`,
//! `SystemModstamp` and `IsDeleted` may be given; → `{"ids":[…]}`), `GET
//! /__emulator/records/{object}` (every record, deleted too), `POST /__emulator/reset`,
//! `GET|PUT /__emulator/faults` ([`Faults`]), `GET|PUT /__emulator/limits` ([`Limits`]),
//! `GET /__emulator/counters` ([`Counters`]), `POST /__emulator/clock/advance` (`{"ms":…}`),
//! `POST /__emulator/sessions/expire` (every session) and `POST /__emulator/oauth/tokens` (a
//! token answer without the consent page). The same operations are methods of
//! [`SalesforceEmulator`].
//!
//! With `--tls` ([`tls`]) it serves HTTPS with a certificate made at start.
//!
//! Not emulated: parallel Bulk processing and its limits, relationship queries, aggregates, `OFFSET`, other
//! objects, record types, field-level security, the client-credentials flow.

mod admin;
mod api;
mod bulk;
mod config;
mod describe;
mod error;
mod gate;
pub mod jwt;
mod oauth;
pub mod soql;
mod store;
mod time;
pub mod tls;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, Faults,
    LATEST_VERSION, Limits,
};

use crate::rng::Rng;
use oauth::Tokens;
use store::Store;
use time::Clock;

/// Largest page of a query.
pub const MAX_BATCH_SIZE: usize = 2_000;
/// Smallest `batchSize` of `Sforce-Query-Options`.
pub const MIN_BATCH_SIZE: usize = 200;
/// Most records of one sObject Collections call.
pub const MAX_COLLECTION: usize = 200;
/// Query locators kept open at once (Salesforce: 10 per user).
pub const MAX_OPEN_CURSORS: usize = 10;

/// A handle on one emulated org. Clones share the org.
#[derive(Clone)]
pub struct SalesforceEmulator {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: EmulatorConfig,
    clock: Clock,
    org_id: String,
    user_id: String,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
}

/// An open query locator: the rows of the query when it ran.
pub(crate) struct Cursor {
    pub id: String,
    pub rows: Vec<Value>,
    pub batch: usize,
    /// When it was last used (emulator clock, ms): it expires after
    /// [`EmulatorConfig::query_locator_idle`] without use.
    pub used_ms: i64,
}

pub(crate) struct State {
    store: Store,
    tokens: Tokens,
    limits: Limits,
    day: i64,
    faults: Faults,
    fault_rng: Rng,
    counters: Counters,
    cursors: VecDeque<Cursor>,
    cursor_seq: u64,
    jobs: bulk::Jobs,
}

impl State {
    fn new(config: &EmulatorConfig) -> State {
        State {
            store: Store::new(config.block_duplicate_emails),
            tokens: Tokens::default(),
            limits: config.limits,
            day: 0,
            faults: config.faults.clone(),
            fault_rng: Rng::new(config.faults.seed),
            counters: Counters::default(),
            cursors: VecDeque::new(),
            cursor_seq: 0,
            jobs: bulk::Jobs::default(),
        }
    }

    /// Starts a new day's count at UTC midnight.
    fn roll_day(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(86_400_000);
        if self.day == 0 {
            self.day = day;
        } else if day != self.day {
            self.day = day;
            self.limits.used = 0;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Request and answer counts, for tests and benchmarks to assert on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests by endpoint, keyed `"METHOD /services/data/vXX.X/sobjects/Contact/{id}"`.
    pub requests: BTreeMap<String, u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Calls counted against the daily limit.
    pub api_requests: u64,
    /// Calls refused with `REQUEST_LIMIT_EXCEEDED`.
    pub limit_exceeded: u64,
    /// Injected 5xx answers.
    pub injected_errors: u64,
    /// Sessions expired by fault injection.
    pub expired_sessions: u64,
}

impl Counters {
    /// Requests to one endpoint (`"POST /services/data/vXX.X/composite/sobjects"`).
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }
}

/// A token answer of `POST /services/oauth2/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The session id, sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Only from the web-server flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Where API calls go.
    pub instance_url: String,
    /// The identity URL, `…/id/{orgId}/{userId}`.
    pub id: String,
    /// `Bearer`.
    pub token_type: String,
    /// Epoch milliseconds, as a string.
    pub issued_at: String,
    /// Base64 HMAC-SHA256 of `id` + `issued_at` keyed with the consumer secret.
    pub signature: String,
    /// Granted scopes.
    pub scope: String,
}

/// A record as the emulator holds it (admin dump).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The 18-character id.
    #[serde(rename = "Id")]
    pub id: String,
    /// Field values (with `CreatedDate`, `SystemModstamp`, `LastModifiedDate`, `IsDeleted`).
    pub fields: Map<String, Value>,
    /// Whether it is in the recycle bin.
    pub deleted: bool,
}

impl Record {
    /// A field's value as text (`None` when null or absent).
    pub fn get(&self, field: &str) -> Option<String> {
        match self.fields.get(field)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// An administrative operation was refused: Salesforce's code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EmulatorError {
    /// The error code (`REQUIRED_FIELD_MISSING`, `INVALID_TYPE`, …).
    pub code: String,
    /// The message.
    pub message: String,
}

fn dump(table: &store::Table, r: &store::Record) -> Record {
    let mut fields = Map::new();
    for f in &table.fields {
        let v = r.get(f.name);
        if !v.is_null() {
            fields.insert(f.name.to_string(), v);
        }
    }
    Record {
        id: r.id.clone(),
        fields,
        deleted: r.deleted_ms.is_some(),
    }
}

impl SalesforceEmulator {
    /// An emulated org with no records.
    pub fn new(config: EmulatorConfig) -> SalesforceEmulator {
        let state = State::new(&config);
        let (shutdown, _) = watch::channel(false);
        SalesforceEmulator {
            shared: Arc::new(Shared {
                config,
                clock: Clock::default(),
                org_id: store::make_id("00D", 4242),
                user_id: store::make_id("005", 1),
                state: Mutex::new(state),
                shutdown,
            }),
        }
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Serves the API on `listener` until `shutdown` completes.
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

    /// Serves the API over HTTPS with `material` (see [`tls::self_signed`]) until `shutdown`
    /// completes.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        material: &tls::TlsMaterial,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let signal = self.shared.shutdown.clone();
        let app = router(self.shared.clone());
        tls::serve(listener, material, app, async move {
            shutdown.await;
            signal.send_replace(true);
        })
        .await
    }

    /// Seeds records of `object` (`CreatedDate`, `SystemModstamp` and `IsDeleted` may be
    /// given; duplicate rules do not apply); returns their ids. Stops at the first invalid one.
    pub fn seed(
        &self,
        object: &str,
        records: impl IntoIterator<Item = Map<String, Value>>,
    ) -> Result<Vec<String>, EmulatorError> {
        let now = self.shared.clock.now_s();
        let mut st = self.shared.lock();
        let object = st.store.object(object).ok_or_else(|| EmulatorError {
            code: "INVALID_TYPE".into(),
            message: format!("sObject type '{object}' is not supported."),
        })?;
        let mut ids = Vec::new();
        for r in records {
            let id = st.store.seed(object, &r, now).map_err(|e| EmulatorError {
                code: e.code.into(),
                message: e.message,
            })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Every record of `object`, deleted ones included, in creation order.
    pub fn records(&self, object: &str) -> Vec<Record> {
        let st = self.shared.lock();
        let Some(object) = st.store.object(object) else {
            return Vec::new();
        };
        let table = st.store.table(object);
        table.records.values().map(|r| dump(table, r)).collect()
    }

    /// One record by id (15 or 18 characters), deleted or not.
    pub fn record(&self, object: &str, id: &str) -> Option<Record> {
        let st = self.shared.lock();
        let object = st.store.object(object)?;
        let table = st.store.table(object);
        table.records.get(&store::id18(id)).map(|r| dump(table, r))
    }

    /// Forgets records, sessions stay; zeroes counters and today's usage.
    pub fn reset(&self) {
        let mut st = self.shared.lock();
        let tokens = std::mem::take(&mut st.tokens);
        let faults = st.faults.clone();
        let daily_max = st.limits.daily_max;
        *st = State::new(&self.shared.config);
        st.tokens = tokens;
        st.fault_rng = Rng::new(faults.seed);
        st.faults = faults;
        st.limits = Limits { daily_max, used: 0 };
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Replaces the faults and re-seeds the fault RNG.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.shared.lock();
        st.fault_rng = Rng::new(faults.seed);
        st.faults = faults;
    }

    /// The limit and today's usage.
    pub fn limits(&self) -> Limits {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        st.roll_day(now);
        st.limits
    }

    /// Replaces the limit and today's usage.
    pub fn set_limits(&self, limits: Limits) {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        st.roll_day(now);
        st.limits = limits;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Moves the emulator's clock forward (sessions and codes expire, timestamps move).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Expires every session now (refresh tokens stay valid).
    pub fn expire_sessions(&self) {
        self.shared.lock().tokens.expire_all();
    }

    /// Issues tokens as the web-server flow would, without the consent page; `instance_url`
    /// is `base_url` unless configured.
    pub fn issue_tokens(&self, base_url: &str) -> TokenGrant {
        let now = self.shared.clock.now_ms();
        let (access, refresh) = self.shared.lock().tokens.issue(now, true);
        let base = self
            .shared
            .config
            .instance_url
            .clone()
            .unwrap_or_else(|| base_url.trim_end_matches('/').to_string());
        oauth::grant(&self.shared, &base, access, refresh, now)
    }
}

fn router(shared: Arc<Shared>) -> Router {
    use axum::routing::{MethodRouter, patch, put};
    // Resources under `/services/data/vXX.X`. Salesforce answers each with or without a
    // trailing slash: the REST API Developer Guide's own examples write `…/sobjects/Account/`
    // (create), `…/query/?q=` and `…/sobjects/Contact/updated/?start=` (the notes, §1.2), and
    // simple-salesforce builds every URL that way (`base_url + 'query/'`, `sobjects/Contact/`).
    let data: Vec<(&str, MethodRouter<Arc<Shared>>)> = vec![
        ("", get(api::resources)),
        ("/limits", get(api::limits)),
        ("/sobjects", get(api::describe_global)),
        ("/sobjects/{object}", get(api::basic_info).post(api::create)),
        ("/sobjects/{object}/describe", get(api::describe)),
        ("/sobjects/{object}/updated", get(api::updated)),
        ("/sobjects/{object}/deleted", get(api::deleted)),
        (
            "/sobjects/{object}/{id}",
            get(api::read).patch(api::update).delete(api::delete),
        ),
        (
            "/sobjects/{object}/{field}/{value}",
            get(api::read_external).patch(api::upsert),
        ),
        ("/query", get(api::query)),
        ("/queryAll", get(api::query_all)),
        ("/query/{locator}", get(api::query_more)),
        ("/queryAll/{locator}", get(api::query_more)),
        (
            "/composite/sobjects",
            post(api::collection_create)
                .patch(api::collection_update)
                .delete(api::collection_delete),
        ),
        (
            "/composite/sobjects/{object}/{field}",
            patch(api::collection_upsert),
        ),
        ("/jobs/ingest", post(bulk::create_ingest)),
        (
            "/jobs/ingest/{id}",
            get(bulk::get_ingest)
                .patch(bulk::close_ingest)
                .delete(bulk::delete_ingest),
        ),
        ("/jobs/ingest/{id}/batches", put(bulk::upload)),
        ("/jobs/ingest/{id}/{which}", get(bulk::ingest_results)),
        ("/jobs/query", post(bulk::create_query)),
        (
            "/jobs/query/{id}",
            get(bulk::get_query).delete(bulk::delete_query),
        ),
        ("/jobs/query/{id}/results", get(bulk::query_results)),
    ];
    let mut app = Router::new()
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize_page).post(oauth::authorize_decision),
        )
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/data", get(api::versions))
        .route("/services/data/", get(api::versions));
    for (path, route) in data {
        let path = format!("/services/data/{{version}}{path}");
        app = app
            .route(&format!("{path}/"), route.clone())
            .route(&path, route);
    }
    app.nest("/__emulator", admin::router())
        .fallback(gate::unknown_path)
        .layer(middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// An emulator serving on a loopback port, for tests. Dropping it stops the server.
pub struct RunningEmulator {
    base_url: String,
    emulator: SalesforceEmulator,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts an emulator on `127.0.0.1:0`.
pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let emulator = SalesforceEmulator::new(config);
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
    /// `http://127.0.0.1:PORT`: the login host and the instance.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator, for seeding, dumping, faults, limits and counters.
    pub fn state(&self) -> &SalesforceEmulator {
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
        self.emulator.shared.shutdown.send_replace(true);
    }
}
