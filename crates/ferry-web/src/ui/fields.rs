//! Settings → Custom fields.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_core::contact::{CustomFieldDef, FieldKind};
use serde::Deserialize;

use super::{Nav, ui_error};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;

struct FieldRow {
    name: String,
    label: String,
    kind: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "fields.html")]
struct FieldsPage {
    nav: Nav,
    rows: Vec<FieldRow>,
    kinds: Vec<(&'static str, bool)>,
    error: Option<String>,
    saved: Option<String>,
    form_name: String,
    form_label: String,
}

async fn render_fields(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    error: Option<String>,
    saved: Option<String>,
    form: Option<&FieldForm>,
) -> Response {
    let defs = match state.store.custom_fields(auth.institution_id()).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    let page = FieldsPage {
        nav: Nav::new(state, auth, "fields"),
        rows: defs
            .into_iter()
            .map(|d| FieldRow {
                name: d.name,
                label: d.label,
                kind: d.kind.as_str(),
            })
            .collect(),
        kinds: FieldKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str(),
                    form.map_or(*k == FieldKind::Text, |f| f.kind == k.as_str()),
                )
            })
            .collect(),
        error,
        saved,
        form_name: form.map(|f| f.name.clone()).unwrap_or_default(),
        form_label: form.map(|f| f.label.clone()).unwrap_or_default(),
    };
    (status, page).into_response()
}

/// Settings → Custom fields.
pub async fn fields_page(State(state): State<AppState>, auth: Auth) -> Response {
    render_fields(&state, &auth, StatusCode::OK, None, None, None).await
}

#[derive(Deserialize)]
pub struct FieldForm {
    name: String,
    label: String,
    kind: String,
}

/// Creates a custom field from the page's form.
pub async fn fields_create(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<FieldForm>,
) -> Response {
    let Ok(kind) = f.kind.parse::<FieldKind>() else {
        return render_fields(
            &state,
            &auth,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(format!("{:?} is not a field type", f.kind)),
            None,
            Some(&f),
        )
        .await;
    };
    let def = CustomFieldDef {
        name: f.name.trim().to_string(),
        label: f.label.clone(),
        kind,
    };
    match state
        .store
        .create_custom_field(auth.institution_id(), &def)
        .await
    {
        Ok(d) => {
            render_fields(
                &state,
                &auth,
                StatusCode::OK,
                None,
                Some(format!("Added {}.", d.label)),
                None,
            )
            .await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_server_error() {
                return ui_error(e);
            }
            render_fields(&state, &auth, e.status, Some(e.message), None, Some(&f)).await
        }
    }
}
