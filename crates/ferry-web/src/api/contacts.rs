//! `/api/v1/contacts`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use ferry_core::contact::{Contact, ContactWrite, Raw};
use ferry_store::{ContactQuery, ImportReport, WriteKind, WriteOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryArgs};

/// A contact as the API shows it. `id` is the platform ID.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactView {
    /// The platform ID.
    pub id: i64,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Preferred name.
    pub preferred_name: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Enrollment ID.
    pub enrollment_id: Option<String>,
    /// The ID of the contact's record in the institution's CRM or SIS.
    pub crm_id: Option<String>,
    /// True exactly when `sms_opt_in` is `opted_in` (kept for clients of the yes/no field).
    pub opt_in: bool,
    /// `opted_in`, `opted_out` or `unknown`.
    pub sms_opt_in: String,
    /// When `sms_opt_in` last changed; null while it never did.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sms_opt_in_changed_at: Option<jiff::Timestamp>,
    /// Street address.
    pub street_address: Option<String>,
    /// Street address, second line.
    pub street_address_2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// ZIP or postal code.
    pub zip_code: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// A test user: stored and shown, never synced.
    pub test_user: bool,
    /// Archived contacts are hidden from lists unless asked for.
    pub archived: bool,
    /// Custom fields by name, typed (text, number, `YYYY-MM-DD` dates, booleans, emails, E.164 phones).
    #[schema(value_type = Object)]
    pub custom: BTreeMap<String, Value>,
    /// The institution's change sequence of its last change.
    pub change_seq: i64,
    #[schema(value_type = String, format = DateTime)]
    /// When it was created.
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    /// When it last changed.
    pub updated_at: jiff::Timestamp,
    /// Only in `GET /api/v1/contacts/{id}`: each integration's last sync of the contact, one
    /// entry per integration and direction that touched it (empty when none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<Vec<ContactSyncView>>,
}

/// One integration's last sync of a contact, in one direction.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactSyncView {
    /// The integration.
    pub integration_id: i64,
    /// Its name.
    pub integration_name: String,
    /// Its type, as `GET /api/v1/integration-types` names it.
    pub integration_type: String,
    /// `incoming` (into Ferry) or `outgoing` (from Ferry).
    pub direction: String,
    /// When the integration's last run touched the contact.
    #[schema(value_type = String, format = DateTime)]
    pub last_synced_at: jiff::Timestamp,
    /// `synced`, `failed` or `skipped`.
    pub result: String,
    /// For `failed` and `skipped`: the error dictionary's code (the Sync Log has the message).
    pub code: Option<String>,
    /// The contact's ID in the other system (its CRM ID), the last one known.
    pub remote_id: Option<String>,
}

impl From<ferry_store::ContactSync> for ContactSyncView {
    fn from(s: ferry_store::ContactSync) -> Self {
        ContactSyncView {
            integration_id: s.integration_id,
            integration_name: s.integration_name,
            integration_type: s.integration_kind,
            direction: s.direction.as_str().to_string(),
            last_synced_at: s.last_synced_at,
            result: s.result.as_str().to_string(),
            code: s.code,
            remote_id: s.remote_id,
        }
    }
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        let d = c.data;
        ContactView {
            id: c.id,
            first_name: d.first_name,
            last_name: d.last_name,
            preferred_name: d.preferred_name,
            phone: d.phone.map(|p| p.into_string()),
            email: d.email.map(|e| e.as_str().to_string()),
            enrollment_id: d.enrollment_id,
            crm_id: d.crm_id,
            opt_in: d.opt_in,
            sms_opt_in: d.sms_opt_in.as_str().to_string(),
            sms_opt_in_changed_at: d.sms_opt_in_changed_at,
            street_address: d.street_address,
            street_address_2: d.street_address_2,
            city: d.city,
            state: d.state,
            zip_code: d.zip_code,
            country: d.country,
            test_user: d.test_user,
            archived: d.archived,
            custom: d.custom,
            change_seq: c.change_seq,
            created_at: c.created_at,
            updated_at: c.updated_at,
            sync_status: None,
        }
    }
}

/// Fields of a contact to write. A blank or null value is skipped; `"UNSET"` clears a custom
/// field or first name, last name, preferred name, phone, enrollment ID or CRM ID. A new
/// contact needs first name, last name and phone.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[schema(value_type = Option<String>)]
    /// First name (`UNSET` clears it).
    pub first_name: Option<Value>,
    #[schema(value_type = Option<String>)]
    /// Last name (`UNSET` clears it).
    pub last_name: Option<Value>,
    #[schema(value_type = Option<String>)]
    /// Preferred name (`UNSET` clears it).
    pub preferred_name: Option<Value>,
    /// Any common format; stored as E.164 (US numbers without a country code).
    #[schema(value_type = Option<String>)]
    pub phone: Option<Value>,
    #[schema(value_type = Option<String>)]
    /// Email address.
    pub email: Option<Value>,
    #[schema(value_type = Option<String>)]
    /// Enrollment ID (`UNSET` clears it).
    pub enrollment_id: Option<Value>,
    #[schema(value_type = Option<String>)]
    /// CRM ID (`UNSET` clears it).
    pub crm_id: Option<Value>,
    /// Yes/no; true sets `sms_opt_in` to `opted_in`, false turns `opted_in` into `opted_out`.
    #[schema(value_type = Option<bool>)]
    /// Whether the contact opted in to messages.
    pub opt_in: Option<Value>,
    /// `opted_in`, `opted_out` or `unknown` (case, spaces and hyphens do not matter); Ferry
    /// records when it changes. `UNSET` is refused.
    #[schema(value_type = Option<String>)]
    pub sms_opt_in: Option<Value>,
    /// Address fields: text; blanks are skipped and `UNSET` is refused (seed 001's list of
    /// clearable default fields does not name them).
    #[schema(value_type = Option<String>)]
    pub street_address: Option<Value>,
    /// Street address, second line (`UNSET` clears it).
    #[schema(value_type = Option<String>)]
    pub street_address_2: Option<Value>,
    /// City (`UNSET` clears it).
    #[schema(value_type = Option<String>)]
    pub city: Option<Value>,
    /// State or region (`UNSET` clears it).
    #[schema(value_type = Option<String>)]
    pub state: Option<Value>,
    /// ZIP or postal code (`UNSET` clears it).
    #[schema(value_type = Option<String>)]
    pub zip_code: Option<Value>,
    /// Country (`UNSET` clears it).
    #[schema(value_type = Option<String>)]
    pub country: Option<Value>,
    #[schema(value_type = Option<bool>)]
    /// A test user: never synced.
    pub test_user: Option<Value>,
    /// Custom field values by field name.
    #[schema(value_type = Option<Object>)]
    pub custom: Option<BTreeMap<String, Value>>,
}

impl ContactInput {
    fn pairs(&self) -> Vec<(String, &Value)> {
        let mut v: Vec<(String, &Value)> = [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("preferred_name", &self.preferred_name),
            ("phone", &self.phone),
            ("email", &self.email),
            ("enrollment_id", &self.enrollment_id),
            ("crm_id", &self.crm_id),
            ("opt_in", &self.opt_in),
            ("sms_opt_in", &self.sms_opt_in),
            ("street_address", &self.street_address),
            ("street_address_2", &self.street_address_2),
            ("city", &self.city),
            ("state", &self.state),
            ("zip_code", &self.zip_code),
            ("country", &self.country),
            ("test_user", &self.test_user),
        ]
        .into_iter()
        .filter_map(|(k, val)| val.as_ref().map(|val| (k.to_string(), val)))
        .collect();
        for (k, val) in self.custom.iter().flatten() {
            v.push((k.clone(), val));
        }
        v
    }
}

/// Creates a contact from the input: the one code path of the API and the UI.
pub(crate) async fn create_contact(
    state: &AppState,
    inst: i64,
    input: &ContactInput,
) -> ApiResult<i64> {
    let write = to_write(state, inst, input).await?;
    let outcome = state
        .store
        .apply_contact_writes(inst, &[write], WriteKind::Create)
        .await?
        .remove(0);
    outcome_to_result(outcome)
}

/// Changes a contact's fields from the input: the one code path of the API and the UI.
pub(crate) async fn update_contact(
    state: &AppState,
    inst: i64,
    id: i64,
    input: &ContactInput,
) -> ApiResult<()> {
    let mut write = to_write(state, inst, input).await?;
    write.platform_id = Some(id);
    let outcome = state
        .store
        .apply_contact_writes(inst, &[write], WriteKind::Edit)
        .await?
        .remove(0);
    outcome_to_result(outcome).map(|_| ())
}

/// Parses the input against the institution's fields; custom field names must be custom fields.
async fn to_write(state: &AppState, inst: i64, input: &ContactInput) -> ApiResult<ContactWrite> {
    let schema = state.store.field_schema(inst).await?;
    let pairs = input.pairs();
    for name in input.custom.iter().flat_map(|c| c.keys()) {
        if schema.custom(name).is_none() {
            return Err(ApiError::unprocessable(
                "unknown_field",
                format!("custom.{name}"),
                format!("{name:?} is not a custom field of this institution"),
            ));
        }
    }
    let mut raws = Vec::with_capacity(pairs.len());
    for (name, value) in &pairs {
        let raw = Raw::from_json(value)
            .map_err(|m| ApiError::unprocessable("invalid_value", field_path(name), m))?;
        raws.push((name.as_str(), raw));
    }
    ContactWrite::parse(&schema, raws).map_err(|errs| {
        let e = &errs[0];
        let mut err = ApiError::unprocessable(e.code, field_path(&e.field), e.message.clone());
        if errs.len() > 1 {
            err.message = errs
                .iter()
                .map(|e| format!("{}: {}", field_path(&e.field), e.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
        err
    })
}

fn field_path(name: &str) -> String {
    if name.parse::<ferry_core::contact::DefaultField>().is_ok() {
        name.to_string()
    } else {
        format!("custom.{name}")
    }
}

fn outcome_to_result(o: WriteOutcome) -> ApiResult<i64> {
    o.map(|a| a.contact_id).map_err(|e| {
        let status = match e.code {
            "phone_in_use" | "crm_id_in_use" | "match_conflict" | "conflict" => {
                StatusCode::CONFLICT
            }
            "platform_id_not_found" => StatusCode::NOT_FOUND,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut err = ApiError::new(status, e.code, e.message);
        err.field = e.field.map(|f| field_path(&f));
        err
    })
}

/// Create a contact.
#[utoipa::path(post, path = "/api/v1/contacts", operation_id = "create_contact", request_body = ContactInput, responses(
    (status = 201, description = "The new contact.", body = ContactView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 409, description = "The phone or CRM ID belongs to another contact.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A field is not valid; `field` names it.", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(input): JsonBody<ContactInput>,
) -> ApiResult<(StatusCode, Json<ContactView>)> {
    let inst = auth.institution_id();
    let id = create_contact(&state, inst, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.contact(inst, id).await?.into()),
    ))
}

/// One contact, with its sync status (`sync_status`: each integration's last sync of it).
#[utoipa::path(get, path = "/api/v1/contacts/{id}", operation_id = "get_contact", params(("id" = i64, Path, description = "platform ID")), responses(
    (status = 200, description = "The contact, with `sync_status`.", body = ContactView),
    (status = 401, response = d::Unauthorized),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactView>> {
    let id = parse_id(&id)?;
    let inst = auth.institution_id();
    let mut view: ContactView = state.store.contact(inst, id).await?.into();
    view.sync_status = Some(
        state
            .store
            .contact_syncs(inst, id)
            .await?
            .into_iter()
            .map(ContactSyncView::from)
            .collect(),
    );
    Ok(Json(view))
}

pub(crate) fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(ApiError::not_found)
}

/// Change fields of a contact (same fields and rules as create; nothing is required).
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", operation_id = "update_contact", params(("id" = i64, Path, description = "platform ID")), request_body = ContactInput, responses(
    (status = 200, description = "The contact.", body = ContactView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 409, description = "The phone or CRM ID belongs to another contact.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A field is not valid; `field` names it.", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ContactInput>,
) -> ApiResult<Json<ContactView>> {
    let id = parse_id(&id)?;
    let inst = auth.institution_id();
    update_contact(&state, inst, id, &input).await?;
    Ok(Json(state.store.contact(inst, id).await?.into()))
}

/// Archive a contact (an import or incoming sync of it un-archives it).
#[utoipa::path(post, path = "/api/v1/contacts/{id}/archive", operation_id = "archive_contact", params(("id" = i64, Path, description = "platform ID")), responses(
    (status = 200, description = "The contact.", body = ContactView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactView>> {
    Ok(Json(
        state
            .store
            .set_archived(auth.institution_id(), parse_id(&id)?, true)
            .await?
            .into(),
    ))
}

/// Take a contact out of the archive.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/unarchive", operation_id = "unarchive_contact", params(("id" = i64, Path, description = "platform ID")), responses(
    (status = 200, description = "The contact.", body = ContactView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn unarchive(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactView>> {
    Ok(Json(
        state
            .store
            .set_archived(auth.institution_id(), parse_id(&id)?, false)
            .await?
            .into(),
    ))
}

/// The query parameters of `GET /api/v1/contacts`.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Case-insensitive search of name, email, phone, CRM ID and enrollment ID.
    pub q: Option<String>,
    /// Only archived contacts (`true`) or only contacts not archived (`false`).
    pub archived: Option<bool>,
    /// Only test users (`true`) or only real contacts (`false`).
    pub test_user: Option<bool>,
    /// RFC 3339 time; only contacts changed at or after it.
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_since: Option<String>,
    /// The cursor from the previous page's `next_cursor`.
    pub cursor: Option<i64>,
    /// Page size, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A page of contacts.
pub struct ContactList {
    /// The contacts.
    pub contacts: Vec<ContactView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// List contacts by platform ID, with cursor paging. Test users are included (filter with `test_user=false`).
#[utoipa::path(get, path = "/api/v1/contacts", operation_id = "list_contacts", params(ListParams), responses(
    (status = 200, description = "A page of contacts.", body = ContactList),
    (status = 400, response = d::BadQuery),
    (status = 401, response = d::Unauthorized)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    QueryArgs(p): QueryArgs<ListParams>,
) -> ApiResult<Json<ContactList>> {
    let updated_since = p
        .updated_since
        .as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|_| {
                ApiError::bad_request(
                    "bad_request",
                    "updated_since must be an RFC 3339 time such as 2026-09-01T00:00:00Z",
                )
                .field("updated_since")
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(
            ApiError::bad_request("bad_request", "limit must be between 1 and 500").field("limit"),
        );
    }
    let page = state
        .store
        .list_contacts(
            auth.institution_id(),
            &ContactQuery {
                q: p.q,
                archived: p.archived,
                test_user: p.test_user,
                updated_since,
                after: p.cursor,
                limit,
            },
        )
        .await?;
    Ok(Json(ContactList {
        contacts: page.contacts.into_iter().map(Into::into).collect(),
        next_cursor: page.next_after,
    }))
}

/// Import contacts from CSV (`Content-Type: text/csv`): a header row of field names (custom
/// fields by name; `id` for the platform ID), then one contact per row. Rows match existing
/// contacts by platform ID, else CRM ID and/or phone; each row applies whole or not at all.
#[utoipa::path(post, path = "/api/v1/contacts/import", operation_id = "import_contacts", request_body(content = String, content_type = "text/csv"), responses(
    (status = 200, description = "What the import did, with the rows it skipped.", body = ImportReportView),
    (status = 400, description = "The file as a whole was refused; nothing was written.", body = ErrorBody),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, description = "The file was not sent as `Content-Type: text/csv` (`unsupported_media_type`).", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    auth: Auth,
    req: Request,
) -> ApiResult<Json<ImportReport>> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !ct.starts_with("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file with Content-Type: text/csv",
        ));
    }
    let upload = receive_upload(
        req.into_body().into_data_stream(),
        state.config.max_import_bytes,
    )
    .await?;
    let report = import_upload(&state, auth.institution_id(), &upload).await?;
    Ok(Json(report))
}

/// Writes an uploaded file (a request body's data, or a form's file part) to a temporary file
/// as it arrives, refusing it (413) once it passes `limit` bytes: an upload is never held in
/// memory.
pub(crate) async fn receive_upload<E: std::fmt::Display>(
    stream: impl futures::Stream<Item = Result<axum::body::Bytes, E>>,
    limit: usize,
) -> ApiResult<tempfile::NamedTempFile> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut stream = std::pin::pin!(stream);
    let file = tokio::task::spawn_blocking(tempfile::NamedTempFile::new)
        .await
        .map_err(|e| ApiError::internal(format!("creating the upload file: {e}")))?
        .map_err(|e| ApiError::internal(format!("creating the upload file: {e}")))?;
    let mut out = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| ApiError::internal(format!("opening the upload file: {e}")))?,
    );
    let mut written = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "bad_request",
                format!("the request body cannot be read: {e}"),
            )
        })?;
        written += chunk.len();
        if written > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the file is larger than this server accepts ({})",
                    human_bytes(limit)
                ),
            ));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("writing the upload file: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format!("writing the upload file: {e}")))?;
    Ok(file)
}

/// A size as people read it: `64 MiB`, `1024 bytes`.
pub(crate) fn human_bytes(n: usize) -> String {
    // The largest unit that states the size exactly: a limit is never rounded (1.5 MiB was
    // shown as "1 MiB", and 64 KiB as "65536 bytes").
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod human_bytes_tests {
    #[test]
    fn sizes_are_stated_exactly_in_the_largest_unit_that_fits() {
        use super::human_bytes;
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(3 << 30), "3 GiB");
        assert_eq!(human_bytes(100 << 20), "100 MiB");
        assert_eq!(human_bytes(3 << 19), "1536 KiB");
        assert_eq!(human_bytes(65_536), "64 KiB");
        assert_eq!(human_bytes(1_000), "1000 bytes");
        assert_eq!(human_bytes(0), "0 bytes");
    }
}

/// Imports an uploaded CSV file: the one import of the API and the UI.
pub(crate) async fn import_upload(
    state: &AppState,
    inst: i64,
    upload: &tempfile::NamedTempFile,
) -> ApiResult<ImportReport> {
    Ok(state
        .store
        .import_contacts_csv_file(inst, upload.path(), |_| {})
        .await?)
}

/// The import report (documentation shape of `ImportReport`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportReportView {
    /// Rows that created a contact.
    pub created: u64,
    /// Rows that changed a contact.
    pub updated: u64,
    /// Rows that matched a contact and changed nothing.
    pub unchanged: u64,
    /// Rows not applied; each is listed in `errors` (up to 1,000).
    pub skipped: u64,
    /// The rows not applied, with why.
    pub errors: Vec<ImportRowErrorView>,
    /// Whether more rows were skipped than `errors` lists.
    pub errors_truncated: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
/// A row an import did not apply.
pub struct ImportRowErrorView {
    /// Spreadsheet row number (the header is row 1).
    pub row: u64,
    /// The error dictionary code.
    pub code: String,
    /// The column at fault, if one is.
    pub field: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}
