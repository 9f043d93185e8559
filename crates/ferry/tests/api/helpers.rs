use ferry_core::tenancy::Role;
use ferry_store::testing::{TestStore, fresh_store};
use ferry_web::{AppState, WebConfig};
use serde_json::Value;

pub const ADMIN_EMAIL: &str = "admin@state.edu";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A running app with one institution, an admin and a viewer token, and a second institution.
pub struct TestApp {
    pub base: String,
    pub store: TestStore,
    pub admin_token: String,
    pub viewer_token: String,
    pub other_admin_token: String,
    pub http: reqwest::Client,
    /// Where recordings are stored (the app plays them from here).
    pub vault: ferry_vault::Vault,
    _vault_dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(WebConfig::default()).await
}

pub async fn spawn_app_with(config: WebConfig) -> TestApp {
    spawn_app_with_hubspot(config, Default::default()).await
}

/// An app whose HubSpot connectors talk to `hubspot` (an emulator, say).
pub async fn spawn_app_with_hubspot(
    config: WebConfig,
    hubspot: ferry_connectors::hubspot::HubSpotSettings,
) -> TestApp {
    spawn_app_with_registry(config, |base| {
        ferry_connectors::Registry::builtin_with(base, &hubspot)
    })
    .await
}

/// An app whose connectors `make` builds from the app's base URL.
pub async fn spawn_app_with_registry(
    config: WebConfig,
    make: impl FnOnce(&str) -> ferry_connectors::Registry,
) -> TestApp {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State University", None)
        .await
        .unwrap();
    let other = store
        .create_institution("other-u", "Other College", None)
        .await
        .unwrap();
    let user = store
        .create_user(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .unwrap();
    store
        .grant_role(user.id, inst.id, Role::Admin)
        .await
        .unwrap();
    let (_, admin_token) = store
        .create_api_token(inst.id, Role::Admin, "tests")
        .await
        .unwrap();
    let (_, viewer_token) = store
        .create_api_token(inst.id, Role::Viewer, "tests")
        .await
        .unwrap();
    let (_, other_admin_token) = store
        .create_api_token(other.id, Role::Admin, "tests")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let registry = make(&base);
    let vault_dir = tempfile::tempdir().unwrap();
    let vault =
        ferry_vault::Vault::local(vault_dir.path(), ferry_vault::VaultKey::generate()).unwrap();
    let state = AppState::new(store.store.clone(), config, registry).with_vault(vault.clone());
    tokio::spawn(async move {
        ferry_web::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        base,
        store,
        admin_token,
        viewer_token,
        other_admin_token,
        http,
        vault,
        _vault_dir: vault_dir,
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends JSON with the admin token; returns status and parsed body (Null when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, &self.admin_token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &self.admin_token, None)
            .await
    }

    /// Creates a contact through the API; returns its id.
    pub async fn contact(&self, first: &str, phone: &str) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/contacts",
                serde_json::json!({"first_name": first, "last_name": "Student", "phone": phone}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// A UI page fetched with a session cookie: its status and body.
    pub async fn page(&self, cookie: &str, path: &str) -> (u16, String) {
        let res = self
            .http
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Signs in through the login form; returns the session cookie and the page's CSRF token.
    pub async fn login(&self) -> (String, String) {
        let res = self
            .http
            .post(self.url("/login"))
            .form(&[
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", "/contacts"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ferry_session="))
            .expect("session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (_, page) = self.page(&cookie, "/contacts").await;
        let csrf = page
            .split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("csrf token in page")
            .to_string();
        (cookie, csrf)
    }
}

/// A headless Chromium, or `None` (the caller returns) when Chromium or chromedriver is missing
/// and this is not CI. Under `CI=true` a missing browser fails the test.
pub async fn browser_or_skip() -> Option<crate::webdriver::Browser> {
    present_or_skip(crate::webdriver::Browser::start().await.unwrap())
}

/// As [`browser_or_skip`], with JavaScript turned off in the browser.
pub async fn browser_without_javascript_or_skip() -> Option<crate::webdriver::Browser> {
    present_or_skip(
        crate::webdriver::Browser::start_without_javascript()
            .await
            .unwrap(),
    )
}

fn present_or_skip(
    browser: Option<crate::webdriver::Browser>,
) -> Option<crate::webdriver::Browser> {
    if browser.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the browser tests: install chromium and chromium-driver"
        );
        eprintln!("SKIPPED: chromium or chromedriver not found");
    }
    browser
}
