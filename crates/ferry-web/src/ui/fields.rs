//! Settings → Custom fields.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::contact::{CustomFieldDef, FieldKind};
use serde::Deserialize;

use super::{Nav, error_page, ui_error};
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

/// What the page says after a rename or delete (`?done=`).
#[derive(Deserialize, Default)]
pub struct FieldsParams {
    renamed: Option<String>,
    deleted: Option<String>,
    values: Option<u64>,
}

/// Settings → Custom fields.
pub async fn fields_page(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Query(p): axum::extract::Query<FieldsParams>,
) -> Response {
    let saved = match (p.renamed, p.deleted) {
        (Some(n), _) => Some(format!(
            "Renamed. {n} keeps its name in imports and the API, and every stored value."
        )),
        (_, Some(n)) => Some(format!(
            "Deleted {n}, and its value from {} contact{}.",
            p.values.unwrap_or(0),
            if p.values == Some(1) { "" } else { "s" }
        )),
        _ => None,
    };
    render_fields(&state, &auth, StatusCode::OK, None, saved, None).await
}

/// The rename form.
#[derive(Deserialize)]
pub struct RenameForm {
    label: String,
}

/// Gives a custom field a new label (its name and values stay).
pub async fn fields_rename(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    Form(f): Form<RenameForm>,
) -> Response {
    match state
        .store
        .rename_custom_field(auth.institution_id(), &name, &f.label)
        .await
    {
        Ok(d) => Redirect::to(&format!(
            "/settings/fields?renamed={}",
            crate::auth::urlencode(&d.name)
        ))
        .into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_server_error() || e.status == StatusCode::NOT_FOUND {
                return ui_error(e);
            }
            render_fields(&state, &auth, e.status, Some(e.message), None, None).await
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "field_delete.html")]
struct FieldDeletePage {
    nav: Nav,
    name: String,
    label: String,
    values: u64,
    integrations: Vec<(i64, String)>,
}

/// Whether a JSON value holds this string anywhere (an integration's mapping or filters).
fn mentions(v: &serde_json::Value, name: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s == name,
        serde_json::Value::Array(a) => a.iter().any(|x| mentions(x, name)),
        serde_json::Value::Object(o) => o.values().any(|x| mentions(x, name)),
        _ => false,
    }
}

/// Asks before deleting a custom field, saying what happens to the stored values.
pub async fn fields_delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Response {
    let inst = auth.institution_id();
    let defs = match state.store.custom_fields(inst).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    let Some(def) = defs.into_iter().find(|d| d.name == name) else {
        return error_page(StatusCode::NOT_FOUND, "No such custom field.");
    };
    let (values, integrations) = match tokio::try_join!(
        state.store.custom_field_usage(inst, &name),
        state.store.list_integrations(inst)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    FieldDeletePage {
        nav: Nav::new(&state, &auth, "fields"),
        values,
        integrations: integrations
            .into_iter()
            .filter(|i| mentions(&i.config, &name))
            .map(|i| (i.id, i.name))
            .collect(),
        name: def.name,
        label: def.label,
    }
    .into_response()
}

/// Deletes a custom field and its stored values.
pub async fn fields_delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Response {
    match state
        .store
        .delete_custom_field(auth.institution_id(), &name)
        .await
    {
        Ok(n) => Redirect::to(&format!(
            "/settings/fields?deleted={}&values={n}",
            crate::auth::urlencode(&name)
        ))
        .into_response(),
        Err(e) => ui_error(e.into()),
    }
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
