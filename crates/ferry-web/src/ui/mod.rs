//! The server-rendered UI (askama templates, vendored htmx). Pages that are not built yet are
//! not in the navigation.

pub mod browse;
pub mod connect;
pub mod form;
pub mod integrations;
pub mod runs;
pub mod synclog;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::contact::{CustomFieldDef, DefaultField, FieldKind};
use ferry_store::{ContactQuery, MessageQuery};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Auth};
use crate::error::ApiError;

/// What the layout needs on every page.
pub struct Nav {
    pub institution: String,
    pub user: String,
    pub csrf: String,
    pub is_admin: bool,
    pub active: &'static str,
    /// The sidebar's integrations: every registered platform by category, (id, name).
    pub platforms: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
}

impl Nav {
    fn new(state: &AppState, auth: &Auth, active: &'static str) -> Nav {
        let mut platforms: Vec<(&'static str, Vec<(&'static str, &'static str)>)> = Vec::new();
        for (category, p, _) in state.registry.platforms() {
            match platforms.last_mut() {
                Some((label, list)) if *label == category.label() => list.push((p.id, p.name)),
                _ => platforms.push((category.label(), vec![(p.id, p.name)])),
            }
        }
        Nav {
            platforms,
            institution: auth.principal.institution.name.clone(),
            user: auth
                .principal
                .user
                .as_ref()
                .map(|u| u.email.clone())
                .unwrap_or_default(),
            csrf: auth.csrf.clone().unwrap_or_default(),
            is_admin: auth.is_admin(),
            active,
        }
    }
}

/// A phone as people read it: `(617) 555-0101` for US numbers, E.164 otherwise.
pub fn fmt_phone(e164: &str) -> String {
    match e164.strip_prefix("+1") {
        Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..])
        }
        _ => e164.to_string(),
    }
}

/// A time in the institution's zone, as people read it.
pub fn fmt_time(t: jiff::Timestamp, tz: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    t.to_zoned(zone)
        .strftime("%b %-d, %Y %-I:%M %p %Z")
        .to_string()
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// A full error page for UI routes.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::NOT_FOUND => "Not found".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    (
        status,
        ErrorPage {
            title,
            message: message.to_string(),
        },
    )
        .into_response()
}

fn ui_error(e: ApiError) -> Response {
    error_page(e.status, &e.message)
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    if auth::is_api(uri.path()) {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see /api/openapi.json",
        )
        .into_response()
    } else {
        error_page(StatusCode::NOT_FOUND, "There is no page at this address.")
    }
}

// ---- Static assets ----------------------------------------------------------------------

const CSS: &str = include_str!("../../assets/ferry.css");
const HTMX: &str = include_str!("../../assets/htmx.min.js");
const OAUTH_JS: &str = include_str!("../../assets/oauth.js");
const FORM_JS: &str = include_str!("../../assets/form.js");

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = match file.as_str() {
        "ferry.css" => (CSS, "text/css; charset=utf-8"),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "oauth.js" => (OAUTH_JS, "text/javascript; charset=utf-8"),
        "form.js" => (FORM_JS, "text/javascript; charset=utf-8"),
        _ => return error_page(StatusCode::NOT_FOUND, "No such file."),
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

// ---- Sign in and out --------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    email: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct NextParam {
    next: Option<String>,
}

/// Only same-site paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/contacts".to_string(),
    }
}

pub async fn login_page(Query(p): Query<NextParam>) -> Response {
    LoginPage {
        error: None,
        email: String::new(),
        next: safe_next(p.next.as_deref()),
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// Signs in. Cross-site posts are refused (login CSRF), and repeated failures are slowed.
pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin_host != host {
            return error_page(
                StatusCode::FORBIDDEN,
                "Sign-in must come from Ferry's own sign-in page.",
            );
        }
    }
    let email_key = format!("email:{}", f.email.trim().to_lowercase());
    let ip_key = format!("ip:{}", addr.ip());
    let keys = [email_key.as_str(), ip_key.as_str()];
    let page = |error: &str, status: StatusCode| {
        (
            status,
            LoginPage {
                error: Some(error.to_string()),
                email: f.email.clone(),
                next: next.clone(),
            },
        )
            .into_response()
    };
    if state.login_guard.blocked(&keys) {
        return page(
            "Too many failed attempts. Wait a few minutes and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = match state.store.verify_login(&f.email, &f.password).await {
        Ok(u) => u,
        Err(e) => return ui_error(e.into()),
    };
    let Some(user) = user else {
        state.login_guard.failed(&keys);
        tracing::info!(client = %addr.ip(), "failed sign-in");
        return page(
            "That email and password do not match.",
            StatusCode::UNAUTHORIZED,
        );
    };
    let memberships = match state.store.memberships(user.id).await {
        Ok(m) => m,
        Err(e) => return ui_error(e.into()),
    };
    let Some(first) = memberships.first() else {
        return page(
            "This account does not belong to any institution yet. Ask an admin to add you.",
            StatusCode::FORBIDDEN,
        );
    };
    state.login_guard.succeeded(&keys);
    match state
        .store
        .create_session(user.id, first.institution.id)
        .await
    {
        Ok(cookie) => (
            [(
                header::SET_COOKIE,
                auth::session_cookie(&cookie, state.config.secure_cookies()),
            )],
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => ui_error(e.into()),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(c) = auth::session_cookie_of(&headers)
        && let Err(e) = state.store.delete_session(&c).await
    {
        return ui_error(e.into());
    }
    (
        [(
            header::SET_COOKIE,
            auth::clear_cookie(state.config.secure_cookies()),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

pub async fn home() -> Redirect {
    Redirect::to("/contacts")
}

// ---- Contacts ---------------------------------------------------------------------------

struct ContactRow {
    id: i64,
    name: String,
    phone: String,
    email: String,
    crm_id: String,
    archived: bool,
    test_user: bool,
    updated: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts.html")]
struct ContactsPage {
    nav: Nav,
    q: String,
    archived: String,
    rows: Vec<ContactRow>,
    total: i64,
    first_link: Option<String>,
    next_link: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ContactsParams {
    q: Option<String>,
    archived: Option<String>,
    after: Option<i64>,
}

const PAGE_SIZE: u32 = 50;

pub async fn contacts_page(
    State(state): State<AppState>,
    auth: Auth,
    Query(p): Query<ContactsParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let q = p.q.unwrap_or_default();
    let archived = p.archived.unwrap_or_default();
    let query = ContactQuery {
        q: Some(q.clone()).filter(|s| !s.trim().is_empty()),
        archived: archived.parse::<bool>().ok(),
        test_user: None,
        updated_since: None,
        after: p.after,
        limit: PAGE_SIZE,
    };
    let (page, total) = match tokio::try_join!(
        state.store.list_contacts(inst.id, &query),
        state.store.count_contacts(inst.id)
    ) {
        Ok(x) => x,
        Err(e) => return ui_error(e.into()),
    };
    let link = |after: Option<i64>| {
        let mut s = format!(
            "/contacts?q={}&archived={}",
            auth::urlencode(&q),
            auth::urlencode(&archived)
        );
        if let Some(a) = after {
            s.push_str(&format!("&after={a}"));
        }
        s
    };
    let rows = page
        .contacts
        .into_iter()
        .map(|c| ContactRow {
            id: c.id,
            name: c.data.display_name(),
            phone: c
                .data
                .phone
                .map(|p| fmt_phone(p.as_str()))
                .unwrap_or_default(),
            email: c
                .data
                .email
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            crm_id: c.data.crm_id.unwrap_or_default(),
            archived: c.data.archived,
            test_user: c.data.test_user,
            updated: fmt_time(c.updated_at, &inst.time_zone),
        })
        .collect();
    ContactsPage {
        nav: Nav::new(&state, &auth, "contacts"),
        first_link: p.after.map(|_| link(None)),
        next_link: page.next_after.map(|a| link(Some(a))),
        q,
        archived,
        rows,
        total,
    }
    .into_response()
}

struct MessageRow {
    id: i64,
    direction: &'static str,
    body: String,
    channel: &'static str,
    kind: &'static str,
    sent: String,
    highlight: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "contact.html")]
struct ContactPage {
    nav: Nav,
    name: String,
    archived: bool,
    test_user: bool,
    fields: Vec<(String, String)>,
    messages: Vec<MessageRow>,
    truncated: bool,
}

#[derive(Deserialize, Default)]
pub struct ContactParams {
    /// A message to highlight (links from exports point here).
    message: Option<i64>,
}

const CONVERSATION_LIMIT: u32 = 500;

pub async fn contact_page(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(p): Query<ContactParams>,
) -> Response {
    let inst = &auth.principal.institution;
    let Ok(id) = crate::api::contacts::parse_id(&id) else {
        return error_page(StatusCode::NOT_FOUND, "No such contact.");
    };
    let contact = match state.store.contact(inst.id, id).await {
        Ok(c) => c,
        Err(e) => return ui_error(e.into()),
    };
    let defs = match state.store.custom_fields(inst.id).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    // The latest messages: read the newest page by sequence, then show them oldest first.
    let total = match state
        .store
        .list_messages(
            inst.id,
            &MessageQuery {
                contact_id: Some(id),
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
    {
        Ok(m) => m,
        Err(e) => return ui_error(e.into()),
    };
    let truncated = total.len() > CONVERSATION_LIMIT as usize;
    let start = total.len().saturating_sub(CONVERSATION_LIMIT as usize);
    let d = &contact.data;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_string());
    let mut fields = vec![
        ("Platform ID".to_string(), contact.id.to_string()),
        (
            DefaultField::FirstName.label().to_string(),
            opt(&d.first_name),
        ),
        (
            DefaultField::LastName.label().to_string(),
            opt(&d.last_name),
        ),
        (
            DefaultField::PreferredName.label().to_string(),
            opt(&d.preferred_name),
        ),
        (
            DefaultField::Phone.label().to_string(),
            d.phone
                .as_ref()
                .map(|p| fmt_phone(p.as_str()))
                .unwrap_or_else(|| "—".into()),
        ),
        (
            DefaultField::Email.label().to_string(),
            d.email
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "—".into()),
        ),
        (
            DefaultField::EnrollmentId.label().to_string(),
            opt(&d.enrollment_id),
        ),
        (DefaultField::CrmId.label().to_string(), opt(&d.crm_id)),
        (
            DefaultField::OptIn.label().to_string(),
            if d.opt_in { "Opted in" } else { "Not opted in" }.to_string(),
        ),
    ];
    for def in &defs {
        let v = d.custom.get(&def.name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => if *b { "Yes" } else { "No" }.to_string(),
            other => other.to_string(),
        });
        fields.push((def.label.clone(), v.unwrap_or_else(|| "—".into())));
    }
    fields.push((
        "Created".into(),
        fmt_time(contact.created_at, &inst.time_zone),
    ));
    fields.push((
        "Updated".into(),
        fmt_time(contact.updated_at, &inst.time_zone),
    ));
    let messages = total[start..]
        .iter()
        .map(|m| MessageRow {
            id: m.id,
            direction: m.direction.as_str(),
            body: m.body.clone(),
            channel: m.channel.label(),
            kind: m.message_type.label(),
            sent: fmt_time(m.sent_at, &inst.time_zone),
            highlight: p.message == Some(m.id),
        })
        .collect();
    ContactPage {
        nav: Nav::new(&state, &auth, "contacts"),
        name: d.display_name(),
        archived: d.archived,
        test_user: d.test_user,
        fields,
        messages,
        truncated,
    }
    .into_response()
}

// ---- Custom fields ----------------------------------------------------------------------

struct FieldRow {
    name: String,
    label: String,
    kind: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "fields.html")]
struct FieldsPage {
    nav: Nav,
    rows: Vec<FieldRow>,
    kinds: Vec<(&'static str, bool)>,
    error: Option<String>,
    saved: Option<String>,
    form_name: String,
    form_label: String,
}

async fn render_fields(
    state: &AppState,
    auth: &Auth,
    status: StatusCode,
    error: Option<String>,
    saved: Option<String>,
    form: Option<&FieldForm>,
) -> Response {
    let defs = match state.store.custom_fields(auth.institution_id()).await {
        Ok(d) => d,
        Err(e) => return ui_error(e.into()),
    };
    let page = FieldsPage {
        nav: Nav::new(state, auth, "fields"),
        rows: defs
            .into_iter()
            .map(|d| FieldRow {
                name: d.name,
                label: d.label,
                kind: d.kind.as_str(),
            })
            .collect(),
        kinds: FieldKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str(),
                    form.map_or(*k == FieldKind::Text, |f| f.kind == k.as_str()),
                )
            })
            .collect(),
        error,
        saved,
        form_name: form.map(|f| f.name.clone()).unwrap_or_default(),
        form_label: form.map(|f| f.label.clone()).unwrap_or_default(),
    };
    (status, page).into_response()
}

pub async fn fields_page(State(state): State<AppState>, auth: Auth) -> Response {
    render_fields(&state, &auth, StatusCode::OK, None, None, None).await
}

#[derive(Deserialize)]
pub struct FieldForm {
    name: String,
    label: String,
    kind: String,
}

pub async fn fields_create(
    State(state): State<AppState>,
    auth: Auth,
    Form(f): Form<FieldForm>,
) -> Response {
    let Ok(kind) = f.kind.parse::<FieldKind>() else {
        return render_fields(
            &state,
            &auth,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(format!("{:?} is not a field type", f.kind)),
            None,
            Some(&f),
        )
        .await;
    };
    let def = CustomFieldDef {
        name: f.name.trim().to_string(),
        label: f.label.clone(),
        kind,
    };
    match state
        .store
        .create_custom_field(auth.institution_id(), &def)
        .await
    {
        Ok(d) => {
            render_fields(
                &state,
                &auth,
                StatusCode::OK,
                None,
                Some(format!("Added {}.", d.label)),
                None,
            )
            .await
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_server_error() {
                return ui_error(e);
            }
            render_fields(&state, &auth, e.status, Some(e.message), None, Some(&f)).await
        }
    }
}
