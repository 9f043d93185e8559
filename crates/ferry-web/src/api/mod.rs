//! REST API v1. JSON in and out; errors as `{"error":{"code","message","field"?}}`.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod bulk_files;
pub mod bulk_templates;
pub mod contacts;
pub mod doc;
pub mod fields;
pub mod integrations;
pub mod messages;
pub mod optin;
pub mod recordings;
pub mod runs;
pub mod sftp_accounts;
pub mod synclog;
pub mod tokens;
pub mod types;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry API", version = "1", description = "Contacts, messages, custom fields, integrations and their runs of one institution. Authenticate with `Authorization: Bearer <token>` (create one with `ferry token create`, on Settings → Security, or with `POST /api/v1/tokens`), or with the session cookie of a signed-in user (changes then need the `X-CSRF-Token` header). Every error answers `{\"error\":{\"code\",\"message\",\"field\"?}}`; the codes are listed at `/api/v1/errors`."),
    paths(
        me, error_dictionary,
        contacts::list, contacts::create, contacts::get, contacts::patch, contacts::archive, contacts::unarchive, contacts::import,
        fields::list, fields::create,
        messages::list, messages::create,
        runs::list, runs::get, runs::report_csv,
        synclog::list, synclog::download,
        accounts::list,
        integrations::list, integrations::create, integrations::get, integrations::patch, integrations::delete,
        integrations::test_saved, integrations::test_new, integrations::run,
        types::list,
        alerts::get_settings, alerts::put_settings, alerts::list,
        tokens::list, tokens::create, tokens::revoke, tokens::sessions, tokens::end_session, tokens::sign_out_everywhere,
        audit::list,
        sftp_accounts::list, sftp_accounts::create, sftp_accounts::get, sftp_accounts::patch, sftp_accounts::delete,
        sftp_accounts::add_key, sftp_accounts::delete_key, sftp_accounts::generate_key,
        optin::list_paths, optin::create_path, optin::get_path, optin::patch_path, optin::delete_path,
        optin::list_outbox, optin::mark_sent,
        bulk_files::list, bulk_files::get,
        bulk_templates::detect, bulk_templates::list, bulk_templates::create, bulk_templates::get, bulk_templates::put, bulk_templates::delete,
        recordings::get, messages::patch,
    ),
    components(
        schemas(crate::error::ErrorBody),
        responses(doc::Unauthorized, doc::Forbidden, doc::NotFound, doc::PayloadTooLarge, doc::NotJson, doc::MalformedJson, doc::BadQuery),
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = [])),
)]
/// The OpenAPI document of API v1 (the integration kinds' config schemas are added when it is served).
pub struct ApiDoc;

/// The two ways to authenticate: an API token, or a signed-in user's session cookie.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `Authorization: Bearer <token>` (create one with `ferry token create`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The session cookie set by signing in at `/login`. Requests that change something also need the session's CSRF token in the `X-CSRF-Token` header.",
            ))),
        );
    }
}

/// The OpenAPI document of this API.
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    types::publish_config_schemas(&mut doc, &state.registry);
    accounts::publish_providers(&mut doc, &state.registry);
    Json(doc)
}

#[derive(Serialize, utoipa::ToSchema)]
/// The caller: its institution, role and email.
pub struct MeView {
    /// The institution the caller acts in.
    pub institution: InstitutionView,
    /// `admin` or `viewer`.
    pub role: String,
    /// The signed-in user's email (absent for API tokens).
    pub email: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// An institution.
pub struct InstitutionView {
    /// The institution's ID.
    pub id: i64,
    /// Its short name, e.g. `state-u`.
    pub slug: String,
    /// Its name as people read it.
    pub name: String,
    /// The IANA time zone its times are shown in.
    pub time_zone: String,
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "get_me", responses(
    (status = 200, description = "The caller.", body = MeView),
    (status = 401, response = d::Unauthorized)))]
pub async fn me(auth: Auth) -> Json<MeView> {
    let i = &auth.principal.institution;
    Json(MeView {
        institution: InstitutionView {
            id: i.id,
            slug: i.slug.clone(),
            name: i.name.clone(),
            time_zone: i.time_zone.clone(),
        },
        role: auth.principal.role.to_string(),
        email: auth.principal.user.as_ref().map(|u| u.email.clone()),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
/// One code of the error dictionary.
pub struct ErrorCodeView {
    /// The code, as in `error.code` and Sync Log rows.
    pub code: &'static str,
    /// What it means.
    pub meaning: &'static str,
    /// What to do about it.
    pub next_step: &'static str,
}

/// The error dictionary: every code with what it means and what to do next.
#[utoipa::path(get, path = "/api/v1/errors", operation_id = "list_error_codes", responses(
    (status = 200, description = "Every error code.", body = Vec<ErrorCodeView>),
    (status = 401, response = d::Unauthorized)))]
pub async fn error_dictionary(State(state): State<AppState>) -> Json<Vec<ErrorCodeView>> {
    Json(
        state
            .registry
            .dictionary()
            .into_iter()
            .map(|e| ErrorCodeView {
                code: e.code,
                meaning: e.meaning,
                next_step: e.next_step,
            })
            .collect(),
    )
}
