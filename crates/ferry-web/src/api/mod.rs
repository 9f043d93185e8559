//! REST API v1. JSON in and out; errors as `{"error":{"code","message","field"?}}`.

pub mod contacts;
pub mod fields;
pub mod integrations;
pub mod messages;
pub mod runs;
pub mod synclog;
pub mod types;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::AppState;
use crate::auth::Auth;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry API", version = "1", description = "Contacts, messages, custom fields, integrations and their runs of one institution. Authenticate with `Authorization: Bearer <token>` (create one with `ferry token create`). Every error answers `{\"error\":{\"code\",\"message\",\"field\"?}}`; the codes are listed at `/api/v1/errors`."),
    paths(
        me, error_dictionary,
        contacts::list, contacts::create, contacts::get, contacts::patch, contacts::archive, contacts::unarchive, contacts::import,
        fields::list, fields::create,
        messages::list, messages::create,
        runs::list, runs::get,
        synclog::list, synclog::download,
        crate::ui::oauth::accounts,
        integrations::list, integrations::create, integrations::get, integrations::patch, integrations::delete,
        integrations::test_saved, integrations::test_new, integrations::run,
        types::list,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API.
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    types::publish_config_schemas(&mut doc, &state.registry);
    Json(doc)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub institution: InstitutionView,
    pub role: String,
    /// The signed-in user's email (absent for API tokens).
    pub email: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InstitutionView {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = MeView)))]
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
pub struct ErrorCodeView {
    pub code: &'static str,
    pub meaning: &'static str,
    pub next_step: &'static str,
}

/// The error dictionary: every code with what it means and what to do next.
#[utoipa::path(get, path = "/api/v1/errors", responses((status = 200, body = Vec<ErrorCodeView>)))]
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
