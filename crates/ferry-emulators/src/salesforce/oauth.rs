//! OAuth 2.0 as Salesforce runs it: the authorize page (web-server flow with PKCE), the token
//! endpoint (`authorization_code`, `refresh_token`, JWT bearer) and revocation.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::error::{json_response, oauth_error};
use super::{Shared, TokenGrant, jwt};
use crate::rng::token as random_token;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug, Clone)]
struct Code {
    redirect_uri: String,
    challenge: Option<String>,
    expires_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub last_used_ms: i64,
    pub expired: bool,
}

/// Issued codes, sessions and refresh tokens.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    codes: HashMap<String, Code>,
    pub sessions: HashMap<String, Session>,
    refresh: HashMap<String, ()>,
}

impl Tokens {
    pub fn expire_all(&mut self) {
        for s in self.sessions.values_mut() {
            s.expired = true;
        }
    }

    fn new_session(&mut self, now_ms: i64) -> String {
        // Salesforce session ids look like `00D…!AQ…`.
        let token = format!("00D5e0000000Fer!{}", random_token("AQ"));
        self.sessions.insert(
            token.clone(),
            Session {
                last_used_ms: now_ms,
                expired: false,
            },
        );
        token
    }

    pub fn issue(&mut self, now_ms: i64, with_refresh: bool) -> (String, Option<String>) {
        let access = self.new_session(now_ms);
        let refresh = with_refresh.then(|| {
            let r = format!("5Aep861{}", random_token(""));
            self.refresh.insert(r.clone(), ());
            r
        });
        (access, refresh)
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

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if to.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{to}{sep}{query}"))],
    )
        .into_response()
}

fn error_page(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><title>Error | Salesforce (emulated)</title></head>\
             <body><h1>Remote Access Error</h1><p id=\"error\">error={}&amp;error_description={}</p></body></html>",
            escape(error),
            escape(description)
        )),
    )
        .into_response()
}

/// A checked authorization request, or where to send its error.
struct AuthRequest {
    redirect_uri: String,
    state: Option<String>,
    challenge: Option<String>,
}

enum AuthFailure {
    /// Shown on a page: the redirect URI cannot be trusted.
    Page(&'static str, &'static str),
    /// Sent back to the redirect URI.
    Redirect(String, Option<String>, &'static str, &'static str),
}

fn check_request(shared: &Shared, p: &HashMap<String, String>) -> Result<AuthRequest, AuthFailure> {
    let cfg = &shared.config;
    if p.get("client_id") != Some(&cfg.client_id) {
        return Err(AuthFailure::Page(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let registered = if cfg.redirect_uris.is_empty() {
        redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")
    } else {
        cfg.redirect_uris.contains(&redirect_uri)
    };
    if !registered {
        return Err(AuthFailure::Page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    let state = p.get("state").cloned();
    let fail = |e: &'static str, d: &'static str| {
        AuthFailure::Redirect(redirect_uri.clone(), state.clone(), e, d)
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response type not supported",
        ));
    }
    let challenge = p.get("code_challenge").cloned();
    if let Some(c) = &challenge {
        let method_ok = p.get("code_challenge_method").is_none_or(|m| m == "S256");
        let decoded = URL_SAFE_NO_PAD.decode(c.as_bytes());
        if !method_ok || decoded.map(|d| d.len()).ok() != Some(32) {
            return Err(fail("invalid_request", "invalid code_challenge"));
        }
    } else if p.contains_key("code_challenge_method") {
        return Err(fail("invalid_request", "missing code_challenge"));
    }
    Ok(AuthRequest {
        redirect_uri,
        state,
        challenge,
    })
}

fn failure(f: AuthFailure) -> Response {
    match f {
        AuthFailure::Page(e, d) => error_page(e, d),
        AuthFailure::Redirect(uri, state, e, d) => {
            let mut p = vec![("error", e), ("error_description", d)];
            if let Some(s) = &state {
                p.push(("state", s));
            }
            redirect(&uri, &p)
        }
    }
}

/// `GET /services/oauth2/authorize?response_type=code&client_id&redirect_uri&state&code_challenge`:
/// the login and consent page.
pub(crate) async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = form(q.as_deref().unwrap_or(""));
    let req = match check_request(&shared, &params) {
        Ok(r) => r,
        Err(f) => return failure(f),
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let mut fields = vec![
        hidden("response_type", "code"),
        hidden("client_id", &shared.config.client_id),
        hidden("redirect_uri", &req.redirect_uri),
    ];
    if let Some(s) = &req.state {
        fields.push(hidden("state", s));
    }
    if let Some(c) = &req.challenge {
        fields.push(hidden("code_challenge", c));
        fields.push(hidden("code_challenge_method", "S256"));
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Allow Access? | Salesforce (emulated)</title></head>\n\
         <body>\n<main><h1>Allow Access?</h1>\n\
         <p>The app <strong>{client}</strong> is asking to access your data as \
         <strong id=\"user\">{user}</strong>: access and manage your data (api), perform requests at any time (refresh_token).</p>\n\
         <form method=\"post\" action=\"/services/oauth2/authorize\">\n{fields}\n\
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\n\
         </form></main>\n</body></html>\n",
        client = escape(&shared.config.client_id),
        user = escape(&shared.config.username),
        fields = fields.join("\n"),
    ))
    .into_response()
}

/// `POST /services/oauth2/authorize`: the consent form's answer; redirects with `code` and
/// `state` (or `error=access_denied`).
pub(crate) async fn authorize_decision(
    State(shared): State<Arc<Shared>>,
    body: String,
) -> Response {
    let params = form(&body);
    let req = match check_request(&shared, &params) {
        Ok(r) => r,
        Err(f) => return failure(f),
    };
    let state = req.state.clone().unwrap_or_default();
    let mut p: Vec<(&str, &str)> = Vec::new();
    let code;
    if params.get("decision").map(String::as_str) == Some("allow") {
        code = format!("aPrx{}", random_token(""));
        let lifetime =
            i64::try_from(shared.config.auth_code_lifetime.as_millis()).unwrap_or(i64::MAX);
        let now = shared.clock.now_ms();
        shared.lock().tokens.codes.insert(
            code.clone(),
            Code {
                redirect_uri: req.redirect_uri.clone(),
                challenge: req.challenge.clone(),
                expires_ms: now.saturating_add(lifetime),
            },
        );
        p.push(("code", &code));
    } else {
        p.push(("error", "access_denied"));
        p.push(("error_description", "end-user denied authorization"));
    }
    if req.state.is_some() {
        p.push(("state", &state));
    }
    redirect(&req.redirect_uri, &p)
}

/// The base of `instance_url`: configured, or the scheme and `Host` of the request.
pub(crate) fn instance_url(shared: &Shared, headers: &HeaderMap) -> String {
    if let Some(u) = &shared.config.instance_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if shared.config.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// The token answer's fields.
pub(crate) fn grant(
    shared: &Shared,
    base: &str,
    access: String,
    refresh: Option<String>,
    now_ms: i64,
) -> TokenGrant {
    let id = format!("{base}/id/{}/{}", shared.org_id, shared.user_id);
    let issued_at = now_ms.to_string();
    let key = hmac::Key::new(hmac::HMAC_SHA256, shared.config.client_secret.as_bytes());
    let signature = STANDARD.encode(hmac::sign(&key, format!("{id}{issued_at}").as_bytes()));
    TokenGrant {
        access_token: access,
        refresh_token: refresh,
        instance_url: base.to_string(),
        id,
        token_type: "Bearer".into(),
        issued_at,
        signature,
        scope: "api refresh_token".into(),
    }
}

fn client_ok(
    shared: &Shared,
    p: &HashMap<String, String>,
    pkce: bool,
) -> Result<(), (&'static str, &'static str)> {
    let cfg = &shared.config;
    if p.get("client_id") != Some(&cfg.client_id) {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    match p.get("client_secret") {
        Some(s) if *s != cfg.client_secret => Err(("invalid_client", "invalid client credentials")),
        None if cfg.require_secret || !pkce => {
            Err(("invalid_client", "invalid client credentials"))
        }
        _ => Ok(()),
    }
}

fn token_endpoint(shared: &Shared, headers: &HeaderMap, body: &str) -> Response {
    let p = form(body);
    let now = shared.clock.now_ms();
    let base = instance_url(shared, headers);
    let grant_type = p.get("grant_type").map(String::as_str).unwrap_or("");
    let answer = match grant_type {
        "authorization_code" => {
            let code = p.get("code").cloned().unwrap_or_default();
            let stored = shared.lock().tokens.codes.get(&code).cloned();
            if let Err((e, d)) = client_ok(
                shared,
                &p,
                stored.as_ref().is_some_and(|c| c.challenge.is_some()),
            ) {
                return oauth_error(e, d);
            }
            let Some(c) = shared.lock().tokens.codes.remove(&code) else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if c.expires_ms <= now {
                return oauth_error("invalid_grant", "expired authorization code");
            }
            if p.get("redirect_uri") != Some(&c.redirect_uri) {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = &c.challenge {
                let Some(verifier) = p.get("code_verifier") else {
                    return oauth_error("invalid_grant", "invalid code verifier");
                };
                let hashed =
                    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
                if &hashed != challenge {
                    return oauth_error("invalid_grant", "invalid code verifier");
                }
            } else if p.contains_key("code_verifier") {
                return oauth_error("invalid_grant", "invalid code verifier");
            }
            let (access, refresh) = shared.lock().tokens.issue(now, true);
            grant(shared, &base, access, refresh, now)
        }
        "refresh_token" => {
            if let Err((e, d)) = client_ok(shared, &p, false) {
                return oauth_error(e, d);
            }
            let refresh = p.get("refresh_token").cloned().unwrap_or_default();
            let mut st = shared.lock();
            if !st.tokens.refresh.contains_key(&refresh) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
            let (access, _) = st.tokens.issue(now, false);
            drop(st);
            grant(shared, &base, access, None, now)
        }
        JWT_BEARER => match jwt_grant(shared, &p, now) {
            Ok(()) => {
                let (access, _) = shared.lock().tokens.issue(now, false);
                grant(shared, &base, access, None, now)
            }
            Err((e, d)) => return oauth_error(e, d),
        },
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    };
    let mut body = serde_json::to_value(&answer).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut body {
        m.retain(|_, v| !v.is_null());
    }
    json_response(StatusCode::OK, &body)
}

fn jwt_grant(
    shared: &Shared,
    p: &HashMap<String, String>,
    now_ms: i64,
) -> Result<(), (&'static str, &'static str)> {
    let cfg = &shared.config;
    let assertion = p.get("assertion").map(String::as_str).unwrap_or("");
    let key = cfg
        .jwt_certificate
        .as_deref()
        .and_then(|pem| jwt::public_key_der(pem).ok())
        .ok_or(("invalid_grant", "invalid assertion"))?;
    // The issuer is checked before the signature, as Salesforce reports an unknown consumer.
    let claims =
        jwt::verify(assertion, &key).map_err(|_| ("invalid_grant", "invalid assertion"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.client_id.as_str()) {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audience_ok(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(audience_ok),
        _ => false,
    };
    if !aud_ok {
        return Err(("invalid_grant", "audience is invalid"));
    }
    // `exp` in seconds, as a number or a string of digits: Salesforce's JWT bearer flow help
    // page (remoteaccess_oauth_jwt_flow, the notes §1.1) gives the claims set as
    // `{"iss": …, "sub": …, "aud": "https://login.salesforce.com", "exp": "1333685628"}`, and
    // simple-salesforce sends `'exp': f'{expiration.timestamp():.0f}'` (login.py ~L200).
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
    .ok_or(("invalid_grant", "invalid assertion"))?;
    if exp * 1000 <= now_ms {
        return Err(("invalid_grant", "expired authorization code"));
    }
    if claims.get("sub").and_then(Value::as_str) != Some(cfg.username.as_str()) {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    Ok(())
}

/// The JWT audiences Salesforce accepts: the login and test hosts (a community URL is not
/// emulated); the emulator also accepts any `http(s)` URL of itself, which tests point at.
fn audience_ok(aud: &str) -> bool {
    let aud = aud.trim_end_matches('/');
    matches!(
        aud,
        "https://login.salesforce.com" | "https://test.salesforce.com"
    ) || aud.starts_with("http://127.0.0.1")
        || aud.starts_with("http://localhost")
        || aud.starts_with("https://127.0.0.1")
        || aud.starts_with("https://localhost")
}

/// `POST /services/oauth2/token` (form-encoded).
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    token_endpoint(&shared, &headers, &body)
}

/// `POST /services/oauth2/revoke` (`token=`): revokes a refresh token (and, as Salesforce does,
/// the sessions) or one access token.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: String,
) -> Response {
    let mut p = form(q.as_deref().unwrap_or(""));
    p.extend(form(&body));
    let token = p.get("token").cloned().unwrap_or_default();
    let mut st = shared.lock();
    if st.tokens.refresh.remove(&token).is_some() {
        st.tokens.expire_all();
        return StatusCode::OK.into_response();
    }
    if st.tokens.sessions.remove(&token).is_some() {
        return StatusCode::OK.into_response();
    }
    oauth_error("unsupported_token_type", "this token type is not supported")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences() {
        assert!(audience_ok("https://login.salesforce.com"));
        assert!(audience_ok("https://test.salesforce.com/"));
        assert!(!audience_ok("https://evil.example.com"));
    }

    #[test]
    fn pkce_challenge_of_the_rfc_example() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let hashed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        assert_eq!(hashed, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
