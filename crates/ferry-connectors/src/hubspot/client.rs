//! A small HubSpot CRM v3 client: contacts (batch read, create, update; search), properties,
//! with a client-side rate limiter and retries with backoff and jitter for 429 and 5xx.
//!
//! Requests carry every field HubSpot's OpenAPI documents mark required, and answers are read
//! leniently (unknown fields ignored).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::mapping::{RemoteKind, RemoteProperty};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// HubSpot's batch limit.
pub const BATCH: usize = 100;
/// Search page size (HubSpot allows up to 200; 100 is what every tier accepts).
pub const SEARCH_PAGE: usize = 100;
/// HubSpot's limit on results per search query.
pub const SEARCH_CAP: u64 = 10_000;
/// Filter groups per search (the spec: "up to 6 groups of filters").
pub const MAX_FILTER_GROUPS: usize = 6;
/// Filters per search, all groups together (HubSpot's guide: 18).
pub const MAX_FILTERS: usize = 18;
/// Values of one `IN` filter we send at most. HubSpot documents no limit; 100, its batch size,
/// keeps a request's body small.
pub const MAX_IN_VALUES: usize = 100;

/// The limits to respect, per account.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per rolling 10-second window (100 for Free/Starter and OAuth apps, 190 for
    /// Pro/Enterprise private apps).
    pub per_ten_seconds: usize,
    /// The rolling window (HubSpot: 10 s; tests shorten it).
    pub window: Duration,
    /// Search requests per second.
    pub searches_per_second: usize,
    /// Retries of one request after a 429, a 5xx or a timeout.
    pub retries: u32,
    /// The first backoff; doubled each retry, with jitter.
    pub backoff: Duration,
    /// Limit for one request.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_ten_seconds: 100,
            window: Duration::from_secs(10),
            searches_per_second: 4,
            retries: 6,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A rolling-window limiter: at most `max` requests in any `window`, as HubSpot counts them.
///
/// HubSpot counts a request when it arrives, which the client cannot see: a request that took
/// long to arrive (a slow connection, a busy server) and a later one that arrived fast could
/// fall within one window at HubSpot while they did not at the client. So a request holds its
/// place from when it is sent until its answer has come back, and only then starts its
/// `window`: by then HubSpot has certainly counted it.
#[derive(Debug)]
pub struct Window {
    max: usize,
    window: Duration,
    state: std::sync::Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// Requests sent and not answered yet.
    in_flight: usize,
    /// When the answered requests of the last `window` were answered, oldest first.
    answered: VecDeque<Instant>,
}

/// A place in a [`Window`], held while a request is out; dropping it starts its window.
#[derive(Debug)]
pub struct Permit<'a>(&'a Window);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut st = self
            .0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.in_flight -= 1;
        st.answered.push_back(Instant::now());
    }
}

impl Window {
    pub fn new(max: usize, window: Duration) -> Window {
        Window {
            max: max.max(1),
            window,
            state: Default::default(),
        }
    }

    /// Waits until one more request fits in the window; the request holds the permit until
    /// its answer is in.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let wait = {
                let mut st = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                while st
                    .answered
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    st.answered.pop_front();
                }
                if st.in_flight + st.answered.len() < self.max {
                    st.in_flight += 1;
                    return Permit(self);
                }
                match st.answered.front() {
                    Some(oldest) => self.window - now.duration_since(*oldest),
                    // Every place is taken by a request still out: look again shortly.
                    None => Duration::from_millis(10),
                }
            };
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

/// The rate limits of one HubSpot account, shared by every client (and run) that uses it, so
/// that consecutive runs do not each start with a full budget.
#[derive(Debug)]
pub struct AccountLimiter {
    ten_seconds: Window,
    search: Window,
}

impl AccountLimiter {
    pub fn new(limits: &Limits) -> Arc<AccountLimiter> {
        Arc::new(AccountLimiter {
            ten_seconds: Window::new(limits.per_ten_seconds, limits.window),
            search: Window::new(limits.searches_per_second, Duration::from_secs(1)),
        })
    }
}

/// A HubSpot contact record.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Record {
    /// A property's value, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HubSpotError {
    /// HubSpot answered with an error: the status, its category and message.
    #[error("HubSpot answered {status}: {message}")]
    Api {
        status: u16,
        category: String,
        message: String,
    },
    /// The request could not be sent or answered (after the retries).
    #[error("HubSpot could not be reached: {0}")]
    Transport(String),
}

impl HubSpotError {
    pub fn status(&self) -> Option<u16> {
        match self {
            HubSpotError::Api { status, .. } => Some(*status),
            HubSpotError::Transport(_) => None,
        }
    }

    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            HubSpotError::Api { status, .. } => *status == 429 || *status >= 500,
            HubSpotError::Transport(_) => true,
        }
    }

    /// For a 409 "Contact already exists. Existing ID: 123", the existing ID.
    pub fn existing_id(&self) -> Option<String> {
        match self {
            HubSpotError::Api {
                status: 409,
                message,
                ..
            } => message
                .rsplit("Existing ID: ")
                .next()
                .filter(|_| message.contains("Existing ID: "))
                .map(|s| s.trim().trim_end_matches('.').to_string()),
            _ => None,
        }
    }
}

/// How the client gets its access token.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid access token (refreshed first if it is about to expire).
    async fn token(&self) -> Result<SecretString, HubSpotError>;
    /// Called after a 401: the token was refused; refresh before the next [`TokenSource::token`].
    async fn invalidate(&self) {}
}

/// A private-app token (it does not expire).
pub struct StaticToken(pub SecretString);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<SecretString, HubSpotError> {
        Ok(self.0.clone())
    }
}

/// Counts of what the client did, for run details and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

/// The client for one account.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Arc<dyn TokenSource>,
    limits: Limits,
    limiter: Arc<AccountLimiter>,
    calls: std::sync::Mutex<Calls>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap_or_default();
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    d.mul_f64(0.5 + frac)
}

impl Client {
    /// A client for the API at `base` (e.g. `https://api.hubapi.com`) with a limiter of its own.
    pub fn new(base: &str, token: Arc<dyn TokenSource>, limits: Limits) -> Client {
        let limiter = AccountLimiter::new(&limits);
        Client::with_limiter(base, token, limits, limiter)
    }

    /// A client that shares `limiter` with the other clients of the same account.
    pub fn with_limiter(
        base: &str,
        token: Arc<dyn TokenSource>,
        limits: Limits,
        limiter: Arc<AccountLimiter>,
    ) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(limits.timeout)
                .build()
                .expect("the HTTP client builds"),
            base: base.trim_end_matches('/').to_string(),
            token,
            limiter,
            limits,
            calls: Default::default(),
        }
    }

    /// What the client did so far.
    pub fn calls(&self) -> Calls {
        *self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        f(&mut self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Sends a request within the limits, retrying 429s (never applied) with backoff, and 5xx
    /// and timeouts too when the request is `idempotent` (a create that timed out may have
    /// happened: the caller looks before it tries again).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        search: bool,
    ) -> Result<Value, HubSpotError> {
        self.send_with(method, path, body, search, true).await
    }

    async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        search: bool,
        idempotent: bool,
    ) -> Result<Value, HubSpotError> {
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            // HubSpot exempts search from the 10-second limit; it has its own.
            let permit = if search {
                self.limiter.search.acquire().await
            } else {
                self.limiter.ten_seconds.acquire().await
            };
            let token = self.token.token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token.expose_secret());
            if let Some(b) = body {
                req = req.json(b);
            }
            self.count(|c| c.requests += 1);
            let outcome: Result<(), HubSpotError> = match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let text = res.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    Err(HubSpotError::Api {
                        status,
                        category: v["category"]
                            .as_str()
                            .or(v["errorType"].as_str())
                            .unwrap_or("")
                            .to_string(),
                        message: v["message"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| text.chars().take(300).collect()),
                    })
                }
                Err(e) => Err(HubSpotError::Transport(e.to_string())),
            };
            drop(permit); // answered: its window starts now
            let err = outcome.expect_err("success returned above");
            if err.status() == Some(401) && !refreshed {
                refreshed = true;
                self.token.invalidate().await;
                continue;
            }
            let retry = err.status() == Some(429) || (idempotent && err.is_transient());
            if !retry || attempt >= self.limits.retries {
                return Err(err);
            }
            if err.status() == Some(429) {
                self.count(|c| c.rate_limited += 1);
            }
            self.count(|c| c.retries += 1);
            let wait = jitter(self.limits.backoff * 2u32.saturating_pow(attempt))
                .min(Duration::from_secs(30));
            attempt += 1;
            tracing::debug!(%err, ?wait, attempt, "retrying a HubSpot request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Every contact property.
    pub async fn properties(&self) -> Result<Vec<RemoteProperty>, HubSpotError> {
        let v = self
            .send(
                reqwest::Method::GET,
                "/crm/v3/properties/contacts",
                None,
                false,
            )
            .await?;
        Ok(v["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        let name = p["name"].as_str()?.to_string();
                        let kind = p["type"]
                            .as_str()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(RemoteKind::Other);
                        Some(RemoteProperty {
                            label: p["label"].as_str().unwrap_or(&name).to_string(),
                            read_only: p["modificationMetadata"]["readOnlyValue"]
                                .as_bool()
                                .unwrap_or(false)
                                || p["calculated"].as_bool().unwrap_or(false),
                            name,
                            kind,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn records(v: &Value) -> Vec<Record> {
        v["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| serde_json::from_value(r.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads up to [`BATCH`] contacts by ID, or by `id_property` (e.g. `email`). Missing ones are
    /// left out of the answer.
    pub async fn batch_read(
        &self,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[String],
    ) -> Result<Vec<Record>, HubSpotError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut body = json!({
            "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            "properties": properties,
            "propertiesWithHistory": [],
        });
        if let Some(p) = id_property {
            body["idProperty"] = json!(p);
        }
        let v = self
            .send(
                reqwest::Method::POST,
                "/crm/v3/objects/contacts/batch/read?archived=false",
                Some(&body),
                false,
            )
            .await?;
        Ok(Self::records(&v))
    }

    /// Creates up to [`BATCH`] contacts; the records come back in input order.
    pub async fn batch_create(
        &self,
        inputs: &[BTreeMap<String, String>],
    ) -> Result<Vec<Record>, HubSpotError> {
        let body = json!({
            "inputs": inputs.iter().map(|p| json!({"properties": p, "associations": []})).collect::<Vec<_>>(),
        });
        let v = self
            .send_with(
                reqwest::Method::POST,
                "/crm/v3/objects/contacts/batch/create",
                Some(&body),
                false,
                false,
            )
            .await?;
        Ok(Self::records(&v))
    }

    /// Updates up to [`BATCH`] contacts by ID.
    pub async fn batch_update(
        &self,
        inputs: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<Record>, HubSpotError> {
        let body = json!({
            "inputs": inputs.iter().map(|(id, p)| json!({"id": id, "properties": p})).collect::<Vec<_>>(),
        });
        let v = self
            .send(
                reqwest::Method::POST,
                "/crm/v3/objects/contacts/batch/update",
                Some(&body),
                false,
            )
            .await?;
        Ok(Self::records(&v))
    }

    /// One page of a search: `filters` are `(property, operator, value)` in one group (AND).
    pub async fn search(
        &self,
        filters: &[(&str, &str, String)],
        sort: Option<(&str, &str)>,
        properties: &[String],
        after: Option<&str>,
    ) -> Result<SearchPage, HubSpotError> {
        let group: Vec<Filter> = filters
            .iter()
            .map(|(p, op, v)| Filter::value(p, op, v.clone()))
            .collect();
        self.search_groups(&[group], sort, properties, after).await
    }

    /// One page of a search with several filter groups: a record matches when it passes every
    /// filter of at least one group (HubSpot: at most [`MAX_FILTER_GROUPS`] groups and
    /// [`MAX_FILTERS`] filters in all).
    pub async fn search_groups(
        &self,
        groups: &[Vec<Filter>],
        sort: Option<(&str, &str)>,
        properties: &[String],
        after: Option<&str>,
    ) -> Result<SearchPage, HubSpotError> {
        let body = json!({
            "filterGroups": groups.iter().map(|g| json!({"filters": g.iter().map(|f| &f.0).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "sorts": sort.map(|(p, d)| vec![json!({"propertyName": p, "direction": d})]).unwrap_or_default(),
            "properties": properties,
            "limit": SEARCH_PAGE,
            "after": after.unwrap_or("0"),
        });
        let v = self
            .send(
                reqwest::Method::POST,
                "/crm/v3/objects/contacts/search",
                Some(&body),
                true,
            )
            .await?;
        Ok(SearchPage {
            total: v["total"].as_u64().unwrap_or(0),
            records: Self::records(&v),
            after: v["paging"]["next"]["after"].as_str().map(str::to_string),
        })
    }
}

/// One filter of a search's filter group.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Value);

impl Filter {
    /// `property OPERATOR value` (`EQ`, `GT`, `GTE`, …).
    pub fn value(property: &str, operator: &str, value: impl Into<String>) -> Filter {
        Filter(json!({"propertyName": property, "operator": operator, "value": value.into()}))
    }

    /// `property IN values`. HubSpot compares string properties with `IN` only in lower case,
    /// so the values are sent lower-cased (matching is case-insensitive anyway).
    pub fn one_of(property: &str, values: impl IntoIterator<Item = impl AsRef<str>>) -> Filter {
        let values: Vec<String> = values
            .into_iter()
            .map(|v| v.as_ref().to_lowercase())
            .collect();
        Filter(json!({"propertyName": property, "operator": "IN", "values": values}))
    }

    /// The filter as it is sent.
    pub fn json(&self) -> &Value {
        &self.0
    }
}

/// A page of search results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub total: u64,
    pub records: Vec<Record>,
    /// The cursor of the next page.
    pub after: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_never_lets_more_than_max_through() {
        let window = Duration::from_millis(300);
        let w = Window::new(3, window);
        let start = Instant::now();
        for _ in 0..3 {
            drop(w.acquire().await);
        }
        drop(w.acquire().await);
        assert!(
            start.elapsed() >= window,
            "the fourth waits until the first leaves the window"
        );
    }

    #[tokio::test]
    async fn a_request_holds_its_place_until_answered_and_its_window_starts_then() {
        let window = Duration::from_millis(200);
        let w = Window::new(2, window);
        let start = Instant::now();
        let slow = w.acquire().await;
        drop(w.acquire().await);
        // The slow request is answered after 150 ms: a third request waits for the first
        // answered one's window (200 ms), and the fourth for the slow one's (150 + 200 ms).
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(slow);
        drop(w.acquire().await);
        assert!(start.elapsed() >= window);
        drop(w.acquire().await);
        assert!(
            start.elapsed() >= Duration::from_millis(350),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn conflicts_name_the_existing_contact() {
        let e = HubSpotError::Api {
            status: 409,
            category: "CONFLICT".into(),
            message: "Contact already exists. Existing ID: 37765128953".into(),
        };
        assert_eq!(e.existing_id().as_deref(), Some("37765128953"));
        assert!(!e.is_transient());
        let e = HubSpotError::Api {
            status: 429,
            category: "RATE_LIMIT".into(),
            message: String::new(),
        };
        assert!(e.is_transient() && e.existing_id().is_none());
    }
}
