//! `/api/v1/sftp-accounts`: the institution's accounts on Ferry's own SFTP server (Bulk File
//! Upload): create, list, read, change (enable, password), delete; public keys (upload, remove,
//! or generate a pair whose private key is shown once and never stored).
//!
//! Passwords are write-only: a request sets one (`"password": "…"`) or removes it
//! (`"password": null`); answers only say whether one is set.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_store::{NewSftpKey, SftpAccount, SftpKey};
use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

/// A public key of an account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SftpKeyView {
    /// The key's ID.
    pub id: i64,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub algorithm: String,
    /// The OpenSSH public key line (without its comment).
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The comment of the OpenSSH public key line.
    pub comment: String,
    /// When it was added.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<SftpKey> for SftpKeyView {
    fn from(k: SftpKey) -> Self {
        SftpKeyView {
            id: k.id,
            algorithm: k.algorithm,
            public_key: k.public_key,
            fingerprint: k.fingerprint,
            comment: k.comment,
            created_at: k.created_at,
        }
    }
}

/// A host key of the server, for customers to check on first connection.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HostKeyView {
    /// `ed25519` (the default) or `rsa` (4096 bits).
    pub algorithm: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// Where customers connect.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// `host:port` of Ferry's SFTP server (absent when it does not run in this process).
    pub address: Option<String>,
    /// The server's host keys.
    pub host_keys: Vec<HostKeyView>,
}

/// An SFTP account. The password appears only as set or not.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SftpAccountView {
    /// The account's ID.
    pub id: i64,
    /// The login name (unique on the server).
    pub username: String,
    /// Whether the account may sign in.
    pub enabled: bool,
    /// Whether password logins are possible (off unless a password is set).
    pub password_set: bool,
    /// When the account last signed in; `null` while never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<Timestamp>,
    /// The address it last signed in from.
    pub last_login_ip: Option<String>,
    /// Its public keys.
    pub keys: Vec<SftpKeyView>,
    /// What to give the customer to connect with.
    pub connection: ConnectionView,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

async fn connection(state: &AppState) -> ApiResult<ConnectionView> {
    Ok(ConnectionView {
        address: state.config.sftp_address.clone(),
        host_keys: state
            .store
            .sftp_host_fingerprints()
            .await?
            .into_iter()
            .map(|(algorithm, fingerprint)| HostKeyView {
                algorithm,
                fingerprint,
            })
            .collect(),
    })
}

async fn view(state: &AppState, a: SftpAccount) -> ApiResult<SftpAccountView> {
    Ok(SftpAccountView {
        id: a.id,
        username: a.username,
        enabled: a.enabled,
        password_set: a.password_set,
        last_login_at: a.last_login_at,
        last_login_ip: a.last_login_ip,
        keys: a.keys.into_iter().map(Into::into).collect(),
        connection: connection(state).await?,
        created_at: a.created_at,
        updated_at: a.updated_at,
    })
}

/// A new account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSftpAccount {
    /// 3 to 32 characters: lowercase letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A password (at least 10 characters) to allow password logins; absent: keys only.
    #[serde(default)]
    pub password: Option<String>,
    /// OpenSSH public key lines (`ssh-ed25519 AAAA… comment`).
    #[serde(default)]
    pub public_keys: Vec<String>,
}

fn some_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

/// A change: parts left out stay as they are.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSftpAccount {
    /// Whether the account may sign in; left out, unchanged.
    pub enabled: Option<bool>,
    /// A new password, or `null` to turn password logins off.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
}

/// A public key to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSftpKey {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA… comment`). Required (checked after the
    /// account is found, so another institution's account is a 404 whatever the body).
    #[serde(default)]
    pub public_key: String,
}

/// What key pair to generate.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSftpKey {
    /// `ed25519` (default) or `rsa` (4096 bits).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A comment for the key (default: the username).
    #[serde(default)]
    pub comment: Option<String>,
}

/// A generated key pair: the private key is in this answer only.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GeneratedKeyView {
    /// The new key's public half, as stored.
    pub key: SftpKeyView,
    /// The private key in OpenSSH format. Shown once: Ferry does not keep it.
    pub private_key: String,
}

pub(crate) fn checked_key(line: &str, field: &str) -> ApiResult<NewSftpKey> {
    ferry_sftpd::parse_public_key(line)
        .map_err(|m| ApiError::unprocessable("invalid_value", field, m))
}

pub(crate) fn checked_password(p: &str) -> ApiResult<()> {
    let n = p.chars().count();
    if n < ferry_store::MIN_PASSWORD_LEN || p.len() > 1024 {
        return Err(ApiError::unprocessable(
            "invalid_value",
            "password",
            format!(
                "a password needs at least {} characters",
                ferry_store::MIN_PASSWORD_LEN
            ),
        ));
    }
    Ok(())
}

/// The institution's SFTP accounts.
#[utoipa::path(get, path = "/api/v1/sftp-accounts", operation_id = "list_sftp_accounts", responses(
    (status = 200, description = "The accounts, oldest first.", body = Vec<SftpAccountView>),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<SftpAccountView>>> {
    let mut out = Vec::new();
    for a in state.store.sftp_accounts(auth.institution_id()).await? {
        out.push(view(&state, a).await?);
    }
    Ok(Json(out))
}

/// Create an SFTP account. Every key and the password are checked before anything is saved.
#[utoipa::path(post, path = "/api/v1/sftp-accounts", operation_id = "create_sftp_account", request_body = CreateSftpAccount, responses(
    (status = 201, description = "The new account.", body = SftpAccountView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 409, description = "The username is taken.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A value is not valid; `field` names it.", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<CreateSftpAccount>,
) -> ApiResult<(StatusCode, Json<SftpAccountView>)> {
    let inst = auth.institution_id();
    let mut keys: Vec<NewSftpKey> = Vec::new();
    for (i, line) in req.public_keys.iter().enumerate() {
        let k = checked_key(line, &format!("public_keys[{i}]"))?;
        if keys.iter().any(|e| e.fingerprint == k.fingerprint) {
            return Err(ApiError::unprocessable(
                "invalid_value",
                format!("public_keys[{i}]"),
                "the same key is listed twice",
            ));
        }
        keys.push(k);
    }
    if let Some(p) = &req.password {
        checked_password(p)?;
    }
    let account = state.store.create_sftp_account(inst, &req.username).await?;
    // Everything was checked: the rest cannot fail on the input. Should the database fail
    // here, the account goes again, so no half-made account is left.
    let rest = async {
        for k in &keys {
            state.store.add_sftp_key(inst, account.id, k).await?;
        }
        if let Some(p) = &req.password {
            state
                .store
                .set_sftp_password(inst, account.id, Some(p))
                .await?;
        }
        if req.enabled == Some(false) {
            state
                .store
                .set_sftp_account_enabled(inst, account.id, false)
                .await?;
        }
        state.store.sftp_account(inst, account.id).await
    }
    .await;
    let account = match rest {
        Ok(a) => a,
        Err(e) => {
            let _ = state.store.delete_sftp_account(inst, account.id).await;
            return Err(e.into());
        }
    };
    Ok((StatusCode::CREATED, Json(view(&state, account).await?)))
}

/// One SFTP account.
#[utoipa::path(get, path = "/api/v1/sftp-accounts/{id}", operation_id = "get_sftp_account", params(("id" = i64, Path)), responses(
    (status = 200, description = "The account.", body = SftpAccountView),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<SftpAccountView>> {
    let a = state.store.sftp_account(auth.institution_id(), id).await?;
    Ok(Json(view(&state, a).await?))
}

/// Change an SFTP account: enable or disable it, set or remove its password.
#[utoipa::path(patch, path = "/api/v1/sftp-accounts/{id}", operation_id = "patch_sftp_account", params(("id" = i64, Path)), request_body = PatchSftpAccount, responses(
    (status = 200, description = "The account.", body = SftpAccountView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "A value is not valid; `field` names it.", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<PatchSftpAccount>,
) -> ApiResult<Json<SftpAccountView>> {
    let inst = auth.institution_id();
    state.store.sftp_account(inst, id).await?;
    if let Some(Some(p)) = &req.password {
        checked_password(p)?;
    }
    if let Some(p) = &req.password {
        state
            .store
            .set_sftp_password(inst, id, p.as_deref())
            .await?;
    }
    if let Some(enabled) = req.enabled {
        state
            .store
            .set_sftp_account_enabled(inst, id, enabled)
            .await?;
    }
    let a = state.store.sftp_account(inst, id).await?;
    Ok(Json(view(&state, a).await?))
}

/// Delete an SFTP account with its keys (uploaded files stay on record).
#[utoipa::path(delete, path = "/api/v1/sftp-accounts/{id}", operation_id = "delete_sftp_account", params(("id" = i64, Path)), responses(
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
        .delete_sftp_account(auth.institution_id(), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a public key to an SFTP account.
#[utoipa::path(post, path = "/api/v1/sftp-accounts/{id}/keys", operation_id = "add_sftp_key", params(("id" = i64, Path)), request_body = AddSftpKey, responses(
    (status = 201, description = "The key.", body = SftpKeyView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 409, description = "The account has this key already.", body = ErrorBody),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "Not an accepted OpenSSH public key.", body = ErrorBody)))]
pub async fn add_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<AddSftpKey>,
) -> ApiResult<(StatusCode, Json<SftpKeyView>)> {
    let inst = auth.institution_id();
    state.store.sftp_account(inst, id).await?;
    let key = checked_key(&req.public_key, "public_key")?;
    let k = state.store.add_sftp_key(inst, id, &key).await?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

/// Remove a public key from an SFTP account.
#[utoipa::path(delete, path = "/api/v1/sftp-accounts/{id}/keys/{key_id}", operation_id = "delete_sftp_key", params(("id" = i64, Path), ("key_id" = i64, Path)), responses(
    (status = 204, description = "Removed."),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound)))]
pub async fn delete_key(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, key_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_sftp_key(auth.institution_id(), id, key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Generate a key pair for an SFTP account: the public key is added to the account, the
/// private key (OpenSSH format) is in this answer only and is not kept by Ferry.
#[utoipa::path(post, path = "/api/v1/sftp-accounts/{id}/generate-key", operation_id = "generate_sftp_key", params(("id" = i64, Path)), request_body = GenerateSftpKey, responses(
    (status = 201, description = "The key and, once, its private half.", body = GeneratedKeyView),
    (status = 400, response = d::MalformedJson),
    (status = 401, response = d::Unauthorized),
    (status = 403, response = d::Forbidden),
    (status = 404, response = d::NotFound),
    (status = 413, response = d::PayloadTooLarge),
    (status = 415, response = d::NotJson),
    (status = 422, description = "`type` is not `ed25519` or `rsa`.", body = ErrorBody)))]
pub async fn generate_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<GenerateSftpKey>,
) -> ApiResult<Response> {
    let inst = auth.institution_id();
    let account = state.store.sftp_account(inst, id).await?;
    let kind = match req.kind.as_deref().unwrap_or("ed25519") {
        "ed25519" => ferry_sftpd::KeyType::Ed25519,
        "rsa" => ferry_sftpd::KeyType::Rsa4096,
        other => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "type",
                format!("{other:?} is not a key type: use \"ed25519\" or \"rsa\""),
            ));
        }
    };
    let comment = req.comment.unwrap_or_else(|| account.username.clone());
    let generated = tokio::task::spawn_blocking(move || ferry_sftpd::generate_key(kind, &comment))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let k = state
        .store
        .add_sftp_key(inst, id, &generated.public)
        .await?;
    let body = GeneratedKeyView {
        key: k.into(),
        private_key: generated.private_key.expose_secret().to_string(),
    };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
