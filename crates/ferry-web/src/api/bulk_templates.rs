//! `/api/v1/bulk-templates`: how the files an institution uploads to Ferry's SFTP server are read
//! (seed 003, "Setup from a sample"). `POST …/detect` reads a sample file (encoding, delimiter,
//! header row, columns, a preview, suggested fields); a template is created from a sample (sent
//! in the body, base64) with each column mapped to a Ferry field and the required columns marked,
//! kept in the sample's (the agreed) order, plus a kind, a folder and a file-name mask.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use ferry_core::bulk::{
    self, CALL_FIELDS, CallMatch, DELIMITERS, Detected, Encoding, TemplateColumn, TemplateKind,
};
use ferry_core::contact::FieldSchema;
use ferry_store::{BulkTemplate, NewBulkTemplate};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// The largest sample accepted (the first rows are all detection needs).
const MAX_SAMPLE_BYTES: usize = 5 * 1024 * 1024;

/// A template's column.
#[derive(Serialize, Deserialize, utoipa::ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ColumnInput {
    /// The column's name in the header row.
    pub name: String,
    /// The Ferry field it fills: a contact field or custom field name for contacts files;
    /// `crm_id`, `phone`, `direction`, `time`, `duration`, `agent`, `note` or `recording` for
    /// calls files; `null` to read past the column.
    #[serde(default)]
    pub field: Option<String>,
    /// Every file must have it, in the agreed order.
    #[serde(default)]
    pub required: bool,
}

/// A template.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    /// The template's ID.
    pub id: i64,
    /// A name for people.
    pub name: String,
    /// `contacts` or `calls`.
    pub kind: String,
    /// The folder its files are uploaded to, e.g. `/calls` (`/` is the account's top folder).
    pub folder: String,
    /// The file names it takes, e.g. `calls_*.csv` (`*` any characters, `?` one).
    pub file_mask: String,
    /// `utf-8`, `utf-16le`, `utf-16be` or `windows-1252`.
    pub encoding: String,
    /// The delimiter: `,`, `;`, a tab or `|`.
    pub delimiter: String,
    /// The header row's line number (1 unless the export puts lines before it).
    pub header_row: i64,
    /// The columns in the agreed order.
    pub columns: Vec<ColumnInput>,
    /// Calls files: `crm_id` or `phone`, how a row finds its contact.
    pub match_by: String,
    /// The contact details given at setup.
    #[schema(value_type = Object)]
    pub contact: Value,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<BulkTemplate> for TemplateView {
    fn from(t: BulkTemplate) -> Self {
        TemplateView {
            id: t.id,
            name: t.name,
            kind: t.kind.as_str().into(),
            folder: t.folder,
            file_mask: t.file_mask,
            encoding: t.encoding.as_str().into(),
            delimiter: t.delimiter.to_string(),
            header_row: t.header_row,
            columns: t
                .columns
                .into_iter()
                .map(|c| ColumnInput {
                    name: c.name,
                    field: c.field,
                    required: c.required,
                })
                .collect(),
            match_by: t.match_by.as_str().into(),
            contact: t.contact,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// What a sample file looks like.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DetectedView {
    /// The encoding found.
    pub encoding: String,
    /// The delimiter found.
    pub delimiter: String,
    /// The header row's line number.
    pub header_row: usize,
    /// The columns, each with a suggested field (for contacts and for calls files).
    pub columns: Vec<DetectedColumn>,
    /// Up to 5 rows after the header.
    pub preview: Vec<Vec<String>>,
}

/// A column of a sample.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DetectedColumn {
    /// Its name in the header row.
    pub name: String,
    /// The contact field its name suggests, if any.
    pub contact_field: Option<String>,
    /// The calls field its name suggests, if any.
    pub call_field: Option<String>,
}

/// A template to create or replace.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    /// A name for people.
    pub name: String,
    /// `contacts` or `calls`.
    #[schema(value_type = String)]
    pub kind: TemplateKind,
    /// The folder files are uploaded to (default `/`).
    #[serde(default)]
    pub folder: Option<String>,
    /// The file names it takes, e.g. `calls_*.csv`.
    pub file_mask: String,
    /// The sample file, base64: its encoding, delimiter, header row and columns are detected,
    /// and the columns keep its order. Without it, `encoding`, `delimiter` and `header_row`
    /// are taken as given (defaults `utf-8`, `,`, 1) and `columns` in the order given.
    #[serde(default)]
    pub sample_base64: Option<String>,
    /// Without a sample: the encoding.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub encoding: Option<Encoding>,
    /// Without a sample: the delimiter.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Without a sample: the header row's line number.
    #[serde(default)]
    pub header_row: Option<i64>,
    /// The columns with their fields and whether they are required. With a sample, columns not
    /// listed are read past. One required column must find each row's contact: for contacts,
    /// one mapped to `id`, `crm_id` or `phone` (email does not match contacts); for calls, the
    /// one mapped to the `match_by` field. Otherwise 422 with `field` `columns`, or
    /// `columns[i].required` when that column is mapped but not required.
    pub columns: Vec<ColumnInput>,
    /// Calls files: `crm_id` (default) or `phone`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub match_by: Option<CallMatch>,
    /// Contact details for the setup (name, email, phone, notes), kept as given.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub contact: Option<Value>,
}

fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_value", field, message)
}

/// Suggests the contact field a column name means.
pub fn suggest_contact(schema: &FieldSchema, name: &str) -> Option<String> {
    let n = name.trim().to_lowercase().replace([' ', '-'], "_");
    let alias = match n.as_str() {
        "first" | "firstname" | "given_name" => "first_name",
        "last" | "lastname" | "surname" | "family_name" => "last_name",
        "mobile" | "cell" | "phone_number" | "mobile_phone" | "cell_phone" => "phone",
        "email_address" | "e_mail" => "email",
        "crm" | "crmid" | "student_id" | "constituent_id" | "external_id" => "crm_id",
        "zip" | "postal_code" | "zipcode" => "zip_code",
        other => other,
    };
    schema.resolve(alias).map(|f| f.name().to_string())
}

/// Suggests the calls field a column name means.
pub fn suggest_call(name: &str) -> Option<String> {
    let n = name.trim().to_lowercase();
    let f = if n.contains("record") || n.contains("audio") || n.contains("wav") {
        "recording"
    } else if n.contains("crm") || n.contains("student id") || n.contains("student_id") {
        "crm_id"
    } else if n.contains("phone") || n.contains("number") || n.contains("ani") || n == "to" {
        "phone"
    } else if n.contains("direction") || n.contains("in/out") {
        "direction"
    } else if n.contains("duration") || n.contains("length") || n.contains("seconds") {
        "duration"
    } else if n.contains("time") || n.contains("date") || n.contains("start") {
        "time"
    } else if n.contains("agent") || n.contains("user") || n.contains("rep") {
        "agent"
    } else if n.contains("note") || n.contains("comment") || n.contains("disposition") {
        "note"
    } else {
        return None;
    };
    Some(f.to_string())
}

fn detected_view(d: Detected, schema: &FieldSchema) -> DetectedView {
    DetectedView {
        encoding: d.encoding.as_str().into(),
        delimiter: d.delimiter.to_string(),
        header_row: d.header_row,
        columns: d
            .columns
            .iter()
            .map(|c| DetectedColumn {
                name: c.clone(),
                contact_field: suggest_contact(schema, c),
                call_field: suggest_call(c),
            })
            .collect(),
        preview: d.preview,
    }
}

/// Reads a sample file (the request body, any text encoding) and says what it found.
#[utoipa::path(post, path = "/api/v1/bulk-templates/detect", operation_id = "detect_bulk_template", request_body(content = String, content_type = "text/csv"), responses(
    (status = 200, description = "Encoding, delimiter, header row, columns with suggested fields, and a preview.", body = DetectedView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 422, description = "The sample cannot be read (`field` is `sample`).", body = ErrorBody)))]
pub async fn detect(
    State(state): State<AppState>,
    auth: Auth,
    req: axum::extract::Request,
) -> ApiResult<Json<DetectedView>> {
    let body = crate::extract::body_bytes(req, &state).await?;
    if body.len() > MAX_SAMPLE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "a sample of at most 5 MB is enough: send the first rows",
        ));
    }
    let found = bulk::detect(&body).map_err(|e| unprocessable("sample", e))?;
    let schema = state.store.field_schema(auth.institution_id()).await?;
    Ok(Json(detected_view(found, &schema)))
}

/// Checks a template input into what the store keeps; every error names its field.
pub async fn checked(
    state: &AppState,
    institution_id: i64,
    input: TemplateInput,
) -> ApiResult<NewBulkTemplate> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(unprocessable(
            "name",
            "give the template a name of 1 to 100 characters",
        ));
    }
    let folder = bulk::normalize_folder(input.folder.as_deref().unwrap_or("/"))
        .map_err(|e| unprocessable("folder", e))?;
    let file_mask = input.file_mask.trim().to_string();
    bulk::validate_mask(&file_mask).map_err(|e| unprocessable("file_mask", e))?;
    let (encoding, delimiter, header_row, sample_columns) = match &input.sample_base64 {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| unprocessable("sample_base64", "the sample is not base64"))?;
            let d = bulk::detect(&bytes).map_err(|e| unprocessable("sample_base64", e))?;
            (
                d.encoding,
                d.delimiter,
                d.header_row as i64,
                Some(d.columns),
            )
        }
        None => {
            let delimiter = match input.delimiter.as_deref() {
                None => ',',
                Some("\\t") | Some("tab") => '\t',
                Some(s) => {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if DELIMITERS.contains(&c) => c,
                        _ => {
                            return Err(unprocessable(
                                "delimiter",
                                "the delimiter is one of , ; | or a tab",
                            ));
                        }
                    }
                }
            };
            let header_row = input.header_row.unwrap_or(1);
            if !(1..=100).contains(&header_row) {
                return Err(unprocessable(
                    "header_row",
                    "the header row is a line number from 1 to 100",
                ));
            }
            (
                input.encoding.unwrap_or(Encoding::Utf8),
                delimiter,
                header_row,
                None,
            )
        }
    };
    if input.columns.is_empty() {
        return Err(unprocessable("columns", "map at least one column"));
    }
    let schema = state.store.field_schema(institution_id).await?;
    let mut seen_names = HashSet::new();
    let mut seen_fields = HashSet::new();
    let mut columns: Vec<(usize, TemplateColumn)> = Vec::new();
    for (i, c) in input.columns.iter().enumerate() {
        let at = |f: &str| format!("columns[{i}].{f}");
        let cname = c.name.trim().to_string();
        if cname.is_empty() {
            return Err(unprocessable(
                at("name"),
                "a column needs its name in the header row",
            ));
        }
        if !seen_names.insert(cname.to_lowercase()) {
            return Err(unprocessable(
                at("name"),
                format!("the column {cname:?} is listed twice"),
            ));
        }
        let pos = match &sample_columns {
            Some(cols) => cols
                .iter()
                .position(|s| s.trim().eq_ignore_ascii_case(&cname))
                .ok_or_else(|| {
                    unprocessable(
                        at("name"),
                        format!(
                            "the sample has no column {cname:?}; its columns are: {}",
                            cols.join(", ")
                        ),
                    )
                })?,
            None => i,
        };
        let field = match c.field.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(f) => {
                let canonical = match input.kind {
                    TemplateKind::Contacts => schema
                        .resolve(f)
                        .map(|r| r.name().to_string())
                        .ok_or_else(|| {
                            ApiError::unprocessable(
                                "unknown_field",
                                at("field"),
                                format!("{f:?} is not a contact field of this institution"),
                            )
                        })?,
                    TemplateKind::Calls => CALL_FIELDS
                        .iter()
                        .find(|(n, _)| *n == f)
                        .map(|(n, _)| n.to_string())
                        .ok_or_else(|| {
                            unprocessable(
                                at("field"),
                                format!(
                                    "{f:?} is not a calls field; use one of {}",
                                    CALL_FIELDS
                                        .iter()
                                        .map(|(n, _)| *n)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                        })?,
                };
                if !seen_fields.insert(canonical.clone()) {
                    return Err(unprocessable(
                        at("field"),
                        format!("two columns are mapped to {canonical}"),
                    ));
                }
                Some(canonical)
            }
        };
        columns.push((
            pos,
            TemplateColumn {
                name: cname,
                field,
                required: c.required,
            },
        ));
    }
    if !columns.iter().any(|(_, c)| c.required) {
        return Err(unprocessable(
            "columns",
            "mark at least one column as required",
        ));
    }
    let match_by = input.match_by.unwrap_or(CallMatch::CrmId);
    let in_input_order: Vec<TemplateColumn> = columns.iter().map(|(_, c)| c.clone()).collect();
    bulk::check_key_column(input.kind, match_by, &in_input_order).map_err(|p| match p.column {
        Some(i) => unprocessable(format!("columns[{i}].required"), p.message),
        None => unprocessable("columns", p.message),
    })?;
    if input.kind == TemplateKind::Calls {
        for need in ["direction", "time"] {
            if !seen_fields.contains(need) {
                return Err(unprocessable(
                    "columns",
                    format!(
                        "a calls template maps a column to {need} (calls match by {})",
                        match_by.as_str()
                    ),
                ));
            }
        }
    }
    // The agreed order is the sample's.
    columns.sort_by_key(|(p, _)| *p);
    Ok(NewBulkTemplate {
        name,
        kind: input.kind,
        folder,
        file_mask,
        encoding,
        delimiter,
        header_row,
        columns: columns.into_iter().map(|(_, c)| c).collect(),
        match_by,
        contact: input
            .contact
            .unwrap_or_else(|| Value::Object(Default::default())),
    })
}

/// The institution's templates.
#[utoipa::path(get, path = "/api/v1/bulk-templates", operation_id = "list_bulk_templates", responses(
    (status = 200, description = "The templates.", body = Vec<TemplateView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<TemplateView>>> {
    Ok(Json(
        state
            .store
            .bulk_templates(auth.institution_id())
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Create a template, from a sample or from settings given.
#[utoipa::path(post, path = "/api/v1/bulk-templates", operation_id = "create_bulk_template", request_body = TemplateInput, responses(
    (status = 201, description = "The template.", body = TemplateView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 409, description = "A template for the folder and mask exists (`conflict`).", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A setting is wrong; `field` names it (`columns[2].field`).", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(input): JsonBody<TemplateInput>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    let t = checked(&state, auth.institution_id(), input).await?;
    let created = state
        .store
        .create_bulk_template(auth.institution_id(), &t)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One template.
#[utoipa::path(get, path = "/api/v1/bulk-templates/{id}", operation_id = "get_bulk_template", params(("id" = i64, Path, description = "The template's ID.")), responses(
    (status = 200, description = "The template.", body = TemplateView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(
        state
            .store
            .bulk_template(auth.institution_id(), id)
            .await?
            .into(),
    ))
}

/// Change a template: its settings are replaced by those sent, which are checked as for a new
/// template (files already ingested keep their reports).
#[utoipa::path(patch, path = "/api/v1/bulk-templates/{id}", operation_id = "update_bulk_template", params(("id" = i64, Path, description = "The template's ID.")), request_body = TemplateInput, responses(
    (status = 200, description = "The template.", body = TemplateView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 409, description = "Another template has the folder and mask.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A setting is wrong; `field` names it.", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(raw): JsonBody<Value>,
) -> ApiResult<Json<TemplateView>> {
    // Another institution's template is not found, whatever the body says.
    state.store.bulk_template(auth.institution_id(), id).await?;
    let input: TemplateInput = crate::extract::parse_json(raw.to_string().as_bytes())?;
    let t = checked(&state, auth.institution_id(), input).await?;
    Ok(Json(
        state
            .store
            .update_bulk_template(auth.institution_id(), id, &t)
            .await?
            .into(),
    ))
}

/// Delete a template.
#[utoipa::path(delete, path = "/api/v1/bulk-templates/{id}", operation_id = "delete_bulk_template", params(("id" = i64, Path, description = "The template's ID.")), responses(
    (status = 204, description = "Deleted."),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_bulk_template(auth.institution_id(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
