//! The row actions every integration list offers — the Enabled switch, Run now, and Delete
//! behind a confirmation page — shared by the SFTP Outbound and HubSpot screens. Each list
//! holds only its own types: an id of another type is Not Found there.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_store::Integration;

use super::{Nav, ui_error};
use crate::AppState;
use crate::api::integrations::run_now;
use crate::auth::Auth;
use crate::error::ApiError;

/// One integration list screen.
pub(crate) struct List {
    /// The list's path, e.g. `/settings/sftp`; rows live under `{base}/{id}`.
    pub base: &'static str,
    /// The navigation entry the list's pages highlight.
    pub nav: &'static str,
    /// The label of a type the list holds, `None` for a type it does not.
    pub label: fn(&str) -> Option<&'static str>,
    /// What deleting leaves behind, for the confirmation page.
    pub consequence: &'static str,
}

/// Asks before an integration is deleted.
#[derive(Template, WebTemplate)]
#[template(path = "confirm_delete.html")]
struct DeletePage {
    nav: Nav,
    name: String,
    type_label: &'static str,
    action: String,
    cancel: &'static str,
    consequence: &'static str,
}

impl List {
    /// Back to the list with a notice code.
    pub fn back(&self, notice: &str) -> Response {
        Redirect::to(&format!("{}?notice={notice}", self.base)).into_response()
    }

    /// The institution's integration `id`, if it is of a type this list holds.
    pub async fn instance(
        &self,
        state: &AppState,
        auth: &Auth,
        id: &str,
    ) -> Result<Integration, Response> {
        let id = crate::api::contacts::parse_id(id).map_err(ui_error)?;
        match state.store.integration(auth.institution_id(), id).await {
            Ok(i) if (self.label)(&i.kind).is_some() => Ok(i),
            Ok(_) => Err(ui_error(ApiError::not_found())),
            Err(e) => Err(ui_error(e.into())),
        }
    }

    /// The Enabled switch: flips the instance on or off.
    pub async fn toggle(&self, state: &AppState, auth: &Auth, id: &str) -> Response {
        let i = match self.instance(state, auth, id).await {
            Ok(i) => i,
            Err(r) => return r,
        };
        let enabled = !i.enabled;
        match state
            .service
            .set_enabled(auth.institution_id(), i.id, enabled)
            .await
        {
            Ok(_) => self.back(if enabled { "enabled" } else { "disabled" }),
            Err(e) => ui_error(e.into()),
        }
    }

    /// Run now.
    pub async fn run(&self, state: &AppState, auth: &Auth, id: &str) -> Response {
        let i = match self.instance(state, auth, id).await {
            Ok(i) => i,
            Err(r) => return r,
        };
        match run_now(state, auth.institution_id(), i.id).await {
            Ok(_) => self.back("queued"),
            Err(e) => ui_error(e),
        }
    }

    /// The confirmation page before a delete.
    pub async fn delete_page(&self, state: &AppState, auth: &Auth, id: &str) -> Response {
        match self.instance(state, auth, id).await {
            Ok(i) => DeletePage {
                nav: Nav::new(auth, self.nav),
                type_label: (self.label)(&i.kind).unwrap_or_default(),
                action: format!("{}/{}/delete", self.base, i.id),
                name: i.name,
                cancel: self.base,
                consequence: self.consequence,
            }
            .into_response(),
            Err(r) => r,
        }
    }

    /// Deletes the instance.
    pub async fn delete(&self, state: &AppState, auth: &Auth, id: &str) -> Response {
        let i = match self.instance(state, auth, id).await {
            Ok(i) => i,
            Err(r) => return r,
        };
        match state.service.delete(auth.institution_id(), i.id).await {
            Ok(()) => self.back("deleted"),
            Err(e) => ui_error(e.into()),
        }
    }
}
