//! An EveryAction (NGP VAN API v4) emulator, faithful to `../shared/notes/everyaction.md`, for
//! Ferry's tests, benchmarks and demo.
//!
//! VAN's paths are served under `/v4` at the listening address; change-entity files under
//! `/blob/…` (a stand-in for the pre-signed blob URLs, fetched without authentication):
//!
//! | path | what |
//! |---|---|
//! | `GET /v4/apiKeyProfiles` | the key's profile, in the paginated envelope (one item) |
//! | `POST /v4/echoes` | echoes `message` with `dateSent` |
//! | `POST /v4/people/find` | 302 + absolute `Location` + `{"vanId":N,"status":"Matched"}`, or 404 `{"vanId":null,"status":"Unmatched"}` |
//! | `POST /v4/people/findOrCreate` | 302 stub when matched, else 201 `{"vanId":N,"status":"UnmatchedStored"}` (below the match minimum too: a duplicate) |
//! | `POST /v4/people/create` | always 201 `Stored` |
//! | `POST /v4/people/{vanId}` | merge (append phones, emails, addresses; dedupe an identical email; the same phone number changes in place), 302 |
//! | `GET /v4/people/{vanId}?$expand=…` | the person; collections `null` unless expanded |
//! | `GET /v4/people?…` | search: prefix, case-insensitive; `$top` ≤ 200, `$skip`, `nextPageLink`, `count` |
//! | `GET /v4/changedEntityExportJobs/resources`, `/fields/{resourceType}`, `/changeTypes/{resourceType}` | bare arrays |
//! | `POST /v4/changedEntityExportJobs`, `GET /v4/changedEntityExportJobs/{exportJobId}` | export jobs: 201, then Pending, then Complete with `files` |
//! | `GET /blob/changed-entities/{job}/{n}.csv?sig=…` | a file of a finished job, no authentication |
//! | `/__emulator/…` | test-only administration (see below) |
//!
//! # Authentication, limits, faults
//!
//! HTTP Basic: any user name (the application name; VO: "anything works here") unless
//! [`EmulatorConfig::require_app_name`], and the password `KEY|1`. A wrong key, `KEY|0` (a mode
//! the key lacks) and missing credentials all get the same 401
//! `{"errors":[{"code":"UNAUTHORIZED","text":"Invalid Database Mode"}]}`.
//!
//! The rate limit counts every `/v4` request of the key in a sliding one-second window
//! ([`EmulatorConfig::rate_limit_per_second`], the "High" profile's 200/s by default). Beyond it
//! the answer is `429 {"errors":[{"code":"429","text":"Rate limit exceeded. Try again in N ms."}]}`
//! where N is the time until the window admits the next request; there is no `Retry-After`, and a
//! refused request consumes nothing. [`Faults`] injects 500s (VAN's envelope with a
//! `referenceCode`), gateway 502/503/504 HTML pages, 429 bursts, latency and hangs, from a seeded
//! RNG; a share of them happen after the request took effect.
//!
//! # Administration
//!
//! Not part of VAN; no authentication, no faults, not counted:
//! `POST /__emulator/people` (`{"people":[SeedPerson…]}` or a bare array → `{"vanIds":[…]}`; a
//! seed is a write body plus optional `dateCreated`/`dateModified`, and counts as a change by
//! another user), `GET /__emulator/people` (every person with every collection and
//! `dateModified`), `POST /__emulator/people/{vanId}/optIn` (`{"phoneNumber","status":"I|U|O"}`:
//! a change in VAN's UI), `POST /__emulator/reset`, `GET|PUT /__emulator/faults`,
//! `GET|PUT /__emulator/limits` (`{"rate_limit_per_second":N}`), `GET /__emulator/counters`,
//! `GET|PUT /__emulator/clock` (`{"now":"2026-12-04T10:00:00Z","frozen"?:true}`) and
//! `POST /__emulator/clock/advance` (`{"ms":N}`). The same operations are methods of
//! [`EveryActionEmulator`].
//!
//! # Where the sources leave room
//!
//! The points the notes mark as unverified or disputed are settings of [`EmulatorConfig`]:
//! phone-alone matching ([`EmulatorConfig::phone_alone_matches`], observed live), the same
//! number updating its opt-in status in place ([`EmulatorConfig::same_phone_updates_in_place`]),
//! the numeric ids of `PhoneOptInStatus` in export files ([`OptInIds`]), whether files after the
//! first repeat the header ([`EmulatorConfig::header_on_every_file`]). Also the emulator's own
//! choices: the Contacts export columns beyond those seen in the wild (`VanID, FirstName,
//! LastName, Phone, PhoneOptInStatus, DateCreated`) are named `MiddleName, DateOfBirth, Email,
//! PhoneDeviceType, AddressLine1, AddressLine2, City, State, Zip, CountryCode`, and
//! each row carries the person's best phone, preferred email and best address; a job turns
//! Complete after [`EmulatorConfig::pending_polls`] polls that said Pending, selecting at that
//! moment the people changed in `[dateChangedFrom, dateChangedTo]` in their current version;
//! `changeTypes` use the casing EAC observed (`changeTypeID`, `changeTypeName`, `Description`).
//! Reads return the best `Voting` and best `Mailing` address, each the newest address of that
//! type, else the best address of any type (so one address fills both slots).
//!
//! Not emulated: other resources than `Contacts` in export jobs (listed, refused at creation),
//! `includeInactive` and `contactMode` (echoed, no inactive records exist), `requestedCustomFieldIds`,
//! `/people/{personIdType}:{personId}`, `findByPhone`, canvass responses, `scores` beyond its 403.

mod admin;
mod api;
mod error;
mod export;
mod gate;
mod people;
mod time;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Router, middleware};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use people::{Address, Changer, Email, OptIn, Person, Phone};

use crate::rng::Rng;
use time::Clock;

/// Largest `$top` of a paginated endpoint.
pub const MAX_TOP: i64 = 200;
/// `$top` when none is given.
pub const DEFAULT_TOP: i64 = 50;
/// `dateChangedFrom` must be within this many days.
pub const MAX_CHANGED_ENTITY_DAYS: i64 = 90;
/// Download links of export files expire after this many days.
pub const FILE_EXPIRY_DAYS: i64 = 20;

/// Everything the emulator is started with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The application name the key was issued to (`ferry emulate everyaction --app-name`);
    /// reported as the profile's `username`.
    pub app_name: String,
    /// Refuse Basic user names other than `app_name` (VAN accepts any; off by default).
    pub require_app_name: bool,
    /// The API key (a GUID); the password is `KEY|1`.
    pub api_key: String,
    /// The database the key belongs to (`databaseName`).
    pub database_name: String,
    /// The key's user (`userFirstName`, `userLastName`).
    pub user_first_name: String,
    /// See `user_first_name`.
    pub user_last_name: String,
    /// `committeeName`.
    pub committee_name: String,
    /// Requests per second per key (the "High" profile: 200; "Medium": 15).
    pub rate_limit_per_second: u32,
    /// Injected faults.
    pub faults: Faults,
    /// A phone number alone is a match candidate (observed live, not in the docs).
    pub phone_alone_matches: bool,
    /// Re-sending a person's existing number changes that phone (its opt-in status) in place
    /// instead of appending a second phone (the notes' rule, not verified live).
    pub same_phone_updates_in_place: bool,
    /// The ids of `PhoneOptInStatus` in export files (unresolved in the sources; clients must
    /// read them from `/changedEntityExportJobs/fields/Contacts`).
    pub opt_in_ids: OptInIds,
    /// Polls of a new export job that answer `Pending` before it is `Complete`.
    pub pending_polls: u32,
    /// Every export file starts with the header row (else only the first).
    pub header_on_every_file: bool,
    /// The first `vanId` handed out.
    pub first_van_id: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            app_name: "ferry".into(),
            require_app_name: false,
            api_key: "3f2504e0-4f89-11d3-9a0c-0305e82c3301".into(),
            database_name: "EveryAction Emulator".into(),
            user_first_name: "API".into(),
            user_last_name: "User".into(),
            committee_name: "Ferry Emulated Committee".into(),
            rate_limit_per_second: 200,
            faults: Faults::default(),
            phone_alone_matches: true,
            same_phone_updates_in_place: true,
            opt_in_ids: OptInIds::default(),
            pending_polls: 1,
            header_on_every_file: true,
            first_van_id: 100_000_001,
        }
    }
}

/// Numeric ids of the opt-in statuses in export files (default: the TMC tables' 1 = opt-in,
/// 2 = unknown, 3 = opt-out; a script in the wild says opted in = 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptInIds {
    /// `Opt-In`.
    pub opt_in: u32,
    /// `Unknown`.
    pub unknown: u32,
    /// `Opt-Out`.
    pub opt_out: u32,
}

impl Default for OptInIds {
    fn default() -> Self {
        OptInIds {
            opt_in: 1,
            unknown: 2,
            opt_out: 3,
        }
    }
}

impl OptInIds {
    fn id(&self, o: OptIn) -> u32 {
        match o {
            OptIn::In => self.opt_in,
            OptIn::Unknown => self.unknown,
            OptIn::Out => self.opt_out,
        }
    }
}

/// Injected faults, drawn from a RNG seeded with `seed` (the same number of draws for every
/// `/v4` request, so a sequential client sees the same faults on every run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of the fault RNG; setting faults re-seeds it.
    pub seed: u64,
    /// Share (0–1) of requests answered with a 5xx (500 with VAN's envelope, or a gateway's
    /// 502/503/504 HTML page).
    pub error_rate: f64,
    /// Share (0–1) of injected 5xx and hangs that happen after the request took effect.
    pub after_effect_rate: f64,
    /// Share (0–1) of requests that start a burst of `burst_429_len` 429s.
    pub burst_429_rate: f64,
    /// Length of an injected 429 burst.
    pub burst_429_len: u32,
    /// The wait an injected 429 names ("Try again in N ms").
    pub burst_429_wait_ms: u64,
    /// Latency added to every request, in ms.
    pub latency_ms: u64,
    /// Share (0–1) of requests that hang for `hang_ms` and then get a 504.
    pub timeout_rate: f64,
    /// How long a hung request waits before its 504, in ms.
    pub hang_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_rate: 0.0,
            after_effect_rate: 0.0,
            burst_429_rate: 0.0,
            burst_429_len: 3,
            burst_429_wait_ms: 30,
            latency_ms: 0,
            timeout_rate: 0.0,
            hang_ms: 60_000,
        }
    }
}

/// Request and answer counts, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests by `"METHOD /template"` (`"POST /v4/people/{vanId}"`).
    pub requests: BTreeMap<String, u64>,
    /// Answers by status (injected ones included).
    pub statuses: BTreeMap<u16, u64>,
    /// 429s sent because the rate limit was reached.
    pub rate_limited: u64,
    /// Injected 5xx answers.
    pub injected_errors: u64,
    /// Injected hangs.
    pub injected_timeouts: u64,
    /// Injected 429s.
    pub injected_429: u64,
}

impl Counters {
    /// Requests to one endpoint (`"POST /v4/people/find"`).
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// Every `/v4` request, whatever its answer.
    pub fn api_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.contains(" /v4/"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every 429 sent.
    pub fn total_429(&self) -> u64 {
        self.statuses.get(&429).copied().unwrap_or(0)
    }
}

/// A person to seed: a write body (`firstName`, `phones`, `emails`, `addresses`, …) plus
/// optional `dateCreated` and `dateModified` (default: now).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedPerson {
    /// When the person was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<Timestamp>,
    /// When the person last changed (what export jobs select on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_modified: Option<Timestamp>,
    /// The write body.
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

impl SeedPerson {
    /// A person from a write body (`json!({"firstName":…,"phones":[…]})`).
    pub fn new(body: Value) -> SeedPerson {
        SeedPerson {
            body: body.as_object().cloned().unwrap_or_default(),
            ..SeedPerson::default()
        }
    }

    /// The same person, last changed at `at`.
    pub fn modified_at(mut self, at: Timestamp) -> SeedPerson {
        self.date_modified = Some(at);
        self
    }
}

/// An administrative operation was refused (VAN's envelope, as the API would answer).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {body}")]
pub struct EmulatorError {
    /// The HTTP status.
    pub status: u16,
    /// The error body.
    pub body: Value,
}

impl From<error::VanError> for EmulatorError {
    fn from(e: error::VanError) -> Self {
        EmulatorError {
            status: e.status.as_u16(),
            body: e.body(),
        }
    }
}

/// A handle on one emulated EveryAction database. Clones share it.
#[derive(Clone)]
pub struct EveryActionEmulator {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: EmulatorConfig,
    clock: Clock,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
}

pub(crate) struct State {
    people: BTreeMap<u64, Person>,
    ids: people::Ids,
    next_van_id: u64,
    jobs: BTreeMap<u64, export::Job>,
    next_job_id: u64,
    window: VecDeque<i64>,
    rate_limit: u32,
    faults: Faults,
    fault_rng: Rng,
    burst_left: u32,
    counters: Counters,
}

impl State {
    fn new(config: &EmulatorConfig) -> State {
        State {
            people: BTreeMap::new(),
            ids: people::Ids::default(),
            next_van_id: config.first_van_id,
            jobs: BTreeMap::new(),
            next_job_id: 4_201,
            window: VecDeque::new(),
            rate_limit: config.rate_limit_per_second,
            faults: config.faults,
            fault_rng: Rng::new(config.faults.seed),
            burst_left: 0,
            counters: Counters::default(),
        }
    }

    fn new_van_id(&mut self) -> u64 {
        let id = self.next_van_id;
        self.next_van_id += 1;
        id
    }

    /// Creates a person from a parsed write.
    fn create(
        &mut self,
        input: &people::PersonInput,
        config: &EmulatorConfig,
        now_ms: i64,
        by: Changer,
    ) -> u64 {
        let id = self.new_van_id();
        let mut p = Person::new(id, now_ms, by);
        p.merge(
            input,
            &mut self.ids,
            config.same_phone_updates_in_place,
            now_ms,
            by,
        );
        p.modified_ms = now_ms;
        p.modified_by = by;
        self.people.insert(id, p);
        id
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EveryActionEmulator {
    /// An emulated database with nobody in it.
    pub fn new(config: EmulatorConfig) -> EveryActionEmulator {
        let state = State::new(&config);
        let (shutdown, _) = watch::channel(false);
        EveryActionEmulator {
            shared: Arc::new(Shared {
                config,
                clock: Clock::default(),
                state: Mutex::new(state),
                shutdown,
            }),
        }
    }

    /// The configuration it was started with.
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

    /// Seeds people (changes by another user); returns their `vanId`s in order. Fails on the
    /// first invalid body (earlier ones stay).
    pub fn seed_people(
        &self,
        seeds: impl IntoIterator<Item = SeedPerson>,
    ) -> Result<Vec<u64>, EmulatorError> {
        let now = self.shared.clock.now_ms();
        let mut st = self.shared.lock();
        let mut ids = Vec::new();
        for s in seeds {
            let input = people::parse_input(&Value::Object(s.body))?;
            let created = s.date_created.map_or(now, |t| t.as_millisecond());
            let modified = s.date_modified.map_or(created, |t| t.as_millisecond());
            let id = st.create(&input, &self.shared.config, created, Changer::Other);
            if let Some(p) = st.people.get_mut(&id) {
                p.created_ms = created;
                p.modified_ms = modified;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Every person, by `vanId`.
    pub fn people(&self) -> Vec<Person> {
        self.shared.lock().people.values().cloned().collect()
    }

    /// One person.
    pub fn person(&self, van_id: u64) -> Option<Person> {
        self.shared.lock().people.get(&van_id).cloned()
    }

    /// Sets the opt-in status of one of a person's phones, as a user of VAN's UI would (a change
    /// by another user, at the emulator's clock).
    pub fn set_opt_in(
        &self,
        van_id: u64,
        phone_number: &str,
        status: OptIn,
    ) -> Result<(), EmulatorError> {
        let now = self.shared.clock.now_ms();
        let number =
            people::us_number(phone_number).unwrap_or_else(|| people::digits(phone_number));
        let mut st = self.shared.lock();
        let p = st
            .people
            .get_mut(&van_id)
            .ok_or_else(error::VanError::not_found)?;
        let phone = p
            .phones
            .iter_mut()
            .find(|x| x.phone_number == number)
            .ok_or_else(|| error::VanError::invalid("No such phone.", "phoneNumber"))?;
        phone.opt_in = status;
        p.modified_ms = now;
        p.modified_by = Changer::Other;
        Ok(())
    }

    /// Forgets people and jobs, zeroes counters and the rate-limit window, re-seeds the fault
    /// RNG. Limits, faults and the clock are kept.
    pub fn reset(&self) {
        let mut st = self.shared.lock();
        let (limit, faults) = (st.rate_limit, st.faults);
        *st = State::new(&self.shared.config);
        st.rate_limit = limit;
        st.faults = faults;
        st.fault_rng = Rng::new(faults.seed);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults
    }

    /// Replaces the faults and re-seeds the fault RNG.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.shared.lock();
        st.faults = faults;
        st.fault_rng = Rng::new(faults.seed);
        st.burst_left = 0;
    }

    /// Requests per second the key may make.
    pub fn rate_limit(&self) -> u32 {
        self.shared.lock().rate_limit
    }

    /// Sets the key's requests per second.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.shared.lock().rate_limit = per_second;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// The emulator's now.
    pub fn now(&self) -> Timestamp {
        time::ts(self.shared.clock.now_ms())
    }

    /// Moves the clock forward (a frozen clock stays frozen at the new time).
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock
            .advance_ms(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    /// Sets the clock to `now`; it keeps running from there.
    pub fn set_now(&self, now: Timestamp) {
        self.shared.clock.set_ms(now.as_millisecond(), false);
    }

    /// Stops the clock at `now` until the next [`EveryActionEmulator::set_now`] (advancing
    /// keeps it stopped): rate-limit windows and change times then do not depend on how fast
    /// the test runs.
    pub fn freeze_clock(&self, now: Timestamp) {
        self.shared.clock.set_ms(now.as_millisecond(), true);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let ce = "/v4/changedEntityExportJobs";
    Router::new()
        .route("/v4/apiKeyProfiles", get(api::api_key_profiles))
        .route("/v4/echoes", post(api::echo))
        .route("/v4/people", get(api::search))
        .route("/v4/people/find", post(api::find))
        .route("/v4/people/findOrCreate", post(api::find_or_create))
        .route("/v4/people/create", post(api::create))
        .route(
            "/v4/people/{van_id}",
            get(api::get_person).post(api::update),
        )
        .route(ce, post(export::create_job))
        .route(&format!("{ce}/resources"), get(export::resources))
        .route(
            &format!("{ce}/fields/{{resource_type}}"),
            get(export::fields),
        )
        .route(
            &format!("{ce}/changeTypes/{{resource_type}}"),
            get(export::change_types),
        )
        .route(&format!("{ce}/{{job_id}}"), get(export::get_job))
        .route(
            "/blob/changed-entities/{job_id}/{file}",
            get(export::download),
        )
        .nest("/__emulator", admin::router())
        .fallback(api::unknown_path)
        .layer(middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// An emulator serving on a loopback port, for tests. Dropping it stops the server.
pub struct RunningEmulator {
    base_url: String,
    emulator: EveryActionEmulator,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts an emulator on `127.0.0.1:0`.
pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let emulator = EveryActionEmulator::new(config);
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
    /// `http://127.0.0.1:PORT` (the API is under `/v4/`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:PORT/v4/`, to stand in for `https://api.securevan.com/v4/`.
    pub fn api_url(&self) -> String {
        format!("{}/v4/", self.base_url)
    }

    /// The emulator, for seeding, dumping, faults, limits and counters.
    pub fn state(&self) -> &EveryActionEmulator {
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
