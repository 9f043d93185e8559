//! Settings → Opt-in paths (list, add, edit, delete with a confirmation page) and the Outbox
//! (the welcome messages queued for the platform's sender, with Queued and Sent tabs and Mark
//! sent). Both go through the same store functions as `/api/v1/opt-in-paths` and
//! `/api/v1/outbox`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_store::{OptInPath, OptInPathInput};
use serde::Deserialize;

use super::{Nav, error_page, fmt_phone, fmt_time, ui_error};
use crate::AppState;
use crate::auth::{Auth, urlencode};
use crate::error::ApiError;

/// Where the opt-in paths screen is.
pub const PATHS_PAGE: &str = "/settings/opt-in-paths";
/// Where the outbox is.
pub const OUTBOX_PAGE: &str = "/outbox";
/// Outbox rows per page.
const OUTBOX_PAGE_SIZE: u32 = 50;

/// The path form's values and the errors beside its fields.
#[derive(Default)]
pub(crate) struct PathFormView {
    name: String,
    welcome_message: String,
    name_error: Option<String>,
    welcome_error: Option<String>,
    /// An error of no single field.
    other_error: Option<String>,
}

impl PathFormView {
    fn of(input: &PathForm) -> Self {
        PathFormView {
            name: input.name.clone(),
            welcome_message: input.welcome_message.clone(),
            ..Default::default()
        }
    }

    /// Puts `e` beside its field.
    fn with_error(mut self, e: ApiError) -> Self {
        match e.field.as_deref() {
            Some("name") => self.name_error = Some(e.message),
            Some("welcome_message") => self.welcome_error = Some(e.message),
            _ => self.other_error = Some(e.message),
        }
        self
    }
}

struct PathRow {
    id: i64,
    name: String,
    welcome_message: String,
    updated: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "opt_in_paths.html")]
struct PathsPage {
    nav: Nav,
    rows: Vec<PathRow>,
    saved: Option<String>,
    form: PathFormView,
}

#[derive(Template, WebTemplate)]
#[template(path = "opt_in_path_edit.html")]
struct EditPage {
    nav: Nav,
    id: i64,
    current_name: String,
    form: PathFormView,
}

#[derive(Template, WebTemplate)]
#[template(path = "opt_in_path_delete.html")]
struct DeletePage {
    nav: Nav,
    id: i64,
    name: String,
    welcome_message: String,
    queued: u64,
    integrations: Vec<(i64, String)>,
}

/// The add and edit forms.
#[derive(Deserialize)]
pub struct PathForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    welcome_message: String,
}

impl PathForm {
    fn input(&self) -> OptInPathInput {
        OptInPathInput {
            // Browsers send a textarea's line breaks as CRLF; the store keeps `\n` only.
            name: self.name.clone(),
            welcome_message: self.welcome_message.replace("\r\n", "\n"),
        }
    }
}

/// What the list says after a change (`?saved=`, `?deleted=`).
#[derive(Deserialize, Default)]
pub struct PathsParams {
    saved: Option<String>,
    deleted: Option<String>,
}

async fn render_paths(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    saved: Option<String>,
    form: PathFormView,
) -> Response {
    let paths = match state.store.opt_in_paths(auth.institution_id()).await {
        Ok(p) => p,
        Err(e) => return ui_error(e.into()),
    };
    let tz = &auth.principal.institution.time_zone;
    let page = PathsPage {
        nav: Nav::new(state, auth, "opt_in_paths"),
        rows: paths
            .into_iter()
            .map(|p| PathRow {
                id: p.id,
                name: p.name,
                welcome_message: p.welcome_message,
                updated: fmt_time(p.updated_at, tz),
            })
            .collect(),
        saved,
        form,
    };
    (status, page).into_response()
}

/// `GET /settings/opt-in-paths`: the paths and the form to add one.
pub async fn paths_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<PathsParams>,
) -> Response {
    let saved = match (p.saved, p.deleted) {
        (Some(n), _) => Some(format!("Saved the opt-in path {n}.")),
        (_, Some(n)) => Some(format!("Deleted the opt-in path {n}.")),
        _ => None,
    };
    render_paths(
        &state,
        &auth,
        StatusCode::OK,
        saved,
        PathFormView::default(),
    )
    .await
}

/// The status of a refused save: 422 for the caller's values, 404 and 5xx as error pages.
fn refused(e: &ApiError) -> bool {
    !(e.status.is_server_error() || e.status == StatusCode::NOT_FOUND)
}

/// `POST /settings/opt-in-paths`: adds a path; a refused one comes back with its errors in place.
pub async fn paths_create(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<PathForm>,
) -> Response {
    match state
        .store
        .create_opt_in_path(auth.institution_id(), &f.input())
        .await
    {
        Ok(p) => {
            render_paths(
                &state,
                &auth,
                StatusCode::OK,
                Some(format!("Added the opt-in path {}.", p.name)),
                PathFormView::default(),
            )
            .await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if !refused(&e) {
                return ui_error(e);
            }
            let status = e.status;
            render_paths(
                &state,
                &auth,
                status,
                None,
                PathFormView::of(&f).with_error(e),
            )
            .await
        }
    }
}

async fn path_of(state: &AppState, auth: &Auth, id: &str) -> Result<OptInPath, Response> {
    let id = crate::api::contacts::parse_id(id).map_err(ui_error)?;
    state
        .store
        .opt_in_path(auth.institution_id(), id)
        .await
        .map_err(|e| match e {
            ferry_store::StoreError::NotFound => {
                error_page(StatusCode::NOT_FOUND, "No such opt-in path.")
            }
            e => ui_error(e.into()),
        })
}

/// `GET /settings/opt-in-paths/{id}/edit`: the path's form.
pub async fn edit_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let path = match path_of(&state, &auth, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    EditPage {
        nav: Nav::new(&state, &auth, "opt_in_paths"),
        id: path.id,
        form: PathFormView {
            name: path.name.clone(),
            welcome_message: path.welcome_message,
            ..Default::default()
        },
        current_name: path.name,
    }
    .into_response()
}

/// `POST /settings/opt-in-paths/{id}/edit`: saves the path, or shows the form with its errors.
pub async fn edit_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Form<PathForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    // The path first: another institution's (or no) path is a 404 whatever the body.
    let path = match path_of(&state, &auth, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Form(f)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The form could not be read; open the path's page and save again.",
        );
    };
    match state
        .store
        .update_opt_in_path(auth.institution_id(), path.id, &f.input())
        .await
    {
        Ok(p) => {
            Redirect::to(&format!("{PATHS_PAGE}?saved={}", urlencode(&p.name))).into_response()
        }
        Err(e) => {
            let e = ApiError::from(e);
            if !refused(&e) {
                return ui_error(e);
            }
            let status = e.status;
            let page = EditPage {
                nav: Nav::new(&state, &auth, "opt_in_paths"),
                id: path.id,
                current_name: path.name,
                form: PathFormView::of(&f).with_error(e),
            };
            (status, page).into_response()
        }
    }
}

/// Whether an integration's config names this opt-in path (`opt_in_path_id` anywhere in it).
fn names_path(v: &serde_json::Value, id: i64) -> bool {
    match v {
        serde_json::Value::Object(o) => o
            .iter()
            .any(|(k, x)| (k == "opt_in_path_id" && x.as_i64() == Some(id)) || names_path(x, id)),
        serde_json::Value::Array(a) => a.iter().any(|x| names_path(x, id)),
        _ => false,
    }
}

/// `GET /settings/opt-in-paths/{id}/delete`: asks first, saying what happens to the messages
/// queued and to the integrations that name the path.
pub async fn delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let path = match path_of(&state, &auth, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let inst = auth.institution_id();
    let (queued, integrations) = match tokio::try_join!(
        queued_for_path(&state, inst, path.id),
        state.store.list_integrations(inst)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    DeletePage {
        nav: Nav::new(&state, &auth, "opt_in_paths"),
        id: path.id,
        name: path.name,
        welcome_message: path.welcome_message,
        queued,
        integrations: integrations
            .into_iter()
            .filter(|i| names_path(&i.config, path.id))
            .map(|i| (i.id, i.name))
            .collect(),
    }
    .into_response()
}

/// How many messages of the path wait in the outbox (read through the outbox's pages).
async fn queued_for_path(state: &AppState, inst: i64, path: i64) -> ferry_store::Result<u64> {
    let mut n = 0;
    let mut after = None;
    loop {
        let page = state.store.outbox(inst, false, after, 1000).await?;
        n += page
            .iter()
            .filter(|m| m.opt_in_path_id == Some(path))
            .count() as u64;
        match page.last() {
            Some(m) if page.len() == 1000 => after = Some(m.id),
            _ => return Ok(n),
        }
    }
}

/// `POST /settings/opt-in-paths/{id}/delete`: deletes the path.
pub async fn delete_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let path = match path_of(&state, &auth, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match state
        .store
        .delete_opt_in_path(auth.institution_id(), path.id)
        .await
    {
        Ok(()) => {
            Redirect::to(&format!("{PATHS_PAGE}?deleted={}", urlencode(&path.name))).into_response()
        }
        Err(e) => ui_error(e.into()),
    }
}

// ---- Outbox ------------------------------------------------------------------------------

struct OutboxRow {
    id: i64,
    contact_id: i64,
    contact: String,
    phone: String,
    path: String,
    body: String,
    queued: String,
    sent: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "outbox.html")]
struct OutboxPage {
    nav: Nav,
    sent_tab: bool,
    rows: Vec<OutboxRow>,
    notice: Option<String>,
    next_link: Option<String>,
    first_link: Option<String>,
    time_zone: String,
}

/// The outbox's tab and page (`?status=queued|sent&after=ID`), and what was just marked.
#[derive(Deserialize, Default)]
pub struct OutboxParams {
    status: Option<String>,
    after: Option<String>,
    marked: Option<String>,
}

/// `GET /outbox`: the queued (or sent) welcome messages, oldest first.
pub async fn outbox_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<OutboxParams>,
) -> Response {
    let sent = match p.status.as_deref().map(str::trim) {
        None | Some("") | Some("queued") => false,
        Some("sent") => true,
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The outbox has two tabs: status=queued or status=sent.",
            );
        }
    };
    let after = p
        .after
        .as_deref()
        .and_then(|a| a.trim().parse::<i64>().ok())
        .filter(|a| *a > 0);
    let inst = auth.institution_id();
    let page = match state
        .store
        .outbox(inst, sent, after, OUTBOX_PAGE_SIZE + 1)
        .await
    {
        Ok(p) => p,
        Err(e) => return ui_error(e.into()),
    };
    let more = page.len() > OUTBOX_PAGE_SIZE as usize;
    let page: Vec<_> = page.into_iter().take(OUTBOX_PAGE_SIZE as usize).collect();
    let ids: Vec<i64> = page.iter().map(|m| m.contact_id).collect();
    let (contacts, paths) = match tokio::try_join!(
        state.store.contacts_by_ids(inst, &ids),
        state.store.opt_in_paths(inst)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let tz = auth.principal.institution.time_zone.clone();
    let tab = if sent { "sent" } else { "queued" };
    let notice = p
        .marked
        .as_deref()
        .and_then(|m| m.parse::<i64>().ok())
        .map(|m| {
            format!(
                "Marked message {m} sent: it is now in the contact's history as an outgoing campaign SMS."
            )
        });
    let rows = page
        .iter()
        .map(|m| {
            let c = contacts.get(&m.contact_id);
            OutboxRow {
                id: m.id,
                contact_id: m.contact_id,
                contact: c
                    .map(|c| c.data.display_name())
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("Contact #{}", m.contact_id)),
                phone: c
                    .and_then(|c| c.data.phone.as_ref())
                    .map(|p| fmt_phone(p.as_str()))
                    .unwrap_or_default(),
                path: match m.opt_in_path_id {
                    Some(id) => paths
                        .iter()
                        .find(|p| p.id == id)
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| format!("#{id}")),
                    None => "(path deleted)".to_string(),
                },
                body: m.body.clone(),
                queued: fmt_time(m.queued_at, &tz),
                sent: m.sent_at.map(|t| fmt_time(t, &tz)),
            }
        })
        .collect();
    OutboxPage {
        nav: Nav::new(&state, &auth, "outbox"),
        sent_tab: sent,
        rows,
        notice,
        next_link: more
            .then(|| {
                page.last()
                    .map(|m| format!("{OUTBOX_PAGE}?status={tab}&after={}", m.id))
            })
            .flatten(),
        first_link: after.map(|_| format!("{OUTBOX_PAGE}?status={tab}")),
        time_zone: tz,
    }
    .into_response()
}

/// `POST /outbox/{id}/sent`: marks a queued message sent (now), through the API's store
/// function; the message joins the contact's history.
pub async fn mark_sent(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let id = match crate::api::contacts::parse_id(&id) {
        Ok(id) => id,
        Err(e) => return ui_error(e),
    };
    match state
        .store
        .mark_outbox_sent(auth.institution_id(), id, None)
        .await
    {
        Ok(m) => Redirect::to(&format!("{OUTBOX_PAGE}?marked={}", m.id)).into_response(),
        Err(ferry_store::StoreError::NotFound) => {
            error_page(StatusCode::NOT_FOUND, "No such message in the outbox.")
        }
        Err(e) => ui_error(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integrations_naming_a_path_are_found_anywhere_in_their_config() {
        assert!(names_path(&json!({"opt_in_path_id": 3}), 3));
        assert!(names_path(&json!({"a": [{"opt_in_path_id": 3}]}), 3));
        assert!(!names_path(&json!({"opt_in_path_id": 4}), 3));
        assert!(!names_path(&json!({"other": 3}), 3));
    }
}
