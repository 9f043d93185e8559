//! Bulk File Upload (the sidebar's entry under Inbound files, seed 003): the templates, "Setup
//! from a sample" (paste a sample, see what Ferry detected and a preview, map each column to a
//! Ferry field and mark the required ones),
//! the uploaded files with their status and report, the retention setting (held by the
//! inbound-files instance), and Mark reviewed on the conversation page.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use ferry_core::bulk::{self, CALL_FIELDS, TemplateKind};

use super::{Nav, error_page, fmt_time, ui_error};
use crate::AppState;
use crate::api::bulk_templates::{ColumnInput, TemplateInput, checked};
use crate::auth::Auth;
use crate::error::ApiError;

/// The sidebar entry these pages belong to: the platform's, under Inbound files.
const NAV: &str = ferry_connectors::bulk_upload::PLATFORM.id;

struct TemplateRow {
    id: i64,
    name: String,
    kind: &'static str,
    place: String,
    /// The columns in the agreed order: (name, Ferry field, required).
    columns: Vec<(String, Option<String>, bool)>,
}

struct FileRow {
    id: i64,
    path: String,
    status: &'static str,
    size: i64,
    when: String,
    run_id: Option<i64>,
    summary: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "bulk_files.html")]
struct BulkPage {
    nav: Nav,
    templates: Vec<TemplateRow>,
    files: Vec<FileRow>,
    /// (instance id, retention days) of the inbound-files instance, if there is one.
    retention: Option<(i64, String)>,
    sftp_address: Option<String>,
    saved: Option<String>,
}

fn summary(report: Option<&serde_json::Value>) -> String {
    let Some(r) = report else {
        return String::new();
    };
    if let Some(q) = r.get("quarantined").and_then(|v| v.as_str()) {
        return q.to_string();
    }
    if r.get("duplicate").is_some() {
        return "same content as an earlier file: not ingested again".into();
    }
    if r.get("kind").and_then(|v| v.as_str()) == Some("recording") {
        return format!(
            "recording, attached to {} call(s)",
            r.get("attached_to_calls")
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
        );
    }
    let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    format!(
        "{} rows: {} created, {} updated, {} unchanged, {} skipped",
        n("rows"),
        n("created"),
        n("updated"),
        n("unchanged"),
        n("skipped")
    )
}

/// The inbound-files instance of the institution: (id, config).
async fn inbound_instance(
    state: &AppState,
    institution_id: i64,
) -> Result<Option<(i64, serde_json::Value)>, ApiError> {
    let all = state.store.list_integrations(institution_id).await?;
    Ok(all
        .into_iter()
        .find(|i| {
            state
                .registry
                .description(&i.kind)
                .is_some_and(|d| d.category == ferry_connectors::describe::Category::InboundFiles)
        })
        .map(|i| (i.id, i.config)))
}

/// The query of the Bulk File Upload page.
#[derive(serde::Deserialize)]
pub struct BulkParams {
    /// The template just saved by Setup from a sample (anything else is ignored).
    saved: Option<String>,
}

/// The Bulk File Upload page (Inbound files → Bulk File Upload).
pub async fn bulk_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<BulkParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let templates = match state.store.bulk_templates(inst.id).await {
        Ok(t) => t,
        Err(e) => return ui_error(e.into()),
    };
    let files = match state.store.sftp_files(inst.id, 50).await {
        Ok(f) => f,
        Err(e) => return ui_error(e.into()),
    };
    let mut rows = Vec::with_capacity(files.len());
    for f in files {
        let report = match state.store.bulk_file_report(f.id).await {
            Ok(r) => r,
            Err(e) => return ui_error(e.into()),
        };
        rows.push(FileRow {
            id: f.id,
            status: f.status.as_str(),
            size: f.size,
            when: fmt_time(f.updated_at, &inst.time_zone),
            run_id: f.run_id,
            summary: if f.by_ferry {
                "written by Ferry".into()
            } else {
                summary(report.as_ref())
            },
            path: f.path,
        });
    }
    let retention = match inbound_instance(&state, inst.id).await {
        Ok(r) => r.map(|(id, cfg)| {
            let days = cfg
                .get("retention_days")
                .and_then(|v| v.as_u64())
                .map_or_else(|| "the default".to_string(), |d| d.to_string());
            (id, days)
        }),
        Err(e) => return ui_error(e),
    };
    let saved = p.saved.and_then(|s| s.parse::<i64>().ok()).and_then(|id| {
        templates
            .iter()
            .find(|t| t.id == id)
            .map(|t| format!("The template {} is saved.", t.name))
    });
    BulkPage {
        nav: Nav::new(&state, &auth, NAV),
        templates: templates
            .into_iter()
            .map(|t| TemplateRow {
                id: t.id,
                name: t.name,
                kind: t.kind.as_str(),
                place: format!("{}/{}", t.folder.trim_end_matches('/'), t.file_mask),
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| (c.name, c.field, c.required))
                    .collect(),
            })
            .collect(),
        files: rows,
        retention,
        sftp_address: state.config.sftp_address.clone(),
        saved,
    }
    .into_response()
}

struct MapRow {
    index: usize,
    name: String,
    samples: String,
    /// The field selected: Ferry's suggestion at first, what the admin chose after an error.
    selected: Option<String>,
    required: bool,
    /// Why this column's mapping was refused.
    error: Option<String>,
    /// The first field in error: focused when the page opens.
    focused: bool,
}

/// Why a mapping was not saved, beside the field at fault.
#[derive(Default)]
struct SetupErrors {
    name: Option<String>,
    folder: Option<String>,
    file_mask: Option<String>,
    /// About the columns as a whole (none required, a calls field missing).
    columns: Option<String>,
    /// Not about one field the form shows (the sample itself).
    other: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "bulk_setup.html")]
struct SetupPage {
    nav: Nav,
    /// The save was refused: the errors are beside their fields.
    refused: bool,
    errors: SetupErrors,
    /// The id of the first field in error, focused when the page opens.
    focus: String,
    name: String,
    kind: String,
    folder: String,
    file_mask: String,
    match_by: String,
    contact_name: String,
    contact_email: String,
    sample_base64: String,
    encoding: String,
    delimiter: String,
    header_row: usize,
    columns: Vec<MapRow>,
    preview: Vec<Vec<String>>,
    /// (value, label) of the fields a column may map to.
    fields: Vec<(String, String)>,
}

fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// A refused save: the error, and for each column of the input checked (`columns[i]`) the
/// index of its row in the form, so a column's error lands beside its select.
struct Refused {
    error: ApiError,
    rows: Vec<usize>,
}

impl Refused {
    /// The form row and message of an error about one column (`columns[3].field`).
    fn row_error(&self) -> Option<(usize, &str)> {
        let rest = self.error.field.as_deref()?.strip_prefix("columns[")?;
        let i: usize = rest.split(']').next()?.parse().ok()?;
        Some((*self.rows.get(i)?, self.error.message.as_str()))
    }

    fn errors(&self) -> SetupErrors {
        let message = Some(self.error.message.clone());
        let mut e = SetupErrors::default();
        match self.error.field.as_deref() {
            Some("name") => e.name = message,
            Some("folder") => e.folder = message,
            Some("file_mask") => e.file_mask = message,
            Some("columns") => e.columns = message,
            // The folder and file names are those of another template.
            None if self.error.code == "conflict" => e.file_mask = message,
            _ if self.row_error().is_some() => {}
            _ => e.other = message,
        }
        e
    }
}

async fn setup_page(
    state: &AppState,
    auth: &Auth,
    pairs: &[(String, String)],
    sample: &[u8],
    refused: Option<Refused>,
) -> Response {
    let kind = get(pairs, "kind")
        .parse::<TemplateKind>()
        .unwrap_or(TemplateKind::Contacts);
    let detected = match bulk::detect(sample) {
        Ok(d) => d,
        Err(e) => {
            return error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "The sample could not be read: {e}. Go back and paste the first rows of the file, header row included."
                ),
            );
        }
    };
    let schema = match state.store.field_schema(auth.institution_id()).await {
        Ok(s) => s,
        Err(e) => return ui_error(e.into()),
    };
    let fields: Vec<(String, String)> = match kind {
        TemplateKind::Contacts => {
            let mut f: Vec<(String, String)> = [
                "first_name",
                "last_name",
                "preferred_name",
                "phone",
                "email",
                "enrollment_id",
                "crm_id",
                "opt_in",
                "sms_opt_in",
                "street_address",
                "street_address_2",
                "city",
                "state",
                "zip_code",
                "country",
                "id",
            ]
            .iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect();
            f.extend(
                schema
                    .customs()
                    .map(|d| (d.name.clone(), format!("{} (custom)", d.label))),
            );
            f
        }
        TemplateKind::Calls => CALL_FIELDS
            .iter()
            .map(|(n, help)| (n.to_string(), format!("{n} — {help}")))
            .collect(),
    };
    let suggest = |c: &str| match kind {
        TemplateKind::Contacts => crate::api::bulk_templates::suggest_contact(&schema, c),
        TemplateKind::Calls => crate::api::bulk_templates::suggest_call(c),
    };
    let row_error = refused.as_ref().and_then(Refused::row_error);
    let errors = refused.as_ref().map(Refused::errors).unwrap_or_default();
    let focus = if errors.name.is_some() {
        "name".to_string()
    } else if errors.folder.is_some() {
        "folder".to_string()
    } else if errors.file_mask.is_some() {
        "file_mask".to_string()
    } else if let Some((row, _)) = row_error {
        format!("col_field_{row}")
    } else {
        String::new()
    };
    let columns = detected
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // After a refused save the form shows what the admin chose, not the suggestions.
            let (selected, required) = if refused.is_some() {
                let f = get(pairs, &format!("col_field_{i}"));
                (
                    (!f.is_empty()).then(|| f.to_string()),
                    !get(pairs, &format!("col_required_{i}")).is_empty(),
                )
            } else {
                let s = suggest(c);
                let required = s.is_some();
                (s, required)
            };
            MapRow {
                index: i,
                name: c.clone(),
                samples: detected
                    .preview
                    .iter()
                    .filter_map(|r| r.get(i))
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" · "),
                selected,
                required,
                error: row_error
                    .filter(|(row, _)| *row == i)
                    .map(|(_, m)| m.to_string()),
                focused: focus == format!("col_field_{i}"),
            }
        })
        .collect();
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let folder = match get(pairs, "folder") {
        "" => "/",
        f => f,
    };
    (
        status,
        SetupPage {
            nav: Nav::new(state, auth, NAV),
            refused: refused.is_some(),
            errors,
            focus,
            name: get(pairs, "name").to_string(),
            kind: kind.as_str().to_string(),
            folder: folder.to_string(),
            file_mask: get(pairs, "file_mask").to_string(),
            match_by: get(pairs, "match_by").to_string(),
            contact_name: get(pairs, "contact_name").to_string(),
            contact_email: get(pairs, "contact_email").to_string(),
            sample_base64: base64::engine::general_purpose::STANDARD.encode(sample),
            encoding: detected.encoding.as_str().to_string(),
            delimiter: match detected.delimiter {
                '\t' => "tab".to_string(),
                d => d.to_string(),
            },
            header_row: detected.header_row,
            columns,
            preview: detected.preview,
            fields,
        },
    )
        .into_response()
}

/// Step 1 → 2 of Setup: the pasted sample is read, and the mapping form shown.
pub async fn bulk_setup(State(state): State<AppState>, auth: Auth, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let sample = get(&pairs, "sample").replace("\r\n", "\n");
    setup_page(&state, &auth, &pairs, sample.as_bytes(), None).await
}

/// Step 2 of Setup: the template is saved with the mapping.
pub async fn bulk_template_create(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let sample_b64 = get(&pairs, "sample_base64").to_string();
    let sample = base64::engine::general_purpose::STANDARD
        .decode(&sample_b64)
        .unwrap_or_default();
    let mut columns = Vec::new();
    // The form row of each column sent, so an error about `columns[i]` finds its row.
    let mut rows = Vec::new();
    for i in 0.. {
        let name = get(&pairs, &format!("col_name_{i}"));
        if name.is_empty() {
            break;
        }
        let field = get(&pairs, &format!("col_field_{i}"));
        let required = !get(&pairs, &format!("col_required_{i}")).is_empty();
        if field.is_empty() && !required {
            continue;
        }
        rows.push(i);
        columns.push(ColumnInput {
            name: name.to_string(),
            field: (!field.is_empty()).then(|| field.to_string()),
            required,
        });
    }
    let input = TemplateInput {
        name: get(&pairs, "name").to_string(),
        kind: get(&pairs, "kind")
            .parse()
            .unwrap_or(TemplateKind::Contacts),
        folder: Some(get(&pairs, "folder").to_string()).filter(|f| !f.is_empty()),
        file_mask: get(&pairs, "file_mask").to_string(),
        sample_base64: Some(sample_b64),
        encoding: None,
        delimiter: None,
        header_row: None,
        columns,
        match_by: get(&pairs, "match_by").parse().ok(),
        contact: Some(serde_json::json!({
            "name": get(&pairs, "contact_name"),
            "email": get(&pairs, "contact_email"),
        })),
    };
    let inst = auth.institution_id();
    let result = match checked(&state, inst, input).await {
        Ok(t) => state
            .store
            .create_bulk_template(inst, &t)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => {
            Redirect::to(&format!("/settings/bulk-files?saved={}#templates", t.id)).into_response()
        }
        Err(error) => {
            setup_page(
                &state,
                &auth,
                &pairs,
                &sample,
                Some(Refused { error, rows }),
            )
            .await
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "bulk_template_delete.html")]
struct TemplateDeletePage {
    nav: Nav,
    id: i64,
    name: String,
    place: String,
}

/// Asks before deleting a template, saying what becomes of the files it would have taken.
pub async fn bulk_template_delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Response {
    match state.store.bulk_template(auth.institution_id(), id).await {
        Ok(t) => TemplateDeletePage {
            nav: Nav::new(&state, &auth, NAV),
            id: t.id,
            place: format!("{}/{}", t.folder.trim_end_matches('/'), t.file_mask),
            name: t.name,
        }
        .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

/// Deletes a template (after the confirmation page).
pub async fn bulk_template_delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Response {
    match state
        .store
        .delete_bulk_template(auth.institution_id(), id)
        .await
    {
        Ok(()) => Redirect::to("/settings/bulk-files").into_response(),
        Err(e) => ui_error(e.into()),
    }
}

struct SkippedRow {
    row: String,
    code: String,
    field: String,
    reason: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "bulk_file.html")]
struct FilePage {
    nav: Nav,
    path: String,
    status: &'static str,
    run_id: Option<i64>,
    summary: String,
    report_path: Option<String>,
    skipped: Vec<SkippedRow>,
    truncated: bool,
}

/// One uploaded file with its report.
pub async fn bulk_file_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Response {
    let (file, report) = match state.store.bulk_file(auth.institution_id(), id).await {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let skipped = report
        .as_ref()
        .and_then(|r| r.get("skipped_rows"))
        .and_then(|v| v.as_array())
        .map(|rows| {
            rows.iter()
                .map(|s| {
                    let text = |k: &str| match s.get(k) {
                        Some(serde_json::Value::String(v)) => v.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(v) => v.to_string(),
                    };
                    SkippedRow {
                        row: text("row"),
                        code: text("code"),
                        field: text("field"),
                        reason: text("reason"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    FilePage {
        nav: Nav::new(&state, &auth, NAV),
        status: file.status.as_str(),
        run_id: file.run_id,
        summary: summary(report.as_ref()),
        report_path: report
            .as_ref()
            .and_then(|r| r.get("report_path"))
            .and_then(|v| v.as_str())
            .map(String::from),
        truncated: report
            .as_ref()
            .and_then(|r| r.get("skipped_truncated"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        skipped,
        path: file.path,
    }
    .into_response()
}

/// Mark reviewed (or not) from the conversation page; back to the message.
pub async fn mark_reviewed(
    State(state): State<AppState>,
    auth: Auth,
    Path((contact, message)): Path<(i64, i64)>,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    let reviewed = get(&pairs, "reviewed") != "false";
    let inst = auth.institution_id();
    match state.store.message(inst, message).await {
        Ok(m) if m.contact_id == contact => {}
        Ok(_) => return error_page(StatusCode::NOT_FOUND, "No such message."),
        Err(e) => return ui_error(e.into()),
    }
    match state
        .store
        .set_message_reviewed(inst, message, reviewed)
        .await
    {
        Ok(_) => Redirect::to(&format!("/contacts/{contact}?message={message}#m{message}"))
            .into_response(),
        Err(e) => ui_error(e.into()),
    }
}
