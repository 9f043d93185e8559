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
    /// The HTTP method.
    pub method: Method,
    /// The path, in axum's syntax (`/api/v1/contacts/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The handler.
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
        route!(GET "/api/v1/runs/{id}/report.csv" Viewer => api::runs::report_csv),
        route!(GET "/api/v1/sync-log" Viewer => api::synclog::list),
        route!(GET "/api/v1/sync-log.csv" Viewer => api::synclog::download),
        route!(GET "/api/v1/accounts" Admin => api::accounts::list),
        route!(GET "/api/v1/integration-types" Viewer => api::types::list),
        route!(GET "/api/v1/alert-settings" Admin => api::alerts::get_settings),
        route!(PUT "/api/v1/alert-settings" Admin => api::alerts::put_settings),
        route!(GET "/api/v1/alerts" Admin => api::alerts::list),
        route!(GET "/api/v1/opt-in-paths" Viewer => api::optin::list_paths),
        route!(POST "/api/v1/opt-in-paths" Admin => api::optin::create_path),
        route!(GET "/api/v1/opt-in-paths/{id}" Viewer => api::optin::get_path),
        route!(PATCH "/api/v1/opt-in-paths/{id}" Admin => api::optin::patch_path),
        route!(DELETE "/api/v1/opt-in-paths/{id}" Admin => api::optin::delete_path),
        route!(GET "/api/v1/outbox" Viewer => api::optin::list_outbox),
        route!(POST "/api/v1/outbox/{id}/sent" Admin => api::optin::mark_sent),
        route!(GET "/api/v1/integrations" Admin => api::integrations::list),
        route!(POST "/api/v1/integrations" Admin => api::integrations::create),
        route!(POST "/api/v1/integrations/test-connection" Admin => api::integrations::test_new),
        route!(GET "/api/v1/integrations/{id}" Admin => api::integrations::get),
        route!(PATCH "/api/v1/integrations/{id}" Admin => api::integrations::patch),
        route!(DELETE "/api/v1/integrations/{id}" Admin => api::integrations::delete),
        route!(POST "/api/v1/integrations/{id}/test-connection" Admin => api::integrations::test_saved),
        route!(POST "/api/v1/integrations/{id}/runs" Admin => api::integrations::run),
        route!(GET "/api/v1/tokens" Admin => api::tokens::list),
        route!(POST "/api/v1/tokens" Admin => api::tokens::create),
        route!(DELETE "/api/v1/tokens/{id}" Admin => api::tokens::revoke),
        route!(GET "/api/v1/sessions" Admin => api::tokens::sessions),
        route!(DELETE "/api/v1/sessions/{id}" Admin => api::tokens::end_session),
        route!(POST "/api/v1/sessions/sign-out-everywhere" Viewer => api::tokens::sign_out_everywhere),
        route!(GET "/api/v1/audit-log" Admin => api::audit::list),
        route!(GET "/api/v1/sftp-accounts" Admin => api::sftp_accounts::list),
        route!(GET "/api/v1/bulk-files" Viewer => api::bulk_files::list),
        route!(GET "/api/v1/bulk-files/{id}" Viewer => api::bulk_files::get),
        route!(GET "/api/v1/bulk-templates" Admin => api::bulk_templates::list),
        route!(POST "/api/v1/bulk-templates" Admin => api::bulk_templates::create),
        route!(POST "/api/v1/bulk-templates/detect" Admin => api::bulk_templates::detect),
        route!(GET "/api/v1/bulk-templates/{id}" Admin => api::bulk_templates::get),
        route!(PATCH "/api/v1/bulk-templates/{id}" Admin => api::bulk_templates::put),
        route!(DELETE "/api/v1/bulk-templates/{id}" Admin => api::bulk_templates::delete),
        route!(GET "/api/v1/recordings/{id}" Viewer => api::recordings::get),
        route!(PATCH "/api/v1/messages/{id}" Admin => api::messages::patch),
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
        route!(GET "/contacts/new" Admin => ui::new_contact_page),
        route!(POST "/contacts/new" Admin => ui::create_contact_submit),
        route!(GET "/contacts/import" Admin => ui::import_page),
        r(
            Method::POST,
            "/contacts/import",
            Access::Admin,
            on(MethodFilter::POST, ui::import_submit).layer(DefaultBodyLimit::max(
                import_limit.saturating_add(ui::FORM_OVERHEAD_BYTES),
            )),
        ),
        route!(GET "/contacts/{id}" Viewer => ui::contact_page),
        route!(GET "/contacts/{id}/edit" Admin => ui::edit_contact_page),
        route!(POST "/contacts/{id}/edit" Admin => ui::edit_contact_submit),
        route!(POST "/contacts/{id}/archive" Admin => ui::archive_submit),
        route!(POST "/contacts/{id}/unarchive" Admin => ui::unarchive_submit),
        route!(POST "/contacts/{id}/test-user" Admin => ui::test_user_submit),
        route!(GET "/runs" Viewer => ui::runs::runs_page),
        route!(GET "/settings/sync-log" Viewer => ui::synclog::sync_log_page),
        route!(GET "/settings/sync-log.csv" Viewer => ui::synclog::sync_log_csv),
        route!(GET "/sync-log" Viewer => ui::synclog::old_page),
        route!(GET "/sync-log.csv" Viewer => ui::synclog::old_csv),
        route!(GET "/errors" Viewer => ui::synclog::errors_page),
        route!(GET "/runs/table" Viewer => ui::runs::runs_table),
        route!(GET "/runs/{id}" Viewer => ui::run_details::run_page),
        route!(GET "/runs/{id}/report.csv" Viewer => ui::run_details::report_csv),
        route!(GET "/conversations" Viewer => ui::conversations::page),
        route!(GET "/api-reference" Viewer => ui::api_reference::page),
        route!(GET "/oauth/{provider}/start" Admin => ui::connect::start),
        route!(GET "/oauth/{provider}/callback" Admin => ui::connect::callback),
        route!(GET "/settings/integrations" Admin => ui::browse::browse),
        route!(GET "/settings/integrations/{platform}" Admin => ui::integrations::platform_page),
        route!(GET "/settings/integrations/new/{kind}" Admin => ui::integrations::new_page),
        route!(POST "/settings/integrations/new/{kind}" Admin => ui::integrations::create),
        route!(POST "/settings/integrations/test" Admin => ui::integrations::test),
        route!(POST "/settings/integrations/remote-fields" Admin => ui::integrations::remote_fields_fragment),
        route!(GET "/settings/integrations/i/{id}" Admin => ui::integrations::edit_page),
        route!(POST "/settings/integrations/i/{id}" Admin => ui::integrations::save),
        route!(POST "/settings/integrations/i/{id}/enabled" Admin => ui::integrations::toggle),
        route!(POST "/settings/integrations/i/{id}/run" Admin => ui::integrations::run),
        route!(GET "/settings/integrations/i/{id}/preview" Admin => ui::conversations::preview_page),
        route!(GET "/settings/integrations/i/{id}/preview.csv" Admin => ui::conversations::preview_csv),
        route!(GET "/settings/integrations/i/{id}/delete" Admin => ui::integrations::delete_page),
        route!(POST "/settings/integrations/i/{id}/delete" Admin => ui::integrations::delete),
        // Addresses of the screens before they were generic (303 to where they are now).
        route!(GET "/settings/sftp" Admin => ui::integrations::old_list),
        route!(GET "/settings/sftp/new" Admin => ui::integrations::old_new),
        route!(GET "/settings/sftp/{id}" Admin => ui::integrations::old_instance),
        route!(GET "/settings/integrations/{platform}/new" Admin => ui::integrations::old_new),
        route!(GET "/settings/integrations/{platform}/{id}" Admin => ui::integrations::old_platform_instance),
        route!(GET "/settings/audit-log" Admin => ui::audit::page),
        route!(GET "/settings/alerts" Admin => ui::alerts::page),
        route!(POST "/settings/alerts" Admin => ui::alerts::save),
        route!(GET "/settings/security" Admin => ui::security::page),
        route!(POST "/settings/security/tokens" Admin => ui::security::create_token),
        route!(POST "/settings/security/tokens/{id}/revoke" Admin => ui::security::revoke_token),
        route!(POST "/settings/security/sessions/{id}/end" Admin => ui::security::end_session),
        route!(POST "/settings/security/sign-out-everywhere" Viewer => ui::security::sign_out_everywhere),
        route!(GET "/settings/fields" Admin => ui::fields_page),
        route!(GET "/settings/sftp-accounts" Admin => ui::sftp_accounts::list_page),
        route!(POST "/settings/sftp-accounts" Admin => ui::sftp_accounts::create),
        route!(GET "/settings/sftp-accounts/{id}" Admin => ui::sftp_accounts::account_page),
        route!(POST "/settings/sftp-accounts/{id}/enabled" Admin => ui::sftp_accounts::set_enabled),
        route!(POST "/settings/sftp-accounts/{id}/password" Admin => ui::sftp_accounts::set_password),
        route!(POST "/settings/sftp-accounts/{id}/keys" Admin => ui::sftp_accounts::add_key),
        route!(POST "/settings/sftp-accounts/{id}/keys/{key_id}/delete" Admin => ui::sftp_accounts::delete_key),
        route!(POST "/settings/sftp-accounts/{id}/generate-key" Admin => ui::sftp_accounts::generate_key),
        route!(GET "/settings/sftp-accounts/{id}/delete" Admin => ui::sftp_accounts::delete_page),
        route!(POST "/settings/sftp-accounts/{id}/delete" Admin => ui::sftp_accounts::delete),
        route!(GET "/settings/bulk-files" Admin => ui::bulk::bulk_page),
        route!(POST "/settings/bulk-files/setup" Admin => ui::bulk::bulk_setup),
        route!(POST "/settings/bulk-files/templates" Admin => ui::bulk::bulk_template_create),
        route!(GET "/settings/bulk-files/templates/{id}/delete" Admin => ui::bulk::bulk_template_delete_page),
        route!(POST "/settings/bulk-files/templates/{id}/delete" Admin => ui::bulk::bulk_template_delete),
        route!(GET "/settings/bulk-files/{id}" Admin => ui::bulk::bulk_file_page),
        route!(POST "/contacts/{contact}/messages/{message}/reviewed" Admin => ui::bulk::mark_reviewed),
        route!(POST "/settings/fields" Admin => ui::fields_create),
        route!(POST "/settings/fields/{name}/rename" Admin => ui::fields_rename),
        route!(GET "/settings/fields/{name}/delete" Admin => ui::fields_delete_page),
        route!(POST "/settings/fields/{name}/delete" Admin => ui::fields_delete),
        route!(GET "/settings/opt-in-paths" Admin => ui::optin::paths_page),
        route!(POST "/settings/opt-in-paths" Admin => ui::optin::paths_create),
        route!(GET "/settings/opt-in-paths/{id}/edit" Admin => ui::optin::edit_page),
        route!(POST "/settings/opt-in-paths/{id}/edit" Admin => ui::optin::edit_submit),
        route!(GET "/settings/opt-in-paths/{id}/delete" Admin => ui::optin::delete_page),
        route!(POST "/settings/opt-in-paths/{id}/delete" Admin => ui::optin::delete_submit),
        route!(GET "/outbox" Viewer => ui::optin::outbox_page),
        route!(POST "/outbox/{id}/sent" Admin => ui::optin::mark_sent),
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
