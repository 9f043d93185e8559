//! OAuth 2.0 as HubSpot runs it: the consent page, `POST /oauth/v1/token` (authorization code
//! and refresh grants), token information and refresh-token revocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, json_response};
use super::{Shared, TokenGrant};
use crate::rng::{token as random_token, uuid_v4};

/// Fixed ids the token-info endpoints report.
const APP_ID: u32 = 1_234_567;
const USER_ID: u32 = 7_654_321;
const USER: &str = "emulator-admin@ferry.test";

#[derive(Debug, Clone)]
struct Code {
    redirect_uri: String,
    scopes: Vec<String>,
    expires_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub scopes: Vec<String>,
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
struct Refresh {
    scopes: Vec<String>,
}

/// Issued codes and tokens.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
}

impl Tokens {
    pub fn access(&self, token: &str) -> Option<&Access> {
        self.access.get(token)
    }

    pub fn expire_all(&mut self, now_ms: i64) {
        for a in self.access.values_mut() {
            a.expires_ms = a.expires_ms.min(now_ms);
        }
    }

    fn issue_access(&mut self, scopes: Vec<String>, now_ms: i64, lifetime: Duration) -> String {
        let access = random_token("emu-at-");
        let ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
        self.access.insert(
            access.clone(),
            Access {
                scopes,
                expires_ms: now_ms.saturating_add(ms),
            },
        );
        access
    }

    pub fn issue(&mut self, scopes: Vec<String>, now_ms: i64, lifetime: Duration) -> TokenGrant {
        let refresh = uuid_v4();
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                scopes: scopes.clone(),
            },
        );
        TokenGrant {
            access_token: self.issue_access(scopes, now_ms, lifetime),
            refresh_token: refresh,
            expires_in: lifetime.as_secs(),
        }
    }
}

fn form(raw: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A validated authorization request.
struct AuthRequest {
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
}

fn check_request(shared: &Shared, p: &HashMap<String, String>) -> Result<AuthRequest, String> {
    let app = &shared.config.oauth;
    if p.get("client_id").map(String::as_str) != Some(app.client_id.as_str()) {
        return Err(
            "Authorization failed because this app's client_id is invalid or missing.".into(),
        );
    }
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let registered = if app.redirect_uris.is_empty() {
        redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")
    } else {
        app.redirect_uris.contains(&redirect_uri)
    };
    if !registered {
        return Err(format!(
            "Authorization failed because the redirect URL {redirect_uri:?} doesn't match the app's redirect URLs."
        ));
    }
    let requested: Vec<String> = p
        .get("scope")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return Err("Authorization failed because no scopes were requested.".into());
    }
    if let Some(bad) = requested.iter().find(|s| !app.allowed_scopes.contains(s)) {
        return Err(format!(
            "Authorization failed because the app requested a scope it is not allowed: {bad}"
        ));
    }
    let mut scopes = requested;
    if let Some(optional) = p.get("optional_scope") {
        for s in optional.split_whitespace() {
            if app.allowed_scopes.iter().any(|a| a == s) && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
    }
    Ok(AuthRequest {
        redirect_uri,
        scopes,
        state: p.get("state").cloned(),
    })
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><title>Authorization failed | HubSpot (emulated)</title></head>\
             <body><h1>Authorization failed</h1><p id=\"error\">{}</p></body></html>",
            escape(message)
        )),
    )
        .into_response()
}

/// `GET /oauth/authorize?client_id&redirect_uri&scope&optional_scope&state`: the consent page.
pub(crate) async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = form(q.as_deref().unwrap_or(""));
    let req = match check_request(&shared, &params) {
        Ok(r) => r,
        Err(m) => return error_page(&m),
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let scopes: String = req
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect();
    let cfg = &shared.config;
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Connect app | HubSpot (emulated)</title></head>\n\
         <body>\n<h1>Connect to your HubSpot account</h1>\n\
         <p>The app <strong>{client}</strong> is requesting access to account \
         <strong id=\"account\">{domain} ({hub})</strong>:</p>\n<ul id=\"scopes\">{scopes}</ul>\n\
         <form method=\"post\" action=\"/oauth/authorize\">\n{f1}{f2}{f3}{f4}\n\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"connect\">Connect app</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"cancel\">Cancel</button>\n\
         </form>\n</body></html>\n",
        client = escape(&cfg.oauth.client_id),
        domain = escape(&cfg.hub_domain),
        hub = cfg.hub_id,
        f1 = hidden("client_id", &cfg.oauth.client_id),
        f2 = hidden("redirect_uri", &req.redirect_uri),
        f3 = hidden("scope", &req.scopes.join(" ")),
        f4 = req
            .state
            .as_deref()
            .map(|s| hidden("state", s))
            .unwrap_or_default(),
    ))
    .into_response()
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if to.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{to}{sep}{query}"))],
    )
        .into_response()
}

/// `POST /oauth/authorize`: the consent form's answer; redirects with `code` and `state`.
pub(crate) async fn authorize_decision(
    State(shared): State<Arc<Shared>>,
    body: String,
) -> Response {
    let params = form(&body);
    let req = match check_request(&shared, &params) {
        Ok(r) => r,
        Err(m) => return error_page(&m),
    };
    let state = req.state.clone().unwrap_or_default();
    if params.get("decision").map(String::as_str) == Some("deny") {
        let mut p = vec![
            ("error", "access_denied"),
            ("error_description", "The user denied the request"),
        ];
        if req.state.is_some() {
            p.push(("state", &state));
        }
        return redirect(&req.redirect_uri, &p);
    }
    let code = uuid_v4();
    let lifetime = i64::try_from(shared.config.auth_code_lifetime.as_millis()).unwrap_or(i64::MAX);
    let now = shared.clock.now_ms();
    shared.lock().tokens.codes.insert(
        code.clone(),
        Code {
            redirect_uri: req.redirect_uri.clone(),
            scopes: req.scopes,
            expires_ms: now.saturating_add(lifetime),
        },
    );
    let mut p = vec![("code", code.as_str())];
    if req.state.is_some() {
        p.push(("state", &state));
    }
    redirect(&req.redirect_uri, &p)
}

/// The token endpoint's errors: `{"status":"BAD_AUTH_CODE","message":…,"correlationId":…}`.
fn token_error(status: &str, message: &str) -> ApiError {
    ApiError::validation(message).with("status", json!(status))
}

/// `POST /oauth/v1/token` (form-encoded; `client_secret` and `refresh_token` may also come in
/// the query, as the spec allows).
fn token_endpoint(shared: &Shared, query: Option<&str>, body: &str) -> ApiResult<Response> {
    let mut p = form(query.unwrap_or(""));
    p.extend(form(body));
    let app = &shared.config.oauth;
    let grant = p.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(grant, "authorization_code" | "refresh_token") {
        return Err(token_error(
            "BAD_GRANT_TYPE",
            "missing or unknown grant type",
        ));
    }
    if p.get("client_id") != Some(&app.client_id) {
        return Err(token_error("BAD_CLIENT_ID", "missing or invalid client id"));
    }
    if p.get("client_secret") != Some(&app.client_secret) {
        return Err(token_error(
            "BAD_CLIENT_SECRET",
            "missing or invalid client secret",
        ));
    }
    let now = shared.clock.now_ms();
    let lifetime = shared.config.access_token_lifetime;
    let mut st = shared.lock();
    let tokens = &mut st.tokens;
    let grant = if grant == "authorization_code" {
        let code = p.get("code").cloned().unwrap_or_default();
        let Some(c) = tokens
            .codes
            .get(&code)
            .filter(|c| c.expires_ms > now)
            .cloned()
        else {
            return Err(token_error("BAD_AUTH_CODE", "missing or unknown auth code"));
        };
        if p.get("redirect_uri") != Some(&c.redirect_uri) {
            return Err(token_error(
                "BAD_REDIRECT_URI",
                "redirect_uri does not match initial auth code URL",
            ));
        }
        tokens.codes.remove(&code);
        tokens.issue(c.scopes, now, lifetime)
    } else {
        let refresh = p.get("refresh_token").cloned().unwrap_or_default();
        let Some(r) = tokens.refresh.get(&refresh).cloned() else {
            return Err(token_error(
                "BAD_REFRESH_TOKEN",
                "missing or invalid refresh token",
            ));
        };
        // HubSpot returns the same refresh token with a new access token.
        TokenGrant {
            access_token: tokens.issue_access(r.scopes, now, lifetime),
            refresh_token: refresh,
            expires_in: lifetime.as_secs(),
        }
    };
    let scopes = tokens
        .refresh
        .get(&grant.refresh_token)
        .map(|r| r.scopes.clone())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "token_type": "bearer",
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "expires_in": grant.expires_in,
            "token_use": "access_token",
            "hub_id": shared.config.hub_id,
            "user_id": USER_ID,
            "scopes": scopes,
        }),
    ))
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Response {
    token_endpoint(&shared, q.as_deref(), &body).unwrap_or_else(IntoResponse::into_response)
}

fn token_not_found(kind: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("{kind} token not found or expired"),
    )
}

/// `GET /oauth/v1/access-tokens/{token}`.
pub(crate) async fn access_token_info(
    State(shared): State<Arc<Shared>>,
    Path(t): Path<String>,
) -> Response {
    let now = shared.clock.now_ms();
    let st = shared.lock();
    let Some(a) = st.tokens.access.get(&t).filter(|a| a.expires_ms > now) else {
        return token_not_found("access").into_response();
    };
    let cfg = &shared.config;
    json_response(
        StatusCode::OK,
        &json!({
            "token": t,
            "user": USER,
            "hub_domain": cfg.hub_domain,
            "scopes": a.scopes,
            "hub_id": cfg.hub_id,
            "app_id": APP_ID,
            "expires_in": (a.expires_ms - now) / 1000,
            "user_id": USER_ID,
            "token_type": "access",
            "is_private_distribution": false,
        }),
    )
}

/// `GET /oauth/v1/refresh-tokens/{token}`.
pub(crate) async fn refresh_token_info(
    State(shared): State<Arc<Shared>>,
    Path(t): Path<String>,
) -> Response {
    let st = shared.lock();
    let Some(r) = st.tokens.refresh.get(&t) else {
        return token_not_found("refresh").into_response();
    };
    let cfg = &shared.config;
    let body: Value = json!({
        "token": t,
        "user": USER,
        "hub_domain": cfg.hub_domain,
        "scopes": r.scopes,
        "hub_id": cfg.hub_id,
        "client_id": cfg.oauth.client_id,
        "user_id": USER_ID,
        "token_type": "refresh",
    });
    json_response(StatusCode::OK, &body)
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`: the refresh token stops working (access tokens
/// already issued run until they expire).
pub(crate) async fn revoke_refresh_token(
    State(shared): State<Arc<Shared>>,
    Path(t): Path<String>,
) -> Response {
    match shared.lock().tokens.refresh.remove(&t) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => token_not_found("refresh").into_response(),
    }
}
