//! Contacts in the browser: the create and edit form (UNSET and blanks as in the API), archive
//! and un-archive, test users, and CSV upload with its report. Every action goes through the
//! API's own code paths (`api::contacts`).

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::contact::{Contact, CustomFieldDef, DefaultField, FieldKind};
use serde_json::Value;

use super::{Nav, error_page, ui_error};
use crate::AppState;
use crate::api::contacts::{ContactInput, create_contact, parse_id, update_contact};
use crate::auth::Auth;
use crate::error::ApiError;

/// The default fields the form edits, in its order (the opt-in status has its own control;
/// test users are marked on the contact's page).
const FORM_DEFAULTS: &[DefaultField] = &[
    DefaultField::FirstName,
    DefaultField::LastName,
    DefaultField::PreferredName,
    DefaultField::Phone,
    DefaultField::Email,
    DefaultField::EnrollmentId,
    DefaultField::CrmId,
    DefaultField::StreetAddress,
    DefaultField::StreetAddress2,
    DefaultField::City,
    DefaultField::State,
    DefaultField::ZipCode,
    DefaultField::Country,
];

/// One input of the form.
pub(crate) struct FormField {
    /// The form name: a default field's name, or `custom.<name>`.
    name: String,
    /// The element id.
    id: String,
    label: String,
    value: String,
    hint: String,
    input_type: &'static str,
    required: bool,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "contact_form.html")]
struct ContactFormPage {
    nav: Nav,
    /// `None` for a new contact.
    id: Option<i64>,
    title: String,
    fields: Vec<FormField>,
    sms_opt_in: String,
    test_user: bool,
    error: Option<(String, String, Option<String>)>,
}

fn current_value(c: Option<&Contact>, name: &str) -> String {
    let Some(c) = c else {
        return String::new();
    };
    let d = &c.data;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    if let Some(custom) = name.strip_prefix("custom.") {
        return match d.custom.get(custom) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
    }
    match name.parse::<DefaultField>() {
        Ok(DefaultField::FirstName) => s(&d.first_name),
        Ok(DefaultField::LastName) => s(&d.last_name),
        Ok(DefaultField::PreferredName) => s(&d.preferred_name),
        Ok(DefaultField::Phone) => d
            .phone
            .as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        Ok(DefaultField::Email) => d
            .email
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        Ok(DefaultField::EnrollmentId) => s(&d.enrollment_id),
        Ok(DefaultField::CrmId) => s(&d.crm_id),
        Ok(DefaultField::StreetAddress) => s(&d.street_address),
        Ok(DefaultField::StreetAddress2) => s(&d.street_address_2),
        Ok(DefaultField::City) => s(&d.city),
        Ok(DefaultField::State) => s(&d.state),
        Ok(DefaultField::ZipCode) => s(&d.zip_code),
        Ok(DefaultField::Country) => s(&d.country),
        Ok(DefaultField::SmsOptIn) => d.sms_opt_in.as_str().to_string(),
        _ => String::new(),
    }
}

fn kind_hint(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "Text.",
        FieldKind::Number => "A number.",
        FieldKind::Date => "A date, YYYY-MM-DD.",
        FieldKind::Boolean => "Yes or no (true/false, yes/no, y/n, 1/0).",
        FieldKind::Email => "An email address.",
        FieldKind::Phone => "A phone number.",
    }
}

fn form_fields(
    contact: Option<&Contact>,
    defs: &[CustomFieldDef],
    typed: Option<&BTreeMap<String, String>>,
    error_field: Option<&str>,
    error_message: &str,
) -> Vec<FormField> {
    let is_new = contact.is_none();
    let mut out = Vec::new();
    let mut push = |name: String, label: String, hint: String, input_type, required| {
        let value = typed
            .and_then(|t| t.get(&name).cloned())
            .unwrap_or_else(|| current_value(contact, &name));
        let error = (error_field == Some(name.as_str())).then(|| error_message.to_string());
        out.push(FormField {
            id: format!("f-{}", name.replace('.', "-")),
            name,
            label,
            value,
            hint,
            input_type,
            required,
            error,
        });
    };
    for f in FORM_DEFAULTS {
        let required = is_new
            && matches!(
                f,
                DefaultField::FirstName | DefaultField::LastName | DefaultField::Phone
            );
        let mut hint = String::new();
        if required {
            hint.push_str("Required. ");
        }
        if *f == DefaultField::Phone {
            hint.push_str("Any common format; US numbers need no country code. ");
        }
        if f.clearable() {
            hint.push_str("UNSET clears it.");
        } else {
            hint.push_str("UNSET cannot clear it.");
        }
        let input_type = match f {
            DefaultField::Email => "email",
            _ => "text",
        };
        push(
            f.as_str().to_string(),
            f.label().to_string(),
            hint,
            input_type,
            required,
        );
    }
    for d in defs {
        push(
            format!("custom.{}", d.name),
            d.label.clone(),
            format!("{} UNSET clears it.", kind_hint(d.kind)),
            "text",
            false,
        );
    }
    out
}

async fn render_form(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    contact: Option<&Contact>,
    typed: Option<&BTreeMap<String, String>>,
    error: Option<&ApiError>,
) -> Response {
    let defs = match state.store.custom_fields(auth.institution_id()).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    let field = error.and_then(|e| e.field.clone());
    let message = error.map(|e| e.message.clone()).unwrap_or_default();
    let fields = form_fields(contact, &defs, typed, field.as_deref(), &message);
    // The error's field, when the form has it, is linked from the summary.
    let target = field
        .as_ref()
        .filter(|f| fields.iter().any(|x| &x.name == *f))
        .map(|f| format!("f-{}", f.replace('.', "-")));
    let sms_opt_in = typed
        .and_then(|t| t.get("sms_opt_in").cloned())
        .unwrap_or_else(|| current_value(contact, "sms_opt_in"));
    let page = ContactFormPage {
        nav: Nav::new(state, auth, "contacts"),
        id: contact.map(|c| c.id),
        title: match contact {
            Some(c) => format!("Edit {}", c.data.display_name()),
            None => "New contact".to_string(),
        },
        fields,
        sms_opt_in: if sms_opt_in.is_empty() {
            "unknown".into()
        } else {
            sms_opt_in
        },
        test_user: typed.is_some_and(|t| t.contains_key("test_user")),
        error: error.map(|e| (e.code.to_string(), e.message.clone(), target)),
    };
    (status, page).into_response()
}

/// The form to create a contact.
pub async fn new_contact_page(State(state): State<AppState>, auth: Auth) -> Response {
    render_form(&state, &auth, StatusCode::OK, None, None, None).await
}

/// The form to edit a contact.
pub async fn edit_contact_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let contact = match load(&state, &auth, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    render_form(&state, &auth, StatusCode::OK, Some(&contact), None, None).await
}

async fn load(state: &AppState, auth: &Auth, id: &str) -> Result<Contact, Response> {
    let Ok(id) = parse_id(id) else {
        return Err(error_page(StatusCode::NOT_FOUND, "No such contact."));
    };
    state
        .store
        .contact(auth.institution_id(), id)
        .await
        .map_err(|e| ui_error(e.into()))
}

/// The posted form as field name → value (the CSRF token left out).
fn typed_of(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().filter(|(k, _)| k != "_csrf").collect()
}

/// The API input of a posted form. For an edit, only fields whose value differs from the
/// stored one are sent, so a save never rewrites what another change set meanwhile.
fn input_of(typed: &BTreeMap<String, String>, contact: Option<&Contact>) -> ContactInput {
    let mut input = ContactInput::default();
    let mut custom = BTreeMap::new();
    for (name, value) in typed {
        let value = value.trim();
        if name == "test_user" {
            input.test_user = Some(Value::Bool(true));
            continue;
        }
        if contact.is_some() && value == current_value(contact, name) {
            continue;
        }
        if contact.is_none() && value.is_empty() {
            continue;
        }
        let v = Some(Value::String(value.to_string()));
        if let Some(c) = name.strip_prefix("custom.") {
            custom.insert(c.to_string(), Value::String(value.to_string()));
            continue;
        }
        match name.parse::<DefaultField>() {
            Ok(DefaultField::FirstName) => input.first_name = v,
            Ok(DefaultField::LastName) => input.last_name = v,
            Ok(DefaultField::PreferredName) => input.preferred_name = v,
            Ok(DefaultField::Phone) => input.phone = v,
            Ok(DefaultField::Email) => input.email = v,
            Ok(DefaultField::EnrollmentId) => input.enrollment_id = v,
            Ok(DefaultField::CrmId) => input.crm_id = v,
            Ok(DefaultField::SmsOptIn) => input.sms_opt_in = v,
            Ok(DefaultField::StreetAddress) => input.street_address = v,
            Ok(DefaultField::StreetAddress2) => input.street_address_2 = v,
            Ok(DefaultField::City) => input.city = v,
            Ok(DefaultField::State) => input.state = v,
            Ok(DefaultField::ZipCode) => input.zip_code = v,
            Ok(DefaultField::Country) => input.country = v,
            _ => {}
        }
    }
    if !custom.is_empty() {
        input.custom = Some(custom);
    }
    input
}

/// Creates a contact from the form.
pub async fn create_contact_submit(
    State(state): State<AppState>,
    auth: Auth,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let typed = typed_of(pairs);
    let input = input_of(&typed, None);
    match create_contact(&state, auth.institution_id(), &input).await {
        Ok(id) => Redirect::to(&format!("/contacts/{id}?saved=created")).into_response(),
        Err(e) if e.status.is_server_error() => ui_error(e),
        Err(e) => render_form(&state, &auth, e.status, None, Some(&typed), Some(&e)).await,
    }
}

/// Saves the edit form.
pub async fn edit_contact_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // The contact first: another institution's is Not Found whatever was posted.
    let contact = match load(&state, &auth, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let typed = typed_of(pairs);
    let input = input_of(&typed, Some(&contact));
    match update_contact(&state, auth.institution_id(), contact.id, &input).await {
        Ok(()) => Redirect::to(&format!("/contacts/{}?saved=updated", contact.id)).into_response(),
        Err(e) if e.status.is_server_error() => ui_error(e),
        Err(e) => {
            render_form(
                &state,
                &auth,
                e.status,
                Some(&contact),
                Some(&typed),
                Some(&e),
            )
            .await
        }
    }
}

/// Archives a contact (the API's archive).
pub async fn archive_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    set_archived(&state, &auth, &id, true).await
}

/// Takes a contact out of the archive (the API's unarchive).
pub async fn unarchive_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    set_archived(&state, &auth, &id, false).await
}

async fn set_archived(state: &AppState, auth: &Auth, id: &str, archived: bool) -> Response {
    let Ok(id) = parse_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "No such contact.");
    };
    match state
        .store
        .set_archived(auth.institution_id(), id, archived)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/contacts/{id}?saved={}",
            if archived { "archived" } else { "unarchived" }
        ))
        .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

/// The test-user form: `test_user=true` marks, `false` unmarks (an edit of `test_user`).
#[derive(serde::Deserialize)]
pub struct TestUserForm {
    test_user: bool,
}

/// Marks or unmarks a contact as a test user.
pub async fn test_user_submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let id = match load(&state, &auth, &id).await {
        Ok(c) => c.id,
        Err(r) => return r,
    };
    let Ok(f) = serde_urlencoded::from_bytes::<TestUserForm>(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Say test_user=true to mark the contact, or false to unmark it.",
        );
    };
    let input = ContactInput {
        test_user: Some(Value::Bool(f.test_user)),
        ..Default::default()
    };
    match update_contact(&state, auth.institution_id(), id, &input).await {
        Ok(()) => Redirect::to(&format!(
            "/contacts/{id}?saved={}",
            if f.test_user {
                "test_user"
            } else {
                "real_user"
            }
        ))
        .into_response(),
        Err(e) => ui_error(e),
    }
}

// ---- CSV upload ------------------------------------------------------------------------------

/// What the upload form's body may hold beyond its file (the multipart framing and the `_csrf`
/// part): the route takes bodies up to `max_import_bytes` plus this, and the file part alone is
/// held to `max_import_bytes`.
pub(crate) const FORM_OVERHEAD_BYTES: usize = 64 * 1024;

#[derive(Template, WebTemplate)]
#[template(path = "contacts_import.html")]
struct ImportPage {
    nav: Nav,
    max_bytes: usize,
    max_label: String,
    columns: Vec<String>,
    /// The report of the upload just sent by the form without JavaScript (the rendered
    /// `import_report.html` fragment).
    report: Option<String>,
}

impl ImportPage {
    async fn new(state: &AppState, auth: &Auth, report: Option<String>) -> Result<Self, ApiError> {
        let defs = state.store.custom_fields(auth.institution_id()).await?;
        let mut columns: Vec<String> = std::iter::once("id")
            .chain(DefaultField::ALL.iter().map(|f| f.as_str()))
            .map(str::to_string)
            .collect();
        columns.extend(defs.into_iter().map(|d| d.name));
        Ok(ImportPage {
            nav: Nav::new(state, auth, "contacts"),
            max_bytes: state.config.max_import_bytes,
            max_label: crate::api::contacts::human_bytes(state.config.max_import_bytes),
            columns,
            report,
        })
    }
}

/// The CSV upload page.
pub async fn import_page(State(state): State<AppState>, auth: Auth) -> Response {
    match ImportPage::new(&state, &auth, None).await {
        Ok(page) => page.into_response(),
        Err(e) => ui_error(e),
    }
}

struct ReportRow {
    row: u64,
    code: String,
    field: String,
    message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "import_report.html")]
struct ImportReportFragment {
    file_error: Option<(String, String)>,
    created: u64,
    updated: u64,
    unchanged: u64,
    skipped: u64,
    rows: Vec<ReportRow>,
    truncated: bool,
    failed_href: Option<String>,
    failed_name: String,
}

impl ImportReportFragment {
    /// The report of a file refused as a whole: nothing was imported.
    fn refused(code: &str, message: String) -> Self {
        ImportReportFragment {
            file_error: Some((code.to_string(), message)),
            created: 0,
            updated: 0,
            unchanged: 0,
            skipped: 0,
            rows: Vec::new(),
            truncated: false,
            failed_href: None,
            failed_name: String::new(),
        }
    }
}

/// Receives a CSV file and imports it: the same upload and import as
/// `POST /api/v1/contacts/import`.
///
/// The page's script sends the file as the body (`Content-Type: text/csv`, the CSRF token in
/// its header, the name in `X-File-Name`) to show its upload progress, and gets the import
/// report as an HTML fragment. Without JavaScript the form itself is posted
/// (`multipart/form-data`: the `_csrf` part, which the CSRF check reads, then the `file` part)
/// and gets the upload page back with the report in it.
pub async fn import_submit(State(state): State<AppState>, auth: Auth, req: Request) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let upload = receive_form(&state, req).await;
        let (status, report) = match import_report(&state, &auth, upload).await {
            Ok(r) => r,
            Err(e) => return ui_error(e),
        };
        let report = match report.render() {
            Ok(html) => html,
            Err(e) => return ui_error(ApiError::internal(e)),
        };
        return match ImportPage::new(&state, &auth, Some(report)).await {
            Ok(page) => (status, page).into_response(),
            Err(e) => ui_error(e),
        };
    }
    let upload = if content_type.starts_with("text/csv") {
        let name = req
            .headers()
            .get("x-file-name")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                form_urlencoded::parse(format!("n={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "contacts.csv".into());
        crate::api::contacts::receive_upload(
            req.into_body().into_data_stream(),
            state.config.max_import_bytes,
        )
        .await
        .map(|file| (name, file))
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as text/csv",
        ))
    };
    match import_report(&state, &auth, upload).await {
        Ok((status, report)) => (status, report).into_response(),
        Err(e) => ui_error(e),
    }
}

/// The file part of the upload form, written to a temporary file as it arrives (held to
/// `max_import_bytes`), with the name it had on the user's computer. Parts before it (the
/// `_csrf` token, already checked) are passed over; the file must be a CSV file.
async fn receive_form(
    state: &AppState,
    req: Request,
) -> Result<(String, tempfile::NamedTempFile), ApiError> {
    use axum::extract::FromRequest;
    use axum::extract::multipart::{Multipart, MultipartError};

    let unreadable = |e: MultipartError| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(
            status,
            code,
            format!("the form cannot be read: {}", e.body_text()),
        )
    };
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        // Browsers send the path's last component; some older ones send the whole path.
        let name = field
            .file_name()
            .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim().to_string())
            .unwrap_or_default();
        if name.is_empty() {
            break;
        }
        let media_type = field
            .content_type()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !media_type.starts_with("text/csv") && !name.to_ascii_lowercase().ends_with(".csv") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "{name} is not a CSV file ({}); choose a .csv file",
                    if media_type.is_empty() {
                        "no type given"
                    } else {
                        &media_type
                    }
                ),
            ));
        }
        let file =
            crate::api::contacts::receive_upload(field, state.config.max_import_bytes).await?;
        return Ok((name, file));
    }
    Err(ApiError::bad_request(
        "missing_file",
        "no file was sent; choose a CSV file and upload it",
    ))
}

/// Imports a received upload and makes its report: the counts and skipped rows, or why the
/// file was refused as a whole, with the status to answer. Only Ferry's own failures are
/// errors (they get the error page).
async fn import_report(
    state: &AppState,
    auth: &Auth,
    upload: Result<(String, tempfile::NamedTempFile), ApiError>,
) -> Result<(StatusCode, ImportReportFragment), ApiError> {
    let refused = |e: ApiError| {
        if e.is_internal() {
            Err(e)
        } else {
            Ok((e.status, ImportReportFragment::refused(e.code, e.message)))
        }
    };
    let (name, upload) = match upload {
        Ok(u) => u,
        Err(e) => return refused(e),
    };
    let report =
        match crate::api::contacts::import_upload(state, auth.institution_id(), &upload).await {
            Ok(r) => r,
            Err(e) => return refused(e),
        };
    let failed_href = if report.errors.is_empty() {
        None
    } else {
        let rows: BTreeSet<u64> = report.errors.iter().map(|e| e.row).collect();
        let path = upload.path().to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || ferry_store::failed_rows_csv(&path, &rows))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Some(format!(
            "data:text/csv;charset=utf-8,{}",
            crate::auth::urlencode(&String::from_utf8_lossy(&bytes))
        ))
    };
    let stem = name.strip_suffix(".csv").unwrap_or(&name);
    Ok((
        StatusCode::OK,
        ImportReportFragment {
            file_error: None,
            created: report.created,
            updated: report.updated,
            unchanged: report.unchanged,
            skipped: report.skipped,
            rows: report
                .errors
                .into_iter()
                .map(|e| ReportRow {
                    row: e.row,
                    code: e.code.to_string(),
                    field: e.field.unwrap_or_default(),
                    message: e.message,
                })
                .collect(),
            truncated: report.errors_truncated,
            failed_href,
            failed_name: format!("{stem}-failed-rows.csv"),
        },
    ))
}
