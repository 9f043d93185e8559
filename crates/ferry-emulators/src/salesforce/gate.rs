//! What happens to every request before and after its handler: counting, injected faults,
//! sessions, the daily API limit and the `Sforce-Limit-Info` header.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, json_response};
use super::store::valid_id;
use super::{Shared, State as EmuState};

/// `"METHOD /services/data/vXX.X/…"` with ids, values and locators replaced by placeholders.
pub(crate) fn endpoint_key(method: &Method, path: &str) -> String {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut out: Vec<String> = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        let prev = if i > 0 { segs[i - 1] } else { "" };
        let t = if i == 3 && segs.get(2) == Some(&"data") {
            "vXX.X".to_string()
        } else if prev == "query" || prev == "queryAll" {
            "{locator}".into()
        } else if i >= 2
            && segs.get(i - 2) == Some(&"sobjects")
            && !matches!(*s, "describe" | "updated" | "deleted")
        {
            if valid_id(s) {
                "{id}".into()
            } else {
                "{field}".into()
            }
        } else if i >= 3 && segs.get(i - 3) == Some(&"sobjects") {
            "{value}".into()
        } else if matches!(prev, "ingest" | "query") && valid_id(s) {
            "{id}".into()
        } else {
            (*s).to_string()
        };
        out.push(t);
    }
    format!("{method} {}", out.join("/"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `/services/data/vXX.X/…`: authenticated, counted against the limit, all faults.
    Api,
    /// The token endpoint: 5xx and latency.
    Token,
    /// The versions list, the authorize page, unknown paths: counted only.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    Before(u16),
    After(u16),
}

#[derive(Debug, Default)]
struct Roll {
    latency: Duration,
    fault: Option<Injected>,
    expire_session: bool,
}

impl EmuState {
    /// Draws this request's faults: always the same number of values per request.
    fn roll(&mut self, family: Family, endpoint: &str) -> Roll {
        let rng = &mut self.fault_rng;
        let (u_err, u_when, u_status, u_expire, u_latency) =
            (rng.unit(), rng.unit(), rng.unit(), rng.unit(), rng.unit());
        let f = &mut self.faults;
        if family == Family::Other || f.only.as_deref().is_some_and(|o| o != endpoint) {
            return Roll::default();
        }
        let status = if u_status < 0.5 { 500 } else { 503 };
        let mut fault = (u_err < f.error_rate).then_some(if u_when < f.after_effect_rate {
            Injected::After(status)
        } else {
            Injected::Before(status)
        });
        if fault.is_some() {
            match &mut f.max_errors {
                Some(0) => fault = None,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        Roll {
            latency: f.latency + f.latency_jitter.mul_f64(u_latency),
            fault,
            expire_session: family == Family::Api && u_expire < f.session_expiry_rate,
        }
    }
}

fn server_error(status: u16) -> Response {
    if status == 503 {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable, please try again later",
        )
        .into_response()
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1738561234-56789 (-1234567890)",
        )
        .into_response()
    }
}

impl Shared {
    /// The session of an API request, or 401 `INVALID_SESSION_ID`. Using a session extends it.
    fn authenticate(&self, headers: &HeaderMap, expire_now: bool) -> Result<(), ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, t) = v.trim().split_once(' ')?;
                (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
                    .then(|| t.trim().to_string())
            })
            .ok_or_else(ApiError::invalid_session)?;
        let now = self.clock.now_ms();
        let lifetime = i64::try_from(self.config.session_lifetime.as_millis()).unwrap_or(i64::MAX);
        let mut st = self.lock();
        let Some(s) = st.tokens.sessions.get_mut(&token) else {
            return Err(ApiError::invalid_session());
        };
        if expire_now && !s.expired {
            s.expired = true;
            st.counters.expired_sessions += 1;
            return Err(ApiError::invalid_session());
        }
        let s = st
            .tokens
            .sessions
            .get_mut(&token)
            .ok_or_else(ApiError::invalid_session)?;
        if s.expired || now - s.last_used_ms >= lifetime {
            s.expired = true;
            return Err(ApiError::invalid_session());
        }
        s.last_used_ms = now;
        Ok(())
    }
}

/// `api-usage=N/M`.
fn usage_header(st: &mut EmuState, now_ms: i64) -> String {
    st.roll_day(now_ms);
    format!("api-usage={}/{}", st.limits.used, st.limits.daily_max)
}

/// The middleware around every route.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let family = if segs.len() >= 4 && segs[1] == "services" && segs[2] == "data" {
        Family::Api
    } else if path == "/services/oauth2/token" {
        Family::Token
    } else {
        Family::Other
    };
    let roll = {
        let key = endpoint_key(&method, &path);
        let mut st = shared.lock();
        let r = st.roll(family, &key);
        *st.counters.requests.entry(key).or_default() += 1;
        r
    };
    if !roll.latency.is_zero() {
        tokio::time::sleep(roll.latency).await;
    }
    let mut response = 'answer: {
        if let Some(Injected::Before(status)) = roll.fault {
            shared.lock().counters.injected_errors += 1;
            break 'answer server_error(status);
        }
        if family != Family::Api {
            break 'answer next.run(req).await;
        }
        if let Err(e) = shared.authenticate(req.headers(), roll.expire_session) {
            break 'answer e.into_response();
        }
        {
            let now = shared.clock.now_ms();
            let mut st = shared.lock();
            st.roll_day(now);
            if st.limits.used >= st.limits.daily_max {
                st.counters.limit_exceeded += 1;
                break 'answer ApiError::new(
                    StatusCode::FORBIDDEN,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                )
                .into_response();
            }
            st.limits.used += 1;
            st.counters.api_requests += 1;
        }
        let resp = next.run(req).await;
        if let Some(Injected::After(status)) = roll.fault {
            shared.lock().counters.injected_errors += 1;
            break 'answer server_error(status);
        }
        resp
    };
    let now = shared.clock.now_ms();
    let mut st = shared.lock();
    if family == Family::Api {
        let usage = usage_header(&mut st, now);
        if let Ok(v) = HeaderValue::from_str(&usage) {
            response.headers_mut().insert("sforce-limit-info", v);
        }
    }
    *st.counters
        .statuses
        .entry(response.status().as_u16())
        .or_default() += 1;
    response
}

/// The answer to a path the emulator does not serve.
pub(crate) async fn unknown_path() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_hide_ids_and_versions() {
        let k = |m: Method, p: &str| endpoint_key(&m, p);
        assert_eq!(
            k(
                Method::GET,
                "/services/data/v62.0/sobjects/Contact/0035e0000000G8bAAE"
            ),
            "GET /services/data/vXX.X/sobjects/Contact/{id}"
        );
        assert_eq!(
            k(
                Method::PATCH,
                "/services/data/v62.0/sobjects/Contact/Ferry_Id__c/42"
            ),
            "PATCH /services/data/vXX.X/sobjects/Contact/{field}/{value}"
        );
        assert_eq!(
            k(
                Method::GET,
                "/services/data/v62.0/query/01g5e0000000001AAA-2000"
            ),
            "GET /services/data/vXX.X/query/{locator}"
        );
        assert_eq!(
            k(
                Method::GET,
                "/services/data/v62.0/sobjects/Contact/describe"
            ),
            "GET /services/data/vXX.X/sobjects/Contact/describe"
        );
        assert_eq!(
            k(Method::POST, "/services/data/v62.0/composite/sobjects"),
            "POST /services/data/vXX.X/composite/sobjects"
        );
    }
}
