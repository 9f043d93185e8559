//! Helpers: an emulator on loopback, a session, and a small client.

use ferry_emulators::salesforce::{self, EmulatorConfig, RunningEmulator};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

pub const V: &str = "/services/data/v62.0";

pub struct Env {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `errorCode` of a REST error answer.
    pub fn error_code(&self) -> &str {
        self.body[0]["errorCode"].as_str().unwrap_or_default()
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn env() -> Env {
    env_with(EmulatorConfig::default()).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = salesforce::start(config)
        .await
        .expect("the emulator starts");
    let token = emu.state().issue_tokens(emu.base_url()).access_token;
    Env {
        emu,
        http: http(),
        token,
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{V}/{path}")
        };
        let mut req = self
            .http
            .request(method, self.url(&path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the emulator answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn seed(&self, object: &str, records: Vec<Value>) -> Vec<String> {
        self.emu
            .state()
            .seed(object, records.into_iter().map(obj))
            .expect("seeded")
    }

    /// Every row of a query, following `nextRecordsUrl`.
    pub async fn query_all_pages(&self, soql: &str, batch: Option<usize>) -> (Vec<Value>, usize) {
        let opt = batch.map(|b| format!("batchSize={b}"));
        let headers: Vec<(&str, &str)> = opt
            .as_deref()
            .map(|o| vec![("Sforce-Query-Options", o)])
            .unwrap_or_default();
        let path = format!(
            "query?{}",
            serde_urlencoded::to_string([("q", soql)]).unwrap()
        );
        let mut r = self.call_with(Method::GET, &path, None, &headers).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut rows = Vec::new();
        let mut pages = 1;
        loop {
            rows.extend(r.body["records"].as_array().unwrap().iter().cloned());
            if r.body["done"] == true {
                assert!(r.body.get("nextRecordsUrl").is_none());
                break;
            }
            let next = r.body["nextRecordsUrl"].as_str().unwrap().to_string();
            r = self.get(&next).await;
            assert_eq!(r.status, 200, "{}", r.body);
            pages += 1;
        }
        (rows, pages)
    }
}
