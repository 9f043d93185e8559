//! The route table: every route with the access it needs. The router is built from it, and a
//! test walks it to prove each route's access rule.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::auth::{Access, require};
use crate::{AppState, api, observe, ui};

/// One route.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

fn r(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        handler,
    }
}

macro_rules! route {
    ($m:ident $path:literal $access:ident => $h:expr) => {
        r(Method::$m, $path, Access::$access, on(MethodFilter::$m, $h))
    };
}

/// Every route Ferry serves.
pub fn table(state: &AppState) -> Vec<RouteSpec> {
    let import_limit = state.config.max_import_bytes;
    vec![
        // Public.
        route!(GET "/healthz" Public => observe::healthz),
        route!(GET "/metrics" Public => observe::metrics),
        route!(GET "/login" Public => ui::login_page),
        route!(POST "/login" Public => ui::login_submit),
        route!(GET "/assets/{file}" Public => ui::asset),
        // API.
        route!(GET "/api/openapi.json" Viewer => api::openapi_json),
        route!(GET "/api/v1/me" Viewer => api::me),
        route!(GET "/api/v1/errors" Viewer => api::error_dictionary),
        route!(GET "/api/v1/contacts" Viewer => api::contacts::list),
        route!(POST "/api/v1/contacts" Admin => api::contacts::create),
        route!(GET "/api/v1/contacts/{id}" Viewer => api::contacts::get),
        route!(PATCH "/api/v1/contacts/{id}" Admin => api::contacts::patch),
        route!(POST "/api/v1/contacts/{id}/archive" Admin => api::contacts::archive),
        route!(POST "/api/v1/contacts/{id}/unarchive" Admin => api::contacts::unarchive),
        r(
            Method::POST,
            "/api/v1/contacts/import",
            Access::Admin,
            on(MethodFilter::POST, api::contacts::import)
                .layer(DefaultBodyLimit::max(import_limit)),
        ),
        route!(GET "/api/v1/fields" Viewer => api::fields::list),
        route!(POST "/api/v1/fields" Admin => api::fields::create),
        route!(GET "/api/v1/messages" Viewer => api::messages::list),
        route!(POST "/api/v1/messages" Admin => api::messages::create),
        route!(GET "/api/v1/runs" Viewer => api::runs::list),
        route!(GET "/api/v1/runs/{id}" Viewer => api::runs::get),
        route!(GET "/api/v1/sync-log" Viewer => api::synclog::list),
        route!(GET "/api/v1/sync-log.csv" Viewer => api::synclog::download),
        route!(GET "/api/v1/hubspot/accounts" Admin => ui::oauth::accounts),
        route!(GET "/api/v1/integration-types" Viewer => api::types::list),
        route!(GET "/api/v1/integrations" Admin => api::integrations::list),
        route!(POST "/api/v1/integrations" Admin => api::integrations::create),
        route!(POST "/api/v1/integrations/test-connection" Admin => api::integrations::test_new),
        route!(GET "/api/v1/integrations/{id}" Admin => api::integrations::get),
        route!(PATCH "/api/v1/integrations/{id}" Admin => api::integrations::patch),
        route!(DELETE "/api/v1/integrations/{id}" Admin => api::integrations::delete),
        route!(POST "/api/v1/integrations/{id}/test-connection" Admin => api::integrations::test_saved),
        route!(POST "/api/v1/integrations/{id}/runs" Admin => api::integrations::run),
        route!(GET "/api/v1/sftp-accounts" Admin => api::sftp_accounts::list),
        route!(GET "/api/v1/bulk-files" Viewer => api::bulk_files::list),
        route!(POST "/api/v1/sftp-accounts" Admin => api::sftp_accounts::create),
        route!(GET "/api/v1/sftp-accounts/{id}" Admin => api::sftp_accounts::get),
        route!(PATCH "/api/v1/sftp-accounts/{id}" Admin => api::sftp_accounts::patch),
        route!(DELETE "/api/v1/sftp-accounts/{id}" Admin => api::sftp_accounts::delete),
        route!(POST "/api/v1/sftp-accounts/{id}/keys" Admin => api::sftp_accounts::add_key),
        route!(DELETE "/api/v1/sftp-accounts/{id}/keys/{key_id}" Admin => api::sftp_accounts::delete_key),
        route!(POST "/api/v1/sftp-accounts/{id}/generate-key" Admin => api::sftp_accounts::generate_key),
        // UI.
        route!(GET "/" Viewer => ui::home),
        route!(POST "/logout" Viewer => ui::logout),
        route!(GET "/contacts" Viewer => ui::contacts_page),
        route!(GET "/contacts/{id}" Viewer => ui::contact_page),
        route!(GET "/runs" Viewer => ui::runs::runs_page),
        route!(GET "/sync-log" Viewer => ui::synclog::sync_log_page),
        route!(GET "/sync-log.csv" Viewer => ui::synclog::sync_log_csv),
        route!(GET "/errors" Viewer => ui::synclog::errors_page),
        route!(GET "/runs/table" Viewer => ui::runs::runs_table),
        route!(GET "/oauth/hubspot/start" Admin => ui::oauth::start),
        route!(GET "/oauth/hubspot/callback" Admin => ui::oauth::callback),
        route!(GET "/settings/sftp" Admin => ui::sftp::list_page),
        route!(POST "/settings/sftp" Admin => ui::sftp::create),
        route!(GET "/settings/sftp/new" Admin => ui::sftp::new_page),
        route!(POST "/settings/sftp/test" Admin => ui::sftp::test),
        route!(GET "/settings/sftp/{id}" Admin => ui::sftp::edit_page),
        route!(POST "/settings/sftp/{id}" Admin => ui::sftp::save),
        route!(POST "/settings/sftp/{id}/enabled" Admin => ui::sftp::toggle),
        route!(POST "/settings/sftp/{id}/run" Admin => ui::sftp::run),
        route!(GET "/settings/sftp/{id}/delete" Admin => ui::sftp::delete_page),
        route!(POST "/settings/sftp/{id}/delete" Admin => ui::sftp::delete),
        route!(GET "/settings/integrations" Admin => ui::browse::browse),
        // Until the generic platform page exists, SFTP Outbound's card leads to its own list.
        route!(GET "/settings/integrations/sftp-outbound" Admin => ui::sftp::list_page),
        route!(GET "/settings/integrations/hubspot" Admin => ui::hubspot::page),
        route!(GET "/settings/integrations/hubspot/new" Admin => ui::hubspot::new_page),
        route!(POST "/settings/integrations/hubspot/mapping" Admin => ui::hubspot::mapping),
        route!(POST "/settings/integrations/hubspot/finish" Admin => ui::hubspot::finish),
        route!(GET "/settings/integrations/hubspot/{id}" Admin => ui::hubspot::edit_page),
        route!(POST "/settings/integrations/hubspot/{id}/enabled" Admin => ui::hubspot::toggle),
        route!(POST "/settings/integrations/hubspot/{id}/run" Admin => ui::hubspot::run),
        route!(GET "/settings/integrations/hubspot/{id}/delete" Admin => ui::hubspot::delete_page),
        route!(POST "/settings/integrations/hubspot/{id}/delete" Admin => ui::hubspot::delete),
        route!(GET "/settings/fields" Admin => ui::fields_page),
        route!(POST "/settings/fields" Admin => ui::fields_create),
    ]
}

/// The application router.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new();
    for spec in table(&state) {
        let handler = match spec.access {
            Access::Public => spec.handler,
            access => spec.handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), access),
                require,
            )),
        };
        app = app.route(spec.path, handler);
    }
    app.fallback(ui::not_found)
        .layer(middleware::from_fn(crate::error::api_error_shape))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(observe::track))
        .layer(middleware::from_fn(observe::security_headers))
        .with_state(state)
}
