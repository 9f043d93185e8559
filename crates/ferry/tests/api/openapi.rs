//! The served OpenAPI document (`/api/openapi.json`): valid against the official OpenAPI 3.1
//! schema, with the facts a schema cannot express, and true to the API it describes.

use std::collections::{BTreeMap, BTreeSet};

use ferry_web::WebConfig;
use ferry_web::auth::Access;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// The OpenAPI Initiative's JSON Schema of OpenAPI 3.1 documents; see its `$comment` for the
/// package it was vendored from.
const OAS_3_1_SCHEMA: &str = include_str!("openapi-3.1/schema.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    doc
}

/// Every operation: (method, path, operation).
fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.as_str(), path.as_str(), op));
            }
        }
    }
    ops
}

/// Follows a local `$ref` (`#/components/...`), if the value is one.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> Option<&'a Value> {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.strip_prefix('#')?),
        None => Some(v),
    }
}

/// The parameters that apply to an operation: the path item's and the operation's own.
fn parameters<'a>(doc: &'a Value, path: &str, op: &'a Value) -> Vec<&'a Value> {
    let item = &doc["paths"][path];
    [&item["parameters"], &op["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|p| deref(doc, p))
        .collect()
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r);
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// What is wrong with the document: schema violations, then what the schema cannot express.
fn document_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();

    let schema: Value = serde_json::from_str(OAS_3_1_SCHEMA).expect("vendored schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("vendored schema compiles");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "the vendored schema is for OpenAPI 3.1; the document says {}",
        doc["openapi"]
    );
    for e in validator.iter_errors(doc) {
        problems.push(format!("schema: {e} (at {})", e.instance_path()));
    }

    let mut operation_ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (method, path, op) in operations(doc) {
        let at = format!("{} {path}", method.to_uppercase());
        // Each `{name}` of the template is declared `in: path`, and nothing else is.
        let template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect();
        let params = parameters(doc, path, op);
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        if declared != template {
            problems.push(format!(
                "{at}: path parameters {declared:?}, but the template has {template:?}"
            ));
        }
        let mut seen = BTreeSet::new();
        for p in &params {
            let key = (p["name"].as_str(), p["in"].as_str());
            if !seen.insert(key) {
                problems.push(format!("{at}: parameter {key:?} is declared twice"));
            }
        }
        match op["operationId"].as_str() {
            Some(id) => operation_ids.entry(id).or_default().push(at),
            None => problems.push(format!("{at} has no operationId")),
        }
    }
    for (id, ats) in operation_ids {
        if ats.len() > 1 {
            problems.push(format!("operationId {id:?} is shared by {ats:?}"));
        }
    }

    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for r in refs {
        let resolves = r
            .strip_prefix('#')
            .is_some_and(|pointer| doc.pointer(pointer).is_some());
        if !resolves {
            problems.push(format!("$ref {r} does not resolve in the document"));
        }
    }
    problems
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let problems = document_problems(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A change that breaks a document.
type Breakage = dyn Fn(&mut Value);

#[tokio::test]
async fn the_validator_catches_what_it_is_there_for() {
    let app = spawn_app().await;
    let good = document(&app).await;
    let broken = |change: &Breakage| {
        let mut doc = good.clone();
        change(&mut doc);
        document_problems(&doc)
    };
    const CONTACTS: &str = "/api/v1/contacts";
    const ONE: &str = "/api/v1/contacts/{id}";
    let cases: [(&str, &Breakage); 5] = [
        ("a query parameter declared in path", &|d| {
            d["paths"][CONTACTS]["get"]["parameters"][0]["in"] = "path".into();
        }),
        ("a template parameter not declared", &|d| {
            d["paths"][ONE]["get"]["parameters"] = Value::Array(vec![]);
        }),
        ("a shared operationId", &|d| {
            d["paths"][ONE]["get"]["operationId"] = "list_contacts".into();
        }),
        ("a dangling $ref", &|d| {
            d["paths"][ONE]["get"]["responses"]["404"]["$ref"] =
                "#/components/responses/Nope".into();
        }),
        (
            "a schema violation (a response without description)",
            &|d| {
                d["paths"][ONE]["get"]["responses"]["200"]
                    .as_object_mut()
                    .unwrap()
                    .remove("description");
            },
        ),
    ];
    for (what, change) in cases {
        assert!(!broken(change).is_empty(), "{what} went unnoticed");
    }
}

/// The document and the route table agree: the same API operations, 401 on every one, 403
/// where a viewer is refused or a cookie session needs the CSRF token, 404 where an id is
/// taken and 413 where a body is.
#[tokio::test]
async fn the_document_matches_the_route_table() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let state = ferry_web::AppState::new(
        app.store.store.clone(),
        Default::default(),
        ferry_connectors::Registry::builtin(&app.base),
    );
    let mut routes: BTreeMap<(String, String), Access> = ferry_web::routes::table(&state)
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .map(|r| {
            (
                (r.method.as_str().to_lowercase(), r.path.to_string()),
                r.access,
            )
        })
        .collect();
    for (method, path, op) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let access = routes
            .remove(&(method.to_string(), path.to_string()))
            .unwrap_or_else(|| panic!("{at} is documented but not served"));
        let documents = |status: &str| op["responses"].get(status).is_some();
        assert!(documents("401"), "{at} documents 401");
        let forbidden = access == Access::Admin || method != "get";
        assert_eq!(documents("403"), forbidden, "{at}: 403 documented");
        assert_eq!(documents("404"), path.contains("{id}"), "{at}: 404");
        assert_eq!(
            documents("413"),
            op.get("requestBody").is_some(),
            "{at}: 413"
        );
        for (status, response) in op["responses"].as_object().unwrap() {
            let response = deref(&doc, response).unwrap();
            if status.starts_with('4') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{at} {status} is in the error shape"
                );
            }
        }
    }
    assert!(routes.is_empty(), "served but not documented: {routes:?}");
}

/// A value of the parameter's schema, as a query string carries it.
fn valid_value(schema: &Value) -> String {
    if let Some(values) = schema["enum"].as_array() {
        return values[0].as_str().unwrap().to_string();
    }
    match schema["type"].as_str() {
        // Form style without explode: the values joined by commas.
        Some("array") => schema["items"]["enum"]
            .as_array()
            .expect("list parameters list their values")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(","),
        Some("integer") => schema["minimum"].as_i64().unwrap_or(1).to_string(),
        Some("boolean") => "true".into(),
        Some("string") if schema["format"] == "date-time" => "2026-09-01T00:00:00Z".into(),
        Some("string") => "ana".into(),
        other => panic!("no valid value for a parameter of type {other:?}"),
    }
}

/// Values the parameter's schema refuses: of the wrong type, out of range, or not one of its
/// values. None for free text.
fn invalid_values(schema: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    match schema["type"].as_str() {
        Some("string") if schema["enum"].is_null() && schema["format"].is_null() => {}
        _ => bad.push("not-valid".to_string()),
    }
    if let Some(min) = schema["minimum"].as_i64() {
        bad.push((min - 1).to_string());
    }
    if let Some(max) = schema["maximum"].as_i64() {
        bad.push((max + 1).to_string());
    }
    bad
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push(if s.is_empty() { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        // Commas stay: they separate a list's values.
        s.push_str(&v.replace(':', "%3A").replace('+', "%2B"));
    }
    s
}

/// Light fuzzing from the document: each list endpoint answers 200 to every declared query
/// parameter with a valid value (one at a time and all together), and 400 in the documented
/// error shape, naming the parameter in `field`, to each invalid one.
#[tokio::test]
async fn list_endpoints_take_the_query_parameters_they_document() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut endpoints = Vec::new();
    for (method, path, op) in operations(&doc) {
        let params: Vec<(&str, &Value)> = parameters(&doc, path, op)
            .into_iter()
            .filter(|p| p["in"] == "query")
            .map(|p| (p["name"].as_str().unwrap(), &p["schema"]))
            .collect();
        if method != "get" || params.is_empty() {
            continue;
        }
        endpoints.push(path);
        assert!(
            op["responses"].get("400").is_some(),
            "GET {path} documents its 400"
        );
        let all: Vec<(&str, String)> = params.iter().map(|(n, s)| (*n, valid_value(s))).collect();
        let mut tries = vec![all.clone()];
        tries.extend(all.iter().map(|p| vec![p.clone()]));
        for pairs in tries {
            let url = format!("{path}{}", query(&pairs));
            let res = app
                .http
                .get(app.url(&url))
                .bearer_auth(&app.admin_token)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert_eq!(status, 200, "GET {url}: {}", res.text().await.unwrap());
        }
        for (name, schema) in &params {
            for value in invalid_values(schema) {
                let url = format!("{path}{}", query(&[(name, value)]));
                let (status, body) = app.get(&url).await;
                assert_eq!(status, 400, "GET {url}: {body}");
                assert_eq!(body["error"]["field"], *name, "GET {url}: {body}");
                assert!(
                    body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                    "GET {url}: {body}"
                );
            }
        }
    }
    assert_eq!(
        endpoints,
        [
            "/api/v1/accounts",
            "/api/v1/audit-log",
            "/api/v1/contacts",
            "/api/v1/messages",
            "/api/v1/outbox",
            "/api/v1/runs",
            "/api/v1/sync-log",
            "/api/v1/sync-log.csv"
        ],
        "the list endpoints"
    );
}

/// The documented 413 and 415 answers are real: every operation that takes a body refuses one
/// over the limit with 413, and one of another content type with 415 exactly where 415 is
/// documented.
#[tokio::test]
async fn bodies_over_the_limit_or_of_another_type_get_the_documented_errors() {
    let app = spawn_app_with(WebConfig {
        max_body_bytes: 1024,
        max_import_bytes: 1024,
        ..Default::default()
    })
    .await;
    let doc = document(&app).await;
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let Some(content) = op["requestBody"]["content"].as_object() else {
            continue;
        };
        checked += 1;
        let at = format!("{} {path}", method.to_uppercase());
        let content_type = content.keys().next().unwrap().clone();
        let url = app.url(&path.replace("{id}", "1"));
        let send = |ct: &str, body: String| {
            app.http
                .request(
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                )
                .bearer_auth(&app.admin_token)
                .header("content-type", ct)
                .body(body)
                .send()
        };
        let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2048));
        let res = send(&content_type, big).await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{at} with a body over the limit: {body}"
        );
        let res = send("text/plain", "{}".into()).await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if op["responses"].get("415").is_some() {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (415, Some("unsupported_media_type")),
                "{at} with text/plain: {body}"
            );
        } else {
            assert_ne!(status, 415, "{at} answers an undocumented 415: {body}");
        }
    }
    assert!(checked >= 9, "{checked} operations take a body");
}
