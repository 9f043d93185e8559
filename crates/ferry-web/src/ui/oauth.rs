//! Connecting a HubSpot account through OAuth (seed 002, step 2), in a pop-up:
//! `/oauth/hubspot/start` → HubSpot's consent page → `/oauth/hubspot/callback`, which exchanges
//! the code, stores the tokens sealed with the account, and tells the opener.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use ferry_connectors::hubspot::oauth;
use serde::Deserialize;

use super::error_page;
use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::ApiResult;

pub const PROVIDER: &str = "hubspot";

/// Where HubSpot sends the browser back: the public URL, else the address the request came to.
fn redirect_uri(state: &AppState, headers: &HeaderMap) -> String {
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
    format!("{base}/oauth/hubspot/callback")
}

/// Starts the flow: a one-time state, then HubSpot's consent page.
pub async fn start(State(state): State<AppState>, auth: Auth, headers: HeaderMap) -> Response {
    let Some(app) = state.config.hubspot.app.clone() else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Connecting HubSpot through OAuth needs FERRY_HUBSPOT_CLIENT_ID and FERRY_HUBSPOT_CLIENT_SECRET on the server. Until then, use a HubSpot private-app access token.",
        );
    };
    let mut raw = [0u8; 24];
    if getrandom::fill(&mut raw).is_err() {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for the OAuth state",
        );
    }
    let st = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    if let Err(e) = state
        .store
        .create_oauth_state(auth.institution_id(), PROVIDER, &st)
        .await
    {
        return super::ui_error(e.into());
    }
    Redirect::to(&oauth::authorize_url(
        &state.config.hubspot,
        &app,
        &redirect_uri(&state, &headers),
        &st,
    ))
    .into_response()
}

#[derive(Deserialize, Default)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "oauth_done.html")]
struct DonePage {
    ok: bool,
    account_id: Option<i64>,
    label: String,
    message: String,
}

fn failed(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        DonePage {
            ok: false,
            account_id: None,
            label: String::new(),
            message: message.into(),
        },
    )
        .into_response()
}

/// HubSpot's redirect back: checks the state, exchanges the code, stores the account.
pub async fn callback(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    if let Some(e) = p.error {
        let why = p.error_description.unwrap_or(e);
        return failed(
            StatusCode::BAD_REQUEST,
            format!(
                "HubSpot did not grant access ({why}). Nothing was changed; start again to connect the account."
            ),
        );
    }
    let (Some(code), Some(st)) = (p.code, p.state) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "The link back from HubSpot is incomplete (no code or state). Start again from the instance's Authentication step.",
        );
    };
    match state
        .store
        .take_oauth_state(auth.institution_id(), PROVIDER, &st)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return failed(
                StatusCode::BAD_REQUEST,
                "This sign-in link has expired or was already used (or was started by someone else). Start again from the instance's Authentication step.",
            );
        }
        Err(e) => return super::ui_error(e.into()),
    }
    let Some(app) = state.config.hubspot.app.clone() else {
        return failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "HubSpot OAuth is not configured on this server.",
        );
    };
    let settings = &state.config.hubspot;
    let tokens =
        match oauth::exchange_code(settings, &app, &redirect_uri(&state, &headers), &code).await {
            Ok(t) => t,
            Err(e) => {
                return failed(
                    StatusCode::BAD_GATEWAY,
                    format!("HubSpot refused the sign-in: {e}"),
                );
            }
        };
    let hub = match oauth::hub_of(
        settings,
        secrecy::ExposeSecret::expose_secret(&tokens.access_token),
    )
    .await
    {
        Ok(h) => h,
        Err(e) => {
            return failed(
                StatusCode::BAD_GATEWAY,
                format!("HubSpot did not say which account this is: {e}"),
            );
        }
    };
    let label = if hub.hub_domain.is_empty() {
        format!("HubSpot {}", hub.hub_id)
    } else {
        format!("{} ({})", hub.hub_domain, hub.hub_id)
    };
    match state
        .store
        .upsert_crm_account(
            auth.institution_id(),
            PROVIDER,
            &hub.hub_id,
            &label,
            &tokens.to_json(),
        )
        .await
    {
        Ok(account) => DonePage {
            ok: true,
            account_id: Some(account.id),
            label: account.label,
            message: String::new(),
        }
        .into_response(),
        Err(e) => super::ui_error(e.into()),
    }
}

/// A connected account (tokens are never shown).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: i64,
    /// HubSpot's hub ID.
    pub hub_id: String,
    pub label: String,
    #[schema(value_type = String, format = DateTime)]
    pub connected_at: jiff::Timestamp,
}

/// The HubSpot accounts connected so far (for "select a previously used account").
#[utoipa::path(get, path = "/api/v1/hubspot/accounts", operation_id = "list_hubspot_accounts", responses(
    (status = 200, description = "The connected HubSpot accounts.", body = Vec<AccountView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn accounts(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<AccountView>>> {
    let all = state
        .store
        .crm_accounts(auth.institution_id(), PROVIDER)
        .await?;
    Ok(Json(
        all.into_iter()
            .map(|a| AccountView {
                id: a.id,
                hub_id: a.external_id,
                label: a.label,
                connected_at: a.created_at,
            })
            .collect(),
    ))
}
