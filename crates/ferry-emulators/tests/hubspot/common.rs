//! Helpers: an emulator on loopback and a client whose every answer to a documented operation
//! is validated against HubSpot's published schemas.

use std::collections::BTreeSet;
use std::sync::Mutex;

use ferry_emulators::hubspot::{self, EmulatorConfig, RateLimits, RunningEmulator, SeedContact};
use ferry_emulators::schema::{SchemaError, Specs};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";

/// Operations and statuses seen (and validated) by any test in this binary.
pub static SEEN: Mutex<BTreeSet<(String, u16)>> = Mutex::new(BTreeSet::new());

pub struct Env {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_string()
    }
}

/// Config for tests: a private-app token and no limits (tests of limits set their own).
pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        private_app_tokens: vec![TOKEN.to_string()],
        limits: RateLimits::unlimited(),
        ..EmulatorConfig::default()
    }
}

pub async fn env() -> Env {
    env_with(config()).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = hubspot::start(config).await.expect("the emulator starts");
    Env {
        emu,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        token: TOKEN.to_string(),
    }
}

/// Validates an answer if its operation is documented; the edge's HTML pages (414, injected
/// 502/504) are not HubSpot API answers and are skipped.
pub fn validate(method: &str, path: &str, status: u16, headers: &HeaderMap, raw: &[u8]) {
    let html = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    if html && matches!(status, 414 | 502 | 504) {
        return;
    }
    let specs = Specs::hubspot();
    match specs.validate_response(method, path, status, raw) {
        Ok(()) => {
            let template = ferry_template(method, path);
            SEEN.lock().unwrap().insert((template, status));
        }
        Err(SchemaError::UnknownOperation { .. }) => {}
        Err(e) => panic!(
            "{method} {path} answered {status} against the published schema:\n{e}\nbody: {}",
            String::from_utf8_lossy(raw)
        ),
    }
}

fn ferry_template(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    let template = match segs.as_slice() {
        ["", "crm", "v3", "objects", "contacts", id] if !["search", "batch"].contains(id) => {
            "/crm/v3/objects/contacts/{contactId}".to_string()
        }
        ["", "crm", "v3", "properties", _] => "/crm/v3/properties/{objectType}".into(),
        ["", "crm", "v3", "properties", _, _] => {
            "/crm/v3/properties/{objectType}/{propertyName}".into()
        }
        ["", "oauth", "v1", kind, _] => format!("/oauth/v1/{kind}/{{token}}"),
        _ => path.to_string(),
    };
    format!("{method} {template}")
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub fn state(&self) -> &hubspot::HubSpotEmulator {
        self.emu.state()
    }

    /// Sends with the private-app token.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let token = self.token.clone();
        self.call_as(Some(&token), method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.finish(method.as_str(), path, req).await
    }

    pub async fn finish(&self, method: &str, path: &str, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("the emulator answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let raw = res.bytes().await.unwrap().to_vec();
        validate(method, path, status, &headers, &raw);
        let text = String::from_utf8_lossy(&raw).to_string();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a contact through the API; panics unless 201.
    pub async fn create(&self, props: Value) -> String {
        let r = self
            .post(
                "/crm/v3/objects/contacts",
                serde_json::json!({"properties": props}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.id()
    }

    /// Seeds contacts through the Rust API.
    pub fn seed(&self, contacts: Vec<SeedContact>) -> Vec<String> {
        self.state().seed_contacts(contacts).expect("seeded")
    }
}

pub fn contact(pairs: &[(&str, &str)]) -> SeedContact {
    SeedContact::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}
