//! What happens to every request before and after its handler: counting, injected faults,
//! authentication, rate limits and their headers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::RateLimits;
use super::error::{ApiError, json_response};
use super::{Shared, State as EmuState};
use crate::rng::uuid_v4;
use crate::schema::Specs;

/// Endpoint templates, as the OpenAPI documents write them.
const TEMPLATES: [&str; 14] = [
    "/oauth/authorize",
    "/oauth/v1/token",
    "/oauth/v1/access-tokens/{token}",
    "/oauth/v1/refresh-tokens/{token}",
    "/crm/v3/objects/contacts",
    "/crm/v3/objects/contacts/search",
    "/crm/v3/objects/contacts/batch/read",
    "/crm/v3/objects/contacts/batch/create",
    "/crm/v3/objects/contacts/batch/update",
    "/crm/v3/objects/contacts/batch/upsert",
    "/crm/v3/objects/contacts/batch/archive",
    "/crm/v3/objects/contacts/{contactId}",
    "/crm/v3/properties/{objectType}",
    "/crm/v3/properties/{objectType}/{propertyName}",
];

/// `"METHOD /template"` for counters.
pub(crate) fn endpoint_key(method: &Method, path: &str) -> String {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(usize, &str)> = None;
    for t in TEMPLATES {
        let tsegs: Vec<&str> = t.split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literal += usize::from(t == s);
                t == s
            }
        });
        if ok && best.is_none_or(|(score, _)| literal > score) {
            best = Some((literal, t));
        }
    }
    format!("{method} {}", best.map_or(path, |(_, t)| t))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `/crm/…`: authenticated, rate limited, all faults.
    Crm,
    /// `/oauth/v1/…`: 5xx, timeouts and latency.
    OAuthApi,
    /// Everything else (the consent page, unknown paths): counted only.
    Other,
}

/// Who is calling, with what rights.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// Key of the app's 10-second budget.
    pub app_key: String,
    /// Private apps get the daily headers; OAuth apps do not.
    pub private: bool,
    pub scopes: Vec<String>,
}

impl Principal {
    /// HubSpot's 403 when none of `any_of` was granted.
    pub fn require(&self, any_of: &[&str]) -> Result<(), ApiError> {
        if any_of.iter().any(|s| self.scopes.iter().any(|g| g == s)) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        )
        .with(
            "errors",
            json!([{
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": any_of},
            }]),
        )
        .with("links", json!({"scopes": "https://developers.hubspot.com/scopes"})))
    }
}

/// Rate-limit policies, named as in HubSpot's 429 bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    TenSecondly,
    Secondly,
    Daily,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::TenSecondly => "TEN_SECONDLY_ROLLING",
            Policy::Secondly => "SECONDLY",
            Policy::Daily => "DAILY",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Policy::TenSecondly => "You have reached your ten_secondly_rolling limit.",
            Policy::Secondly => "You have reached your secondly limit.",
            Policy::Daily => "You have reached your daily limit.",
        }
    }
}

/// Sliding-window and daily counters.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    ten_secondly: HashMap<String, VecDeque<i64>>,
    search: VecDeque<i64>,
    day: i64,
    day_count: u64,
}

fn prune(q: &mut VecDeque<i64>, now_ms: i64, window: Duration) {
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    while q.front().is_some_and(|t| *t <= now_ms - window) {
        q.pop_front();
    }
}

impl Limiter {
    fn roll_day(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(86_400_000);
        if day != self.day {
            self.day = day;
            self.day_count = 0;
        }
    }

    /// Admits a request (consuming budget) or names the limit it hit (consuming nothing).
    fn admit(
        &mut self,
        limits: &RateLimits,
        app_key: &str,
        search: bool,
        now_ms: i64,
    ) -> Result<(), Policy> {
        self.roll_day(now_ms);
        if self.day_count >= limits.daily_max {
            return Err(Policy::Daily);
        }
        if search {
            prune(&mut self.search, now_ms, limits.search_window);
            if self.search.len() as u64 >= u64::from(limits.search_max) {
                return Err(Policy::Secondly);
            }
            self.search.push_back(now_ms);
        } else {
            let q = self.ten_secondly.entry(app_key.to_string()).or_default();
            prune(q, now_ms, limits.ten_secondly_window);
            if q.len() as u64 >= u64::from(limits.ten_secondly_max) {
                return Err(Policy::TenSecondly);
            }
            q.push_back(now_ms);
        }
        self.day_count += 1;
        Ok(())
    }

    /// `X-HubSpot-RateLimit-*` for the app: the 10-second window on every answer, the daily
    /// pair for private apps only (HubSpot leaves it out for OAuth).
    fn headers(
        &mut self,
        limits: &RateLimits,
        principal: &Principal,
        now_ms: i64,
    ) -> Vec<(&'static str, String)> {
        self.roll_day(now_ms);
        let q = self
            .ten_secondly
            .entry(principal.app_key.clone())
            .or_default();
        prune(q, now_ms, limits.ten_secondly_window);
        let used = q.len() as u64;
        let max = u64::from(limits.ten_secondly_max);
        let mut h = vec![
            ("x-hubspot-ratelimit-max", max.to_string()),
            (
                "x-hubspot-ratelimit-remaining",
                max.saturating_sub(used).to_string(),
            ),
            (
                "x-hubspot-ratelimit-interval-milliseconds",
                limits.ten_secondly_window.as_millis().to_string(),
            ),
        ];
        if principal.private {
            h.push(("x-hubspot-ratelimit-daily", limits.daily_max.to_string()));
            h.push((
                "x-hubspot-ratelimit-daily-remaining",
                limits.daily_max.saturating_sub(self.day_count).to_string(),
            ));
        }
        h
    }
}

fn add_headers(resp: &mut Response, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}

fn rate_limited(policy: Policy, hub_id: u32) -> Response {
    let group = match policy {
        Policy::TenSecondly => format!("publicapi:app-api-calls-ten-secondly:{hub_id}"),
        Policy::Secondly => format!("publicapi:crm-search:{hub_id}"),
        Policy::Daily => format!("publicapi:daily:{hub_id}"),
    };
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "status": "error",
            "message": policy.message(),
            "errorType": "RATE_LIMIT",
            "correlationId": uuid_v4(),
            "policyName": policy.name(),
            "groupName": group,
            "category": "RATE_LIMITS",
        }),
    )
}

/// An injected failure.
#[derive(Debug, Clone, Copy)]
enum Injected {
    Error(u16),
    Hang(Duration),
}

#[derive(Debug, Default)]
struct Roll {
    latency: Duration,
    before: Option<Injected>,
    after: Option<Injected>,
    burst_429: bool,
}

impl EmuState {
    /// Draws this request's faults: always the same number of values, so the sequence only
    /// depends on the seed and the order of requests.
    fn roll(&mut self, family: Family) -> Roll {
        let f = self.faults;
        let rng = &mut self.fault_rng;
        let (u_err, u_when, u_status, u_timeout, u_burst, u_latency) = (
            rng.unit(),
            rng.unit(),
            rng.unit(),
            rng.unit(),
            rng.unit(),
            rng.unit(),
        );
        if family == Family::Other {
            return Roll::default();
        }
        let jitter = f.latency_jitter.mul_f64(u_latency);
        let mut roll = Roll {
            latency: f.latency + jitter,
            ..Roll::default()
        };
        let fault = if u_err < f.error_rate {
            let status = [500, 502, 503, 504][((u_status * 4.0) as usize).min(3)];
            Some(Injected::Error(status))
        } else if u_timeout < f.timeout_rate {
            Some(Injected::Hang(f.hang))
        } else {
            None
        };
        if let Some(fault) = fault {
            if u_when < f.after_effect_rate {
                roll.after = Some(fault);
            } else {
                roll.before = Some(fault);
            }
        } else if family == Family::Crm {
            if self.burst_left > 0 {
                self.burst_left -= 1;
                roll.burst_429 = true;
            } else if u_burst < f.burst_429_rate && f.burst_429_len > 0 {
                self.burst_left = f.burst_429_len - 1;
                roll.burst_429 = true;
            }
        }
        roll
    }
}

async fn injected(shared: &Shared, fault: Injected) -> Response {
    match fault {
        Injected::Error(status) => {
            shared.lock().counters.injected.errors += 1;
            error_page(status)
        }
        Injected::Hang(d) => {
            shared.lock().counters.injected.timeouts += 1;
            let mut stop = shared.shutdown.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            error_page(504)
        }
    }
}

/// An error as HubSpot (500, 503: JSON) or its gateway (414, 502, 504: HTML) sends it.
fn error_page(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        414 | 502 | 504 => {
            let reason = code.canonical_reason().unwrap_or("Error");
            let html = format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
            );
            (code, [(header::CONTENT_TYPE, "text/html")], html).into_response()
        }
        503 => ApiError::new(code, "SERVICE_UNAVAILABLE", "Service Unavailable").into_response(),
        _ => ApiError::new(code, "INTERNAL_ERROR", "internal error").into_response(),
    }
}

impl Shared {
    /// The caller of a CRM request, or HubSpot's 401.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let missing = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(missing());
        }
        let token = token.trim();
        if self.config.private_app_tokens.iter().any(|t| t == token) {
            return Ok(Principal {
                app_key: format!("private-app:{token}"),
                private: true,
                scopes: super::config::ALL_SCOPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            });
        }
        let now = self.clock.now_ms();
        let st = self.lock();
        match st.tokens.access(token) {
            Some(a) if a.expires_ms > now => Ok(Principal {
                app_key: format!("oauth-app:{}", self.config.oauth.client_id),
                private: false,
                scopes: a.scopes.clone(),
            }),
            Some(a) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                format!(
                    "The OAuth token used to make this call expired {} ago.",
                    ago((now - a.expires_ms).max(0))
                ),
            )),
            None => Err(missing()),
        }
    }
}

fn ago(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} second(s)"),
        60..3600 => format!("{} minute(s)", s / 60),
        3600..86400 => format!("{} hour(s)", s / 3600),
        _ => format!("{} day(s)", s / 86400),
    }
}

/// The middleware around every route.
pub(crate) async fn gate(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > super::MAX_URI_LENGTH {
        *shared.lock().counters.statuses.entry(414).or_default() += 1;
        return error_page(414);
    }
    let family = if path.starts_with("/crm/") {
        Family::Crm
    } else if path.starts_with("/oauth/v1/") {
        Family::OAuthApi
    } else {
        Family::Other
    };
    let search = method == Method::POST && path.trim_end_matches('/').ends_with("/search");
    let roll = {
        let mut st = shared.lock();
        *st.counters
            .requests
            .entry(endpoint_key(&method, &path))
            .or_default() += 1;
        st.roll(family)
    };
    if !roll.latency.is_zero() {
        tokio::time::sleep(roll.latency).await;
    }
    let response = 'answer: {
        if let Some(fault) = roll.before {
            break 'answer injected(&shared, fault).await;
        }
        if family != Family::Crm {
            let resp = next.run(req).await;
            break 'answer match roll.after {
                Some(fault) => injected(&shared, fault).await,
                None => resp,
            };
        }
        let principal = match shared.authenticate(req.headers()) {
            Ok(p) => p,
            Err(e) => break 'answer e.into_response(),
        };
        let now = shared.clock.now_ms();
        {
            let mut st = shared.lock();
            let st = &mut *st;
            let refused = if roll.burst_429 {
                st.counters.injected.bursts_429 += 1;
                Some(Policy::TenSecondly)
            } else {
                match st
                    .limiter
                    .admit(&st.limits, &principal.app_key, search, now)
                {
                    Ok(()) => None,
                    Err(policy) => {
                        *st.counters
                            .rate_limited
                            .entry(policy.name().to_string())
                            .or_default() += 1;
                        Some(policy)
                    }
                }
            };
            if let Some(policy) = refused {
                let mut resp = rate_limited(policy, shared.config.hub_id);
                let mut headers = st.limiter.headers(&st.limits, &principal, now);
                if roll.burst_429 {
                    headers[1].1 = "0".into();
                }
                add_headers(&mut resp, headers);
                break 'answer resp;
            }
        }
        req.extensions_mut().insert(principal.clone());
        let mut resp = next.run(req).await;
        if let Some(fault) = roll.after {
            break 'answer injected(&shared, fault).await;
        }
        let now = shared.clock.now_ms();
        let mut st = shared.lock();
        let st = &mut *st;
        let headers = st.limiter.headers(&st.limits, &principal, now);
        add_headers(&mut resp, headers);
        resp
    };
    *shared
        .lock()
        .counters
        .statuses
        .entry(response.status().as_u16())
        .or_default() += 1;
    if shared.config.validate_responses {
        check_schema(&shared, &method, &path, response).await
    } else {
        response
    }
}

/// Most violations kept.
const MAX_VIOLATIONS: usize = 100;

/// Validates an answer against the published schemas (the edge's HTML pages excepted) and
/// records any violation; the answer goes out unchanged.
async fn check_schema(
    shared: &Shared,
    method: &Method,
    path: &str,
    response: Response,
) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    let status = response.status().as_u16();
    let specs = Specs::hubspot();
    if html
        || specs
            .response_schema(method.as_str(), path, status)
            .is_err()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Err(e) = specs.validate_response(method.as_str(), path, status, &bytes) {
        let mut st = shared.lock();
        if st.schema_violations.len() < MAX_VIOLATIONS {
            st.schema_violations
                .push(format!("{method} {path} {status}: {e}"));
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_use_the_spec_templates() {
        assert_eq!(
            endpoint_key(&Method::GET, "/crm/v3/objects/contacts/123"),
            "GET /crm/v3/objects/contacts/{contactId}"
        );
        assert_eq!(
            endpoint_key(&Method::POST, "/crm/v3/objects/contacts/search"),
            "POST /crm/v3/objects/contacts/search"
        );
        assert_eq!(
            endpoint_key(&Method::POST, "/crm/v3/objects/contacts/batch/read"),
            "POST /crm/v3/objects/contacts/batch/read"
        );
        assert_eq!(endpoint_key(&Method::GET, "/nope"), "GET /nope");
    }

    #[test]
    fn rolling_window_refuses_without_consuming() {
        let limits = RateLimits {
            ten_secondly_max: 2,
            ..RateLimits::default()
        };
        let mut l = Limiter::default();
        assert!(l.admit(&limits, "a", false, 0).is_ok());
        assert!(l.admit(&limits, "a", false, 100).is_ok());
        assert_eq!(l.admit(&limits, "a", false, 200), Err(Policy::TenSecondly));
        assert!(
            l.admit(&limits, "b", false, 200).is_ok(),
            "budgets are per app"
        );
        assert_eq!(
            l.admit(&limits, "a", false, 9_999),
            Err(Policy::TenSecondly)
        );
        assert!(
            l.admit(&limits, "a", false, 10_000).is_ok(),
            "the first slid out"
        );
        // search is exempt from the 10-second limit and has its own
        assert!(l.admit(&limits, "a", true, 10_000).is_ok());
    }

    #[test]
    fn daily_limit_resets_at_utc_midnight() {
        let limits = RateLimits {
            daily_max: 1,
            ..RateLimits::default()
        };
        let mut l = Limiter::default();
        let day = 86_400_000;
        assert!(l.admit(&limits, "a", false, 5 * day + 1).is_ok());
        assert_eq!(
            l.admit(&limits, "a", true, 5 * day + 50_000),
            Err(Policy::Daily)
        );
        assert!(l.admit(&limits, "a", false, 6 * day).is_ok());
    }
}
