//! `GET /api/v1/accounts?provider=`: the accounts connected through an OAuth provider (for
//! "select a previously used account"). Tokens are never shown.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryArgs;

/// A connected account.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// The account's ID in Ferry (a config's `account_id`).
    pub id: i64,
    /// The provider, as `oauth_provider` in `/api/v1/integration-types` names it.
    pub provider: String,
    /// The account's ID at the provider.
    pub external_id: String,
    /// A name for people.
    pub label: String,
    #[schema(value_type = String, format = DateTime)]
    /// When it was first connected.
    pub connected_at: jiff::Timestamp,
}

/// Which provider's accounts.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountsQuery {
    /// The OAuth provider, as `oauth_provider` in `/api/v1/integration-types` names it (an
    /// unknown one is a 400 naming the ones there are).
    pub provider: String,
}

/// The accounts connected through a provider.
#[utoipa::path(get, path = "/api/v1/accounts", operation_id = "list_accounts", params(AccountsQuery), responses(
    (status = 200, description = "The connected accounts.", body = Vec<AccountView>),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(q): QueryArgs<AccountsQuery>,
) -> ApiResult<Json<Vec<AccountView>>> {
    if state.registry.oauth_provider(&q.provider).is_none() {
        let mut err = ApiError::bad_request(
            "invalid_value",
            format!(
                "no integration type connects accounts through {:?}; the providers are: {}",
                q.provider,
                providers(&state.registry).join(", ")
            ),
        );
        err.field = Some("provider".into());
        return Err(err);
    }
    let all = state
        .store
        .crm_accounts(auth.institution_id(), &q.provider)
        .await?;
    Ok(Json(
        all.into_iter()
            .map(|a| AccountView {
                id: a.id,
                provider: a.provider,
                external_id: a.external_id,
                label: a.label,
                connected_at: a.created_at,
            })
            .collect(),
    ))
}

/// The OAuth providers of the registered kinds, sorted, each once.
pub fn providers(registry: &ferry_connectors::Registry) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = registry
        .descriptions()
        .filter_map(|d| d.oauth_provider)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Lists the registered providers as the `provider` parameter's values in the OpenAPI document.
pub fn publish_providers(doc: &mut serde_json::Value, registry: &ferry_connectors::Registry) {
    let Some(params) = doc
        .pointer_mut("/paths/~1api~1v1~1accounts/get/parameters")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for p in params {
        if p["name"] == "provider" {
            p["schema"]["enum"] = serde_json::json!(providers(registry));
        }
    }
}
