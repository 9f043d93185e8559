//! A small HubSpot CRM v3 client: contacts (batch read, create, update; search), properties,
//! over the shared HTTP plumbing ([`crate::crm::http`]): HubSpot's two rate limits per account,
//! retries with backoff and jitter for 429 and 5xx.
//!
//! Requests carry every field HubSpot's OpenAPI documents mark required, and answers are read
//! leniently (unknown fields ignored).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::mapping::RemoteProperty;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::crm::http::Calls;
pub use crate::crm::http::StaticToken;
use crate::crm::http::{Http, RetryPolicy, Window, retry_after_hint};

/// How the client gets its access token.
pub type TokenSource = dyn crate::crm::http::TokenSource<HubSpotError>;

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

/// The client for one account.
pub struct Client {
    http: Http,
    base: String,
    token: Arc<TokenSource>,
    limiter: Arc<AccountLimiter>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// HubSpot's error answer: its status, category and message.
fn api_error(status: u16, text: &str) -> HubSpotError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    HubSpotError::Api {
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
    }
}

impl Client {
    /// A client for the API at `base` (e.g. `https://api.hubapi.com`) with a limiter of its own.
    pub fn new(base: &str, token: Arc<TokenSource>, limits: Limits) -> Client {
        let limiter = AccountLimiter::new(&limits);
        Client::with_limiter(base, token, limits, limiter)
    }

    /// A client that shares `limiter` with the other clients of the same account.
    pub fn with_limiter(
        base: &str,
        token: Arc<TokenSource>,
        limits: Limits,
        limiter: Arc<AccountLimiter>,
    ) -> Client {
        let policy = RetryPolicy {
            retries: limits.retries,
            backoff: limits.backoff,
            max_wait: Duration::from_secs(30),
        };
        Client {
            http: Http::new(limits.timeout, policy, retry_after_hint),
            base: base.trim_end_matches('/').to_string(),
            token,
            limiter,
        }
    }

    /// What the client did so far.
    pub fn calls(&self) -> Calls {
        self.http.calls()
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
            let window = if search {
                &self.limiter.search
            } else {
                &self.limiter.ten_seconds
            };
            let token = self.token.token().await?;
            let mut req = self
                .http
                .client()
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token.expose_secret());
            if let Some(b) = body {
                req = req.json(b);
            }
            let answer = match self.http.send_once(window, req).await {
                Ok(a) if a.is_success() => {
                    return Ok(serde_json::from_str(&a.body).unwrap_or(Value::Null));
                }
                Ok(a) => Ok(a),
                Err(e) => Err(HubSpotError::Transport(e)),
            };
            let err = match &answer {
                Ok(a) => api_error(a.status, &a.body),
                Err(e) => e.clone(),
            };
            if err.status() == Some(401) && !refreshed {
                refreshed = true;
                self.token.invalidate().await;
                continue;
            }
            let retry = err.status() == Some(429) || (idempotent && err.is_transient());
            let wait = match retry {
                true => self.http.retry_wait(attempt, answer.as_ref().ok()),
                false => None,
            };
            let Some(wait) = wait else {
                return Err(err);
            };
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
                        let kind = super::codec::remote_kind(p["type"].as_str().unwrap_or(""));
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
