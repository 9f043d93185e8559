//! `/api/v1/fields`: custom field definitions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_core::contact::{CustomFieldDef, FieldKind};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldView {
    /// The key in imports and the API: lower-case letters, digits and underscores.
    pub name: String,
    /// What people see.
    pub label: String,
    /// `text`, `number`, `date`, `boolean`, `email` or `phone`.
    #[schema(value_type = String)]
    pub kind: FieldKind,
}

impl From<CustomFieldDef> for FieldView {
    fn from(d: CustomFieldDef) -> Self {
        FieldView {
            name: d.name,
            label: d.label,
            kind: d.kind,
        }
    }
}

/// The institution's custom fields.
#[utoipa::path(get, path = "/api/v1/fields", responses((status = 200, body = Vec<FieldView>)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<FieldView>>> {
    Ok(Json(
        state
            .store
            .custom_fields(auth.institution_id())
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Define a custom field.
#[utoipa::path(post, path = "/api/v1/fields", request_body = FieldView, responses((status = 201, body = FieldView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(f): JsonBody<FieldView>,
) -> ApiResult<(StatusCode, Json<FieldView>)> {
    let def = state
        .store
        .create_custom_field(
            auth.institution_id(),
            &CustomFieldDef {
                name: f.name,
                label: f.label,
                kind: f.kind,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(def.into())))
}
