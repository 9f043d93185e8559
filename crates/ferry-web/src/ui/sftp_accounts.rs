//! Settings → SFTP accounts: the institution's accounts on Ferry's own SFTP server (Bulk File
//! Upload): create, enable or disable, password, public keys (paste one, or **Generate a key
//! pair for me**: the private key is shown and downloadable once and never stored), delete; the
//! address and host-key fingerprints to give the customer.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use ferry_store::SftpAccount;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{Nav, error_page, fmt_time, ui_error};
use crate::AppState;
use crate::api::sftp_accounts::{checked_key, checked_password};
use crate::auth::Auth;
use crate::error::ApiError;

struct AccountRow {
    id: i64,
    username: String,
    enabled: bool,
    keys: usize,
    password_set: bool,
    last_login: String,
}

struct KeyRow {
    id: i64,
    algorithm: String,
    fingerprint: String,
    comment: String,
    added: String,
}

/// A private key generated for this answer only.
struct NewKey {
    private_key: String,
    /// `data:` URL of the private key, for the download link.
    download: String,
    file_name: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_accounts.html")]
struct AccountsPage {
    nav: Nav,
    address: Option<String>,
    host_keys: Vec<(String, String)>,
    accounts: Vec<AccountRow>,
    error: String,
    error_field: String,
    form_username: String,
    form_public_key: String,
    notice: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_account.html")]
struct AccountPage {
    nav: Nav,
    id: i64,
    username: String,
    enabled: bool,
    password_set: bool,
    last_login: String,
    last_login_ip: String,
    keys: Vec<KeyRow>,
    address: Option<String>,
    host: String,
    port: String,
    host_keys: Vec<(String, String)>,
    error: String,
    error_field: String,
    form_public_key: String,
    notice: Option<String>,
    new_key: Option<NewKey>,
}

#[derive(Template, WebTemplate)]
#[template(path = "sftp_account_delete.html")]
struct DeletePage {
    nav: Nav,
    id: i64,
    username: String,
}

/// A refusal or a success to show on the page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    error: String,
    error_field: String,
    notice: Option<String>,
    form_username: String,
    form_public_key: String,
    new_key: Option<NewKey>,
}

impl Outcome {
    fn refused(e: ApiError) -> Outcome {
        Outcome {
            status: Some(e.status),
            error: e.message,
            // `public_keys[0]` on the create form is its one key field.
            error_field: e
                .field
                .map(|f| f.split('[').next().unwrap_or_default().to_string())
                .unwrap_or_default(),
            ..Outcome::default()
        }
    }

    fn notice(m: impl Into<String>) -> Outcome {
        Outcome {
            notice: Some(m.into()),
            ..Outcome::default()
        }
    }
}

async fn host_keys(state: &AppState) -> Result<Vec<(String, String)>, ApiError> {
    Ok(state.store.sftp_host_fingerprints().await?)
}

fn when(t: Option<jiff::Timestamp>, tz: &str) -> String {
    t.map_or_else(|| "Never".to_string(), |t| fmt_time(t, tz))
}

fn parse_id(raw: &str) -> Option<i64> {
    crate::api::contacts::parse_id(raw).ok()
}

async fn render_list(state: &AppState, auth: &Auth, o: Outcome) -> Response {
    let inst = &auth.principal.institution;
    let tz = inst.time_zone.as_str();
    let (accounts, keys) = match tokio::try_join!(
        async {
            state
                .store
                .sftp_accounts(inst.id)
                .await
                .map_err(ApiError::from)
        },
        host_keys(state)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e),
    };
    let page = AccountsPage {
        nav: Nav::new(state, auth, "sftp_accounts"),
        address: state.config.sftp_address.clone(),
        host_keys: keys,
        accounts: accounts
            .into_iter()
            .map(|a| AccountRow {
                id: a.id,
                keys: a.keys.len(),
                enabled: a.enabled,
                password_set: a.password_set,
                last_login: match (&a.last_login_at, &a.last_login_ip) {
                    (Some(t), Some(ip)) => format!("{} from {ip}", fmt_time(*t, tz)),
                    (t, _) => when(*t, tz),
                },
                username: a.username,
            })
            .collect(),
        error: o.error,
        error_field: o.error_field,
        form_username: o.form_username,
        form_public_key: o.form_public_key,
        notice: o.notice,
    };
    (o.status.unwrap_or(StatusCode::OK), page).into_response()
}

fn split_address(address: Option<&str>) -> (String, String) {
    match address.and_then(|a| a.rsplit_once(':')) {
        Some((h, p)) => (h.trim_matches(['[', ']']).to_string(), p.to_string()),
        None => ("SERVER".to_string(), "2222".to_string()),
    }
}

async fn render_account(state: &AppState, auth: &Auth, id: i64, o: Outcome) -> Response {
    let inst = &auth.principal.institution;
    let tz = inst.time_zone.as_str();
    let account: SftpAccount = match state.store.sftp_account(inst.id, id).await {
        Ok(a) => a,
        Err(e) => return ui_error(e.into()),
    };
    let keys = match host_keys(state).await {
        Ok(k) => k,
        Err(e) => return ui_error(e),
    };
    let (host, port) = split_address(state.config.sftp_address.as_deref());
    let has_new_key = o.new_key.is_some();
    let page = AccountPage {
        nav: Nav::new(state, auth, "sftp_accounts"),
        id: account.id,
        username: account.username,
        enabled: account.enabled,
        password_set: account.password_set,
        last_login: when(account.last_login_at, tz),
        last_login_ip: account.last_login_ip.unwrap_or_default(),
        keys: account
            .keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                algorithm: k.algorithm,
                fingerprint: k.fingerprint,
                comment: k.comment,
                added: fmt_time(k.created_at, tz),
            })
            .collect(),
        address: state.config.sftp_address.clone(),
        host,
        port,
        host_keys: keys,
        error: o.error,
        error_field: o.error_field,
        form_public_key: o.form_public_key,
        notice: o.notice,
        new_key: o.new_key,
    };
    let mut res = (o.status.unwrap_or(StatusCode::OK), page).into_response();
    if has_new_key {
        // A private key is in this page: no cache may keep it.
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Settings → SFTP accounts.
pub async fn list_page(State(state): State<AppState>, auth: Auth) -> Response {
    render_list(&state, &auth, Outcome::default()).await
}

/// One account.
pub async fn account_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    render_account(&state, &auth, id, Outcome::default()).await
}

/// The new-account form.
#[derive(Deserialize)]
pub struct CreateForm {
    username: String,
    #[serde(default)]
    public_key: String,
}

/// Creates an account (with its first public key when one is pasted), then opens its page.
/// The key is checked before anything is saved.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<CreateForm>,
) -> Response {
    let inst = auth.institution_id();
    let refuse = |e: ApiError| Outcome {
        form_username: f.username.clone(),
        form_public_key: f.public_key.clone(),
        ..Outcome::refused(e)
    };
    let key = match f.public_key.trim() {
        "" => None,
        line => match checked_key(line, "public_key") {
            Ok(k) => Some(k),
            Err(e) => return render_list(&state, &auth, refuse(e)).await,
        },
    };
    let account = match state
        .store
        .create_sftp_account(inst, f.username.trim())
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let e = ApiError::from(e);
            if e.is_internal() {
                return ui_error(e);
            }
            return render_list(&state, &auth, refuse(e)).await;
        }
    };
    if let Some(k) = key
        && let Err(e) = state.store.add_sftp_key(inst, account.id, &k).await
    {
        // No half-made account: it goes again.
        let _ = state.store.delete_sftp_account(inst, account.id).await;
        return ui_error(e.into());
    }
    Redirect::to(&format!("/settings/sftp-accounts/{}", account.id)).into_response()
}

/// Enable or disable.
#[derive(Deserialize)]
pub struct EnabledForm {
    enabled: String,
}

/// Enables or disables an account.
pub async fn set_enabled(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Form<EnabledForm>, FormRejection>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    // Another institution's account is a 404 whatever the body.
    if let Err(e) = state.store.sftp_account(auth.institution_id(), id).await {
        return ui_error(e.into());
    }
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return error_page(e.status(), &e.body_text()),
    };
    let enabled = f.enabled == "true";
    if let Err(e) = state
        .store
        .set_sftp_account_enabled(auth.institution_id(), id, enabled)
        .await
    {
        return ui_error(e.into());
    }
    let m = if enabled {
        "The account is enabled: it can sign in."
    } else {
        "The account is disabled: it cannot sign in until it is enabled again."
    };
    render_account(&state, &auth, id, Outcome::notice(m)).await
}

/// Set or remove the password.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    remove: Option<String>,
}

/// Sets the password (turning password logins on) or removes it.
pub async fn set_password(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    // Another institution's account is a 404 whatever the body.
    if let Err(e) = state.store.sftp_account(auth.institution_id(), id).await {
        return ui_error(e.into());
    }
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return error_page(e.status(), &e.body_text()),
    };
    let inst = auth.institution_id();
    if let Err(e) = state.store.sftp_account(inst, id).await {
        return ui_error(e.into());
    }
    let password = if f.remove.is_some() {
        None
    } else {
        if let Err(e) = checked_password(&f.password) {
            return render_account(&state, &auth, id, Outcome::refused(e)).await;
        }
        Some(f.password.as_str())
    };
    if let Err(e) = state.store.set_sftp_password(inst, id, password).await {
        return ui_error(e.into());
    }
    let m = if password.is_some() {
        "The password is set: the account can also sign in with it."
    } else {
        "The password is removed: the account signs in with its keys only."
    };
    render_account(&state, &auth, id, Outcome::notice(m)).await
}

/// A public key to add.
#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    public_key: String,
}

/// Adds a pasted public key.
pub async fn add_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Form<KeyForm>, FormRejection>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    // Another institution's account is a 404 whatever the body.
    if let Err(e) = state.store.sftp_account(auth.institution_id(), id).await {
        return ui_error(e.into());
    }
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return error_page(e.status(), &e.body_text()),
    };
    let inst = auth.institution_id();
    if let Err(e) = state.store.sftp_account(inst, id).await {
        return ui_error(e.into());
    }
    let refuse = |e: ApiError| Outcome {
        form_public_key: f.public_key.clone(),
        ..Outcome::refused(e)
    };
    let key = match checked_key(&f.public_key, "public_key") {
        Ok(k) => k,
        Err(e) => return render_account(&state, &auth, id, refuse(e)).await,
    };
    match state.store.add_sftp_key(inst, id, &key).await {
        Ok(k) => {
            let m = format!("Added the key {}.", k.fingerprint);
            render_account(&state, &auth, id, Outcome::notice(m)).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.is_internal() {
                return ui_error(e);
            }
            render_account(&state, &auth, id, refuse(e)).await
        }
    }
}

/// Removes a public key.
pub async fn delete_key(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> Response {
    let (Some(id), Some(key_id)) = (parse_id(&id), parse_id(&key_id)) else {
        return error_page(StatusCode::NOT_FOUND, "No such key.");
    };
    if let Err(e) = state
        .store
        .delete_sftp_key(auth.institution_id(), id, key_id)
        .await
    {
        return ui_error(e.into());
    }
    render_account(
        &state,
        &auth,
        id,
        Outcome::notice("The key is removed: it can no longer sign in."),
    )
    .await
}

/// What key pair to generate.
#[derive(Deserialize)]
pub struct GenerateForm {
    #[serde(rename = "type", default)]
    kind: String,
}

/// Generates a key pair: the public half is added, the private half shown once.
pub async fn generate_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    form: Result<Form<GenerateForm>, FormRejection>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    // Another institution's account is a 404 whatever the body.
    if let Err(e) = state.store.sftp_account(auth.institution_id(), id).await {
        return ui_error(e.into());
    }
    let f = match form {
        Ok(Form(f)) => f,
        Err(e) => return error_page(e.status(), &e.body_text()),
    };
    let inst = auth.institution_id();
    let account = match state.store.sftp_account(inst, id).await {
        Ok(a) => a,
        Err(e) => return ui_error(e.into()),
    };
    let (kind, file_name) = match f.kind.as_str() {
        "" | "ed25519" => (ferry_sftpd::KeyType::Ed25519, "id_ed25519"),
        "rsa" => (ferry_sftpd::KeyType::Rsa4096, "id_rsa"),
        other => {
            let e = ApiError::unprocessable(
                "invalid_value",
                "type",
                format!("{other:?} is not a key type: choose Ed25519 or RSA 4096"),
            );
            return render_account(&state, &auth, id, Outcome::refused(e)).await;
        }
    };
    let comment = account.username.clone();
    let generated = match tokio::task::spawn_blocking(move || {
        ferry_sftpd::generate_key(kind, &comment)
    })
    .await
    {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return ui_error(ApiError::internal(e)),
        Err(e) => return ui_error(ApiError::internal(e)),
    };
    let k = match state.store.add_sftp_key(inst, id, &generated.public).await {
        Ok(k) => k,
        Err(e) => return ui_error(e.into()),
    };
    let private_key = generated.private_key.expose_secret().to_string();
    let download = format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(private_key.as_bytes())
    );
    let o = Outcome {
        notice: Some(format!("Added the new key {}.", k.fingerprint)),
        new_key: Some(NewKey {
            private_key,
            download,
            file_name,
        }),
        ..Outcome::default()
    };
    render_account(&state, &auth, id, o).await
}

/// Asks before deleting an account.
pub async fn delete_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    match state.store.sftp_account(auth.institution_id(), id).await {
        Ok(a) => DeletePage {
            nav: Nav::new(&state, &auth, "sftp_accounts"),
            id: a.id,
            username: a.username,
        }
        .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

/// Deletes an account and its keys.
pub async fn delete(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such SFTP account.");
    };
    let inst = auth.institution_id();
    let name = match state.store.sftp_account(inst, id).await {
        Ok(a) => a.username,
        Err(e) => return ui_error(e.into()),
    };
    if let Err(e) = state.store.delete_sftp_account(inst, id).await {
        return ui_error(e.into());
    }
    render_list(
        &state,
        &auth,
        Outcome::notice(format!(
            "Deleted the account {name}: it can no longer sign in. The files it uploaded stay on record."
        )),
    )
    .await
}
