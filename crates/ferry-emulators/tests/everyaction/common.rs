//! An emulator on loopback and a client that does not follow redirects (VAN's 302s are
//! answers, not hops).

use ferry_emulators::everyaction::{self, EmulatorConfig, RunningEmulator};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const KEY: &str = "0b5e1f3c-9a0d-4c7e-8d2a-6f1e2d3c4b5a";

pub struct Env {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
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

    /// The first error's code and text.
    pub fn error(&self) -> (String, String) {
        let e = &self.body["errors"][0];
        (
            e["code"].as_str().unwrap_or_default().to_string(),
            e["text"].as_str().unwrap_or_default().to_string(),
        )
    }
}

pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        api_key: KEY.into(),
        app_name: "ferry-tests".into(),
        rate_limit_per_second: u32::MAX,
        ..EmulatorConfig::default()
    }
}

pub async fn env() -> Env {
    env_with(config()).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = everyaction::start(config)
        .await
        .expect("the emulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env { emu, http }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub fn emu(&self) -> &everyaction::EveryActionEmulator {
        self.emu.state()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("the emulator answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// An authenticated request (`ferry-tests` / `KEY|1`).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth("ferry-tests", Some(format!("{KEY}|1")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A request with other credentials (or none).
    pub async fn get_as(&self, path: &str, auth: Option<(&str, &str)>) -> Resp {
        let mut req = self.http.get(self.url(path));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        self.send(req).await
    }

    /// A request without credentials (file downloads).
    pub async fn get_plain(&self, url: &str) -> Resp {
        self.send(self.http.get(url)).await
    }
}
