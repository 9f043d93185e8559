//! `/api/v1/fields`: custom field definitions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_core::contact::{CustomFieldDef, FieldKind};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
/// A custom field.
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
#[utoipa::path(get, path = "/api/v1/fields", operation_id = "list_fields", responses(
    (status = 200, description = "The custom fields.", body = Vec<FieldView>),
    (status = 401, response = d::Unauthorized)))]
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
#[utoipa::path(post, path = "/api/v1/fields", operation_id = "create_field", request_body = FieldView, responses(
    (status = 201, description = "The new field.", body = FieldView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 409, description = "A field of that name exists.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A value is not valid; `field` names it.", body = ErrorBody)))]
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
