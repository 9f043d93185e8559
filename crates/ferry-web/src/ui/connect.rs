//! Connecting an account through a connector's OAuth provider (seed 002, step 2), in a pop-up:
//! `/oauth/{provider}/start` → the provider's consent page → `/oauth/{provider}/callback`, which
//! exchanges the code, stores the account with its tokens sealed, and tells the opener. The
//! providers come from the registered connectors.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use ferry_connectors::describe::OAuthProvider;
use serde::Deserialize;

use super::error_page;
use crate::AppState;
use crate::auth::Auth;

/// The registered provider `id`.
pub fn provider(state: &AppState, id: &str) -> Option<Arc<dyn OAuthProvider>> {
    state.registry.oauth_provider(id)
}

/// Where the provider sends the browser back: the public URL, else the address the request
/// came to.
fn redirect_uri(state: &AppState, headers: &HeaderMap, provider: &str) -> String {
    let base = match &state.config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:8080");
            format!("http://{host}")
        }
    };
    format!("{base}/oauth/{provider}/callback")
}

/// Starts the flow: a one-time state, then the provider's consent page.
pub async fn start(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(p) = provider(&state, &id) else {
        return error_page(StatusCode::NOT_FOUND, "No such OAuth provider.");
    };
    if !p.is_configured() {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Connecting a {} account through OAuth is not set up on this server: {}",
                p.name(),
                p.setup_hint()
            ),
        );
    }
    let mut raw = [0u8; 24];
    if getrandom::fill(&mut raw).is_err() {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for the OAuth state",
        );
    }
    let st = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let redirect = redirect_uri(&state, &headers, p.id());
    // A provider with PKCE gets a verifier per flow, kept (sealed) with the state.
    let url = if p.uses_pkce() {
        let Some(pkce) = ferry_connectors::describe::Pkce::generate() else {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no randomness for the PKCE verifier",
            );
        };
        if let Err(e) = state
            .store
            .create_oauth_state_with_verifier(auth.institution_id(), p.id(), &st, &pkce.verifier)
            .await
        {
            return super::ui_error(e.into());
        }
        p.authorize_url_pkce(&redirect, &st, &pkce.challenge)
    } else {
        if let Err(e) = state
            .store
            .create_oauth_state(auth.institution_id(), p.id(), &st)
            .await
        {
            return super::ui_error(e.into());
        }
        p.authorize_url(&redirect, &st)
    };
    match url {
        Some(url) => Redirect::to(&url).into_response(),
        None => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "This OAuth provider is not configured.",
        ),
    }
}

#[derive(Deserialize, Default)]
/// What the provider sends back: a code and the state, or an error.
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account_connected.html")]
struct DonePage {
    ok: bool,
    provider: String,
    account_id: Option<i64>,
    label: String,
    message: String,
}

fn failed(status: StatusCode, provider: &str, message: impl Into<String>) -> Response {
    (
        status,
        DonePage {
            ok: false,
            provider: provider.to_string(),
            account_id: None,
            label: String::new(),
            message: message.into(),
        },
    )
        .into_response()
}

/// The provider's redirect back: checks the state, exchanges the code, stores the account.
pub async fn callback(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CallbackParams>,
) -> Response {
    let Some(p) = provider(&state, &id) else {
        return error_page(StatusCode::NOT_FOUND, "No such OAuth provider.");
    };
    let name = p.name();
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or(e);
        return failed(
            StatusCode::BAD_REQUEST,
            name,
            format!(
                "{name} did not grant access ({why}). Nothing was changed; start again to connect the account."
            ),
        );
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return failed(
            StatusCode::BAD_REQUEST,
            name,
            format!(
                "The link back from {name} is incomplete (no code or state). Start again from the instance's Authentication step."
            ),
        );
    };
    let taken = if p.uses_pkce() {
        state
            .store
            .take_oauth_state_verifier(auth.institution_id(), p.id(), &st)
            .await
            .map(|v| v.map(Some))
    } else {
        state
            .store
            .take_oauth_state(auth.institution_id(), p.id(), &st)
            .await
            .map(|ok| ok.then_some(None))
    };
    let verifier = match taken {
        Ok(Some(v)) => v,
        Ok(None) => {
            return failed(
                StatusCode::BAD_REQUEST,
                name,
                "This sign-in link has expired or was already used (or was started by someone else). Start again from the instance's Authentication step.",
            );
        }
        Err(e) => return super::ui_error(e.into()),
    };
    if !p.is_configured() {
        return failed(
            StatusCode::SERVICE_UNAVAILABLE,
            name,
            format!("{name} OAuth is not configured on this server."),
        );
    }
    let redirect = redirect_uri(&state, &headers, p.id());
    let connected = match &verifier {
        Some(v) => p.connect_pkce(&redirect, &code, v).await,
        None => p.connect(&redirect, &code).await,
    };
    let account = match connected {
        Ok(a) => a,
        Err(why) => return failed(StatusCode::BAD_GATEWAY, name, why),
    };
    match state
        .store
        .upsert_crm_account(
            auth.institution_id(),
            p.id(),
            &account.external_id,
            &account.label,
            &account.tokens,
        )
        .await
    {
        Ok(stored) => DonePage {
            ok: true,
            provider: name.to_string(),
            account_id: Some(stored.id),
            label: stored.label,
            message: String::new(),
        }
        .into_response(),
        Err(e) => super::ui_error(e.into()),
    }
}
