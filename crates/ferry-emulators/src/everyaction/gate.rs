//! What happens to every request around its handler: counting, injected faults, Basic
//! authentication with `KEY|1`, and the per-key rate limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::{VanError, gateway_page, rate_limited};
use super::{Shared, State as EmuState};

/// Endpoint templates, for counters.
const TEMPLATES: [&str; 13] = [
    "/v4/apiKeyProfiles",
    "/v4/echoes",
    "/v4/people",
    "/v4/people/find",
    "/v4/people/findOrCreate",
    "/v4/people/create",
    "/v4/people/{vanId}",
    "/v4/changedEntityExportJobs",
    "/v4/changedEntityExportJobs/resources",
    "/v4/changedEntityExportJobs/fields/{resourceType}",
    "/v4/changedEntityExportJobs/changeTypes/{resourceType}",
    "/v4/changedEntityExportJobs/{exportJobId}",
    "/blob/changed-entities/{exportJobId}/{file}",
];

/// `"METHOD /template"`.
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
                literal += usize::from(t.eq_ignore_ascii_case(s));
                t.eq_ignore_ascii_case(s)
            }
        });
        if ok && best.is_none_or(|(score, _)| literal > score) {
            best = Some((literal, t));
        }
    }
    format!("{method} {}", best.map_or(path, |(_, t)| t))
}

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
    /// Draws this request's faults (always five values).
    fn roll(&mut self) -> Roll {
        let f = self.faults;
        let rng = &mut self.fault_rng;
        let (u_err, u_when, u_status, u_timeout, u_burst) =
            (rng.unit(), rng.unit(), rng.unit(), rng.unit(), rng.unit());
        let mut roll = Roll {
            latency: Duration::from_millis(f.latency_ms),
            ..Roll::default()
        };
        let fault = if u_err < f.error_rate {
            Some(Injected::Error(
                [500, 502, 503, 504][((u_status * 4.0) as usize).min(3)],
            ))
        } else if u_timeout < f.timeout_rate {
            Some(Injected::Hang(Duration::from_millis(f.hang_ms)))
        } else {
            None
        };
        if let Some(fault) = fault {
            if u_when < f.after_effect_rate {
                roll.after = Some(fault);
            } else {
                roll.before = Some(fault);
            }
        } else if self.burst_left > 0 {
            self.burst_left -= 1;
            roll.burst_429 = true;
        } else if u_burst < f.burst_429_rate && f.burst_429_len > 0 {
            self.burst_left = f.burst_429_len - 1;
            roll.burst_429 = true;
        }
        roll
    }

    /// Admits a request of the key, or says how long until the window admits one.
    fn admit(&mut self, now_ms: i64) -> Result<(), u64> {
        while self.window.front().is_some_and(|t| *t <= now_ms - 1000) {
            self.window.pop_front();
        }
        if self.window.len() as u64 >= u64::from(self.rate_limit) {
            let oldest = self.window.front().copied().unwrap_or(now_ms);
            return Err(u64::try_from((oldest + 1000 - now_ms).max(1)).unwrap_or(1));
        }
        self.window.push_back(now_ms);
        Ok(())
    }
}

async fn injected(shared: &Shared, fault: Injected) -> Response {
    match fault {
        Injected::Error(status) => {
            shared.lock().counters.injected_errors += 1;
            if status == 500 {
                VanError::internal().into_response()
            } else {
                gateway_page(status)
            }
        }
        Injected::Hang(d) => {
            shared.lock().counters.injected_timeouts += 1;
            let mut stop = shared.shutdown.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            gateway_page(504)
        }
    }
}

impl Shared {
    /// Basic with any user name (or the app name when required) and `KEY|1`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), VanError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(VanError::unauthorized)?;
        let (scheme, b64) = value
            .trim()
            .split_once(' ')
            .ok_or_else(VanError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(VanError::unauthorized());
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(VanError::unauthorized)?;
        let (user, password) = decoded.split_once(':').ok_or_else(VanError::unauthorized)?;
        if self.config.require_app_name && user != self.config.app_name {
            return Err(VanError::unauthorized());
        }
        if password != format!("{}|1", self.config.api_key) {
            return Err(VanError::unauthorized());
        }
        Ok(())
    }
}

/// The middleware around every route.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let api = path.starts_with("/v4/");
    let roll = {
        let mut st = shared.lock();
        *st.counters
            .requests
            .entry(endpoint_key(&method, &path))
            .or_default() += 1;
        if api { st.roll() } else { Roll::default() }
    };
    if !roll.latency.is_zero() {
        tokio::time::sleep(roll.latency).await;
    }
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let response = 'answer: {
        if !api {
            break 'answer next.run(req).await;
        }
        if uri_len > 2048 {
            // IIS refuses query strings over about 2048 characters with its HTML page.
            break 'answer super::error::iis_not_found();
        }
        if let Some(fault) = roll.before {
            break 'answer injected(&shared, fault).await;
        }
        if let Err(e) = shared.authenticate(req.headers()) {
            break 'answer e.into_response();
        }
        if roll.burst_429 {
            let wait = {
                let mut st = shared.lock();
                st.counters.injected_429 += 1;
                st.faults.burst_429_wait_ms
            };
            break 'answer rate_limited(wait);
        }
        let now = shared.clock.now_ms();
        let admitted = shared.lock().admit(now);
        if let Err(wait) = admitted {
            shared.lock().counters.rate_limited += 1;
            break 'answer rate_limited(wait);
        }
        let resp = next.run(req).await;
        match roll.after {
            Some(fault) => injected(&shared, fault).await,
            None => resp,
        }
    };
    *shared
        .lock()
        .counters
        .statuses
        .entry(response.status().as_u16())
        .or_default() += 1;
    response
}

/// The request's own `scheme://host[:port]` (from `Host`, and `X-Forwarded-Proto` when a proxy
/// says so), for absolute `Location`s and links.
pub(crate) fn own_base(headers: &HeaderMap) -> (String, String) {
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http")
        .to_string();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    (scheme, host)
}

/// `scheme://host:port`, with the port written even when it is the default (VAN's
/// `nextPageLink`s say `:443`).
pub(crate) fn base_with_port(headers: &HeaderMap) -> String {
    let (scheme, host) = own_base(headers);
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(']'));
    if has_port {
        format!("{scheme}://{host}")
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            endpoint_key(&Method::POST, "/v4/people/123"),
            "POST /v4/people/{vanId}"
        );
        assert_eq!(
            endpoint_key(&Method::POST, "/v4/people/find"),
            "POST /v4/people/find"
        );
        assert_eq!(
            endpoint_key(&Method::GET, "/v4/changedEntityExportJobs/fields/Contacts"),
            "GET /v4/changedEntityExportJobs/fields/{resourceType}"
        );
    }
}
