//! Validation of HTTP responses against published OpenAPI 3.0 documents.
//!
//! A small validator for the subset of OpenAPI 3.0 schema objects that HubSpot's published
//! documents use: `type`, `nullable`, `format` (`int32`, `int64`, `date-time`, `uuid`; other
//! formats are accepted as-is), `enum`, `properties`, `required`, `additionalProperties`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `allOf`/`oneOf`/`anyOf`, and `$ref`s within a
//! document (`#/components/…`). `pattern` is not checked (the documents only use it on path
//! parameters, which are not validated). [`Specs::unsupported_keywords`] lists any keyword a
//! document's response schemas use that this validator would ignore, so a new spec version cannot
//! silently weaken the checks.
//!
//! The HubSpot documents are embedded (see `specs/hubspot/README.md`):
//!
//! ```
//! use ferry_emulators::schema::Specs;
//! let specs = Specs::hubspot();
//! let body = serde_json::json!({"results": []});
//! specs.validate_json("GET", "/crm/v3/objects/contacts?limit=10", 200, &body).unwrap();
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

/// The embedded HubSpot documents, by file name.
pub const HUBSPOT_DOCUMENTS: [(&str, &str); 3] = [
    (
        "crm-contacts-v3.json",
        include_str!("../specs/hubspot/crm-contacts-v3.json"),
    ),
    (
        "crm-properties-v3.json",
        include_str!("../specs/hubspot/crm-properties-v3.json"),
    ),
    (
        "oauth-v1.json",
        include_str!("../specs/hubspot/oauth-v1.json"),
    ),
];

/// Deliberate relaxations of the documents, each backed by an observed behaviour of the service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Accept `null` as the value of an entry of a `properties` map whose schema says
    /// `additionalProperties: {type: string}`. HubSpot returns `null` for a requested property
    /// that has no value (our notes: `properties:{name: string|null}`), while the published
    /// schemas declare the values as non-nullable strings.
    pub nullable_property_values: bool,
}

/// One OpenAPI document.
#[derive(Debug)]
pub struct Document {
    name: String,
    root: Value,
}

impl Document {
    /// Parses a document; `name` is used in messages.
    pub fn parse(name: &str, text: &str) -> Result<Document, serde_json::Error> {
        Ok(Document {
            name: name.to_string(),
            root: serde_json::from_str(text)?,
        })
    }

    /// The document's file name (as given to [`Document::parse`]).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A set of OpenAPI documents, searched together for the operation a response belongs to.
#[derive(Debug)]
pub struct Specs {
    docs: Vec<Document>,
    options: Options,
}

/// Why a response does not conform.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No document has this method and path.
    #[error("no document describes {method} {path}")]
    UnknownOperation { method: String, path: String },
    /// The operation documents neither this status nor a `default` response.
    #[error("{method} {path} documents no response for status {status}")]
    UndocumentedStatus {
        method: String,
        path: String,
        status: u16,
    },
    /// The documented response has a body schema but the body is not JSON.
    #[error("{method} {path} {status}: body is not JSON ({error})")]
    NotJson {
        method: String,
        path: String,
        status: u16,
        error: String,
    },
    /// The documented response has no content but a body was sent.
    #[error("{method} {path} {status}: documented without content, got a body")]
    UnexpectedBody {
        method: String,
        path: String,
        status: u16,
    },
    /// The body violates the schema.
    #[error("{context}: {} violation(s):\n{}", violations.len(), Violations(violations))]
    Invalid {
        context: String,
        violations: Vec<Violation>,
    },
}

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the validated value (`/results/0/id`).
    pub instance_path: String,
    /// Where in the document the violated schema is (`#/components/schemas/SimplePublicObject`).
    pub schema_path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_path.is_empty() {
            "(root)"
        } else {
            &self.instance_path
        };
        write!(f, "{at}: {} [{}]", self.message, self.schema_path)
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in self.0 {
            writeln!(f, "  {v}")?;
        }
        Ok(())
    }
}

/// The schema a documented response carries.
#[derive(Debug, Clone, Copy)]
pub struct ResponseSchema<'a> {
    doc: &'a Document,
    /// `None` when the response is documented without content (e.g. 204).
    schema: Option<&'a Value>,
    /// JSON pointer of the schema in its document, for messages.
    pointer: &'static str,
}

impl Specs {
    /// HubSpot's contacts, properties and OAuth documents with [`Options::nullable_property_values`]
    /// on: the form the connector's tests should use.
    pub fn hubspot() -> &'static Specs {
        static SPECS: OnceLock<Specs> = OnceLock::new();
        SPECS.get_or_init(|| {
            Specs::hubspot_strict().clone_with(Options {
                nullable_property_values: true,
            })
        })
    }

    /// HubSpot's documents exactly as published, without relaxations.
    pub fn hubspot_strict() -> &'static Specs {
        static SPECS: OnceLock<Specs> = OnceLock::new();
        SPECS.get_or_init(|| {
            let docs = HUBSPOT_DOCUMENTS
                .iter()
                .map(|(name, text)| Document::parse(name, text).expect("embedded HubSpot spec"))
                .collect();
            Specs::new(docs, Options::default())
        })
    }

    /// Specs from any documents.
    pub fn new(docs: Vec<Document>, options: Options) -> Specs {
        Specs { docs, options }
    }

    fn clone_with(&self, options: Options) -> Specs {
        Specs {
            docs: self
                .docs
                .iter()
                .map(|d| Document {
                    name: d.name.clone(),
                    root: d.root.clone(),
                })
                .collect(),
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Validates a response body (raw bytes as received) for `method` and `path` (a path, with
    /// or without a query string, or a full URL) and `status`.
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), SchemaError> {
        let response = self.response_schema(method, path, status)?;
        let path = strip_to_path(path);
        match response.schema {
            None => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    Ok(())
                } else {
                    Err(SchemaError::UnexpectedBody {
                        method: method.to_uppercase(),
                        path: path.to_string(),
                        status,
                    })
                }
            }
            Some(_) => {
                let value: Value =
                    serde_json::from_slice(body).map_err(|e| SchemaError::NotJson {
                        method: method.to_uppercase(),
                        path: path.to_string(),
                        status,
                        error: e.to_string(),
                    })?;
                self.check_response(response, method, path, status, &value)
            }
        }
    }

    /// Validates a parsed JSON body; a response documented without content fails.
    pub fn validate_json(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), SchemaError> {
        let response = self.response_schema(method, path, status)?;
        let path = strip_to_path(path);
        if response.schema.is_none() {
            return Err(SchemaError::UnexpectedBody {
                method: method.to_uppercase(),
                path: path.to_string(),
                status,
            });
        }
        self.check_response(response, method, path, status, body)
    }

    /// Validates `value` against the component schema `name` (`#/components/schemas/{name}`) of
    /// the first document that defines it.
    pub fn validate_component(&self, name: &str, value: &Value) -> Result<(), SchemaError> {
        for doc in &self.docs {
            if let Some(schema) = doc.root.pointer(&format!("/components/schemas/{name}")) {
                let mut out = Vec::new();
                let mut ipath = Vec::new();
                self.check(
                    doc,
                    schema,
                    value,
                    &mut ipath,
                    &format!("#/components/schemas/{name}"),
                    &mut out,
                );
                return finish(format!("{} {name}", doc.name), out);
            }
        }
        Err(SchemaError::UnknownOperation {
            method: "component".into(),
            path: name.into(),
        })
    }

    /// The documented response for `method path status` (falling back to `default`).
    pub fn response_schema(
        &self,
        method: &str,
        path: &str,
        status: u16,
    ) -> Result<ResponseSchema<'_>, SchemaError> {
        let path = strip_to_path(path);
        let method_lc = method.to_ascii_lowercase();
        let (doc, op) =
            self.find_operation(&method_lc, path)
                .ok_or_else(|| SchemaError::UnknownOperation {
                    method: method.to_uppercase(),
                    path: path.to_string(),
                })?;
        let responses = op.get("responses").and_then(Value::as_object);
        let status_key = status.to_string();
        let class_key = format!("{}XX", status / 100);
        let response = responses.and_then(|r| {
            r.get(&status_key)
                .or_else(|| r.get(&class_key))
                .or_else(|| r.get("default"))
        });
        let Some(mut response) = response else {
            return Err(SchemaError::UndocumentedStatus {
                method: method.to_uppercase(),
                path: path.to_string(),
                status,
            });
        };
        if let Some(r) = response.get("$ref").and_then(Value::as_str) {
            response = resolve(doc, r).unwrap_or(&Value::Null);
        }
        let content = response.get("content").and_then(Value::as_object);
        let media = content.and_then(|c| {
            c.get("application/json")
                .or_else(|| c.get("*/*"))
                .or_else(|| c.values().next())
        });
        let schema = media.and_then(|m| m.get("schema"));
        Ok(ResponseSchema {
            doc,
            schema,
            pointer: "response",
        })
    }

    fn find_operation(&self, method: &str, path: &str) -> Option<(&Document, &Value)> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(usize, &Document, &Value)> = None;
        for doc in &self.docs {
            let Some(paths) = doc.root.get("paths").and_then(Value::as_object) else {
                continue;
            };
            for (template, item) in paths {
                let Some(op) = item.get(method) else { continue };
                let tsegs: Vec<&str> = template.trim_end_matches('/').split('/').collect();
                if tsegs.len() != segments.len() {
                    continue;
                }
                let mut literal = 0;
                let matches = tsegs.iter().zip(&segments).all(|(t, s)| {
                    if t.starts_with('{') && t.ends_with('}') {
                        !s.is_empty()
                    } else if t == s {
                        literal += 1;
                        true
                    } else {
                        false
                    }
                });
                if matches && best.as_ref().is_none_or(|(score, _, _)| literal > *score) {
                    best = Some((literal, doc, op));
                }
            }
        }
        best.map(|(_, d, op)| (d, op))
    }

    fn check_response(
        &self,
        response: ResponseSchema<'_>,
        method: &str,
        path: &str,
        status: u16,
        value: &Value,
    ) -> Result<(), SchemaError> {
        let schema = response.schema.expect("checked by caller");
        let mut out = Vec::new();
        let mut ipath = Vec::new();
        self.check(
            response.doc,
            schema,
            value,
            &mut ipath,
            response.pointer,
            &mut out,
        );
        finish(
            format!(
                "{} {} {} ({})",
                method.to_uppercase(),
                path,
                status,
                response.doc.name
            ),
            out,
        )
    }

    /// Keywords used by the documents' response and component schemas that this validator does
    /// not check (empty for the embedded HubSpot documents).
    pub fn unsupported_keywords(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for doc in &self.docs {
            if let Some(schemas) = doc
                .root
                .pointer("/components/schemas")
                .and_then(Value::as_object)
            {
                for s in schemas.values() {
                    walk_keywords(s, &mut found);
                }
            }
            let mut media_schemas = Vec::new();
            if let Some(paths) = doc.root.get("paths").and_then(Value::as_object) {
                for item in paths.values().filter_map(Value::as_object) {
                    for op in item.values() {
                        if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                            for r in rs.values() {
                                if let Some(c) = r.get("content").and_then(Value::as_object) {
                                    media_schemas
                                        .extend(c.values().filter_map(|m| m.get("schema")));
                                }
                            }
                        }
                    }
                }
            }
            for s in media_schemas {
                walk_keywords(s, &mut found);
            }
        }
        found
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        doc: &Document,
        schema: &Value,
        inst: &Value,
        ipath: &mut Vec<String>,
        spath: &str,
        out: &mut Vec<Violation>,
    ) {
        let Some(obj) = schema.as_object() else {
            return; // `true`/`{}`-like schemas accept everything
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            match resolve(doc, r) {
                Some(target) => self.check(doc, target, inst, ipath, r, out),
                None => out.push(violation(ipath, spath, format!("unresolvable $ref {r}"))),
            }
            return;
        }
        if inst.is_null() && obj.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str)
            && !type_matches(t, inst)
        {
            out.push(violation(
                ipath,
                spath,
                format!("expected {t}, got {}", kind(inst)),
            ));
            return;
        }
        if let Some(f) = obj.get("format").and_then(Value::as_str)
            && let Some(problem) = format_problem(f, inst)
        {
            out.push(violation(ipath, spath, problem));
        }
        if let Some(values) = obj.get("enum").and_then(Value::as_array)
            && !values.contains(inst)
        {
            out.push(violation(
                ipath,
                spath,
                format!("{inst} is not one of {}", Value::Array(values.clone())),
            ));
        }
        if let Some(s) = inst.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push(violation(ipath, spath, format!("shorter than {min}")));
            }
            if let Some(max) = obj.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push(violation(ipath, spath, format!("longer than {max}")));
            }
        }
        if let Some(map) = inst.as_object() {
            if let Some(required) = obj.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        out.push(violation(
                            ipath,
                            spath,
                            format!("missing required property `{name}`"),
                        ));
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            let additional = obj.get("additionalProperties");
            let lenient_values = self.options.nullable_property_values
                && ipath.last().is_some_and(|k| k == "properties");
            for (key, value) in map {
                ipath.push(key.clone());
                if let Some(p) = props.and_then(|p| p.get(key)) {
                    self.check(doc, p, value, ipath, spath, out);
                } else {
                    match additional {
                        Some(Value::Bool(false)) => {
                            out.push(violation(ipath, spath, "property not allowed".to_string()))
                        }
                        Some(s @ Value::Object(_)) if !(value.is_null() && lenient_values) => {
                            self.check(doc, s, value, ipath, spath, out);
                        }
                        _ => {}
                    }
                }
                ipath.pop();
            }
        }
        if let Some(items) = inst.as_array() {
            if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.push(violation(ipath, spath, format!("fewer than {min} items")));
            }
            if let Some(max) = obj.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                out.push(violation(ipath, spath, format!("more than {max} items")));
            }
            if let Some(item_schema) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    ipath.push(i.to_string());
                    self.check(doc, item_schema, item, ipath, spath, out);
                    ipath.pop();
                }
            }
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(doc, s, inst, ipath, spath, out);
            }
        }
        if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
            let ok = any.iter().any(|s| {
                let mut sub = Vec::new();
                self.check(doc, s, inst, &mut ipath.clone(), spath, &mut sub);
                sub.is_empty()
            });
            if !ok {
                out.push(violation(ipath, spath, "matches none of anyOf".into()));
            }
        }
        if let Some(one) = obj.get("oneOf").and_then(Value::as_array) {
            let mut failures = Vec::new();
            let mut matched = 0;
            for s in one {
                let mut sub = Vec::new();
                self.check(doc, s, inst, &mut ipath.clone(), spath, &mut sub);
                if sub.is_empty() {
                    matched += 1;
                } else {
                    failures.extend(sub);
                }
            }
            if matched != 1 {
                let detail: Vec<String> = failures.iter().map(ToString::to_string).collect();
                out.push(violation(
                    ipath,
                    spath,
                    format!(
                        "matches {matched} of the oneOf alternatives, expected exactly 1 ({})",
                        detail.join("; ")
                    ),
                ));
            }
        }
    }
}

const SUPPORTED_KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "nullable",
    "format",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "allOf",
    "anyOf",
    "oneOf",
    // annotations, no validation meaning
    "description",
    "example",
    "default",
    "title",
    "deprecated",
    "readOnly",
    "writeOnly",
];

fn walk_keywords(schema: &Value, found: &mut BTreeSet<String>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    for (k, v) in obj {
        if !k.starts_with("x-") && !SUPPORTED_KEYWORDS.contains(&k.as_str()) {
            found.insert(k.clone());
        }
        match k.as_str() {
            "properties" => {
                if let Some(p) = v.as_object() {
                    p.values().for_each(|s| walk_keywords(s, found));
                }
            }
            "items" | "additionalProperties" | "not" => walk_keywords(v, found),
            "allOf" | "anyOf" | "oneOf" => {
                if let Some(list) = v.as_array() {
                    list.iter().for_each(|s| walk_keywords(s, found));
                }
            }
            _ => {}
        }
    }
}

fn finish(context: String, violations: Vec<Violation>) -> Result<(), SchemaError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Invalid {
            context,
            violations,
        })
    }
}

fn violation(ipath: &[String], spath: &str, message: String) -> Violation {
    Violation {
        instance_path: ipath
            .iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect(),
        schema_path: spath.to_string(),
        message,
    }
}

fn resolve<'a>(doc: &'a Document, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.root.pointer(pointer)
}

fn strip_to_path(path: &str) -> &str {
    let without_scheme = match path.find("://") {
        Some(i) => {
            let rest = &path[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => path,
    };
    without_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(without_scheme)
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn format_problem(format: &str, v: &Value) -> Option<String> {
    match (format, v) {
        ("int32", Value::Number(n)) => {
            let ok = n.as_i64().is_some_and(|i| i32::try_from(i).is_ok());
            (!ok).then(|| format!("{n} is not an int32"))
        }
        ("int64", Value::Number(n)) => {
            (n.as_i64().is_none()).then(|| format!("{n} is not an int64"))
        }
        ("date-time", Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .err()
            .map(|e| format!("{s:?} is not an RFC 3339 date-time ({e})")),
        ("uuid", Value::String(s)) => (!is_uuid(s)).then(|| format!("{s:?} is not a UUID")),
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hubspot_documents_use_only_supported_keywords() {
        assert!(
            Specs::hubspot().unsupported_keywords().is_empty(),
            "{:?}",
            Specs::hubspot().unsupported_keywords()
        );
    }

    #[test]
    fn finds_operations_preferring_literal_segments() {
        let s = Specs::hubspot_strict();
        // `search` is literal in one template and would match `{contactId}` in none for POST;
        // `batch/read` must not be taken for anything else.
        assert!(
            s.response_schema("POST", "/crm/v3/objects/contacts/search", 200)
                .is_ok()
        );
        assert!(
            s.response_schema("GET", "/crm/v3/objects/contacts/123", 200)
                .is_ok()
        );
        assert!(
            s.response_schema("GET", "/crm/v3/objects/contacts/123/extra", 200)
                .is_err()
        );
        assert!(matches!(
            s.response_schema("PUT", "/crm/v3/objects/contacts/1", 200),
            Err(SchemaError::UnknownOperation { .. })
        ));
        assert!(
            s.response_schema(
                "GET",
                "https://api.hubapi.com/crm/v3/properties/contacts?archived=false",
                200
            )
            .is_ok()
        );
    }

    #[test]
    fn reports_missing_required_wrong_types_and_formats() {
        let s = Specs::hubspot_strict();
        let body = json!({
            "id": 5,
            "properties": {"email": "a@b.c"},
            "createdAt": "yesterday",
            "archived": false
        });
        let err = s
            .validate_json("GET", "/crm/v3/objects/contacts/5", 200, &body)
            .unwrap_err();
        let SchemaError::Invalid { violations, .. } = err else {
            panic!("{err}")
        };
        let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains("/id: expected string")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("missing required property `updatedAt`"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("/createdAt") && m.contains("date-time"))
        );
    }

    #[test]
    fn null_property_values_only_with_the_relaxation() {
        let body = json!({
            "id": "5",
            "properties": {"email": null},
            "createdAt": "2024-01-01T00:00:00.000Z",
            "updatedAt": "2024-01-01T00:00:00.000Z",
            "archived": false
        });
        let path = "/crm/v3/objects/contacts/5";
        assert!(
            Specs::hubspot_strict()
                .validate_json("GET", path, 200, &body)
                .is_err()
        );
        Specs::hubspot()
            .validate_json("GET", path, 200, &body)
            .unwrap();
        // The relaxation is limited to `properties` maps.
        let err = json!({"message": "m", "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
                         "category": "X", "links": {"a": null}});
        assert!(
            Specs::hubspot()
                .validate_json("GET", path, 404, &err)
                .is_err()
        );
    }

    #[test]
    fn one_of_needs_exactly_one_match() {
        let s = Specs::hubspot_strict();
        let ok = json!({"access_token": "a", "refresh_token": "r", "expires_in": 1800,
                        "token_type": "bearer", "token_use": "access_token"});
        s.validate_json("POST", "/oauth/v1/token", 200, &ok)
            .unwrap();
        let neither = json!({"access_token": "a", "expires_in": 1800, "token_type": "bearer"});
        assert!(
            s.validate_json("POST", "/oauth/v1/token", 200, &neither)
                .is_err()
        );
    }

    #[test]
    fn empty_content_responses() {
        let s = Specs::hubspot_strict();
        s.validate_response("DELETE", "/crm/v3/objects/contacts/1", 204, b"")
            .unwrap();
        assert!(
            s.validate_response("DELETE", "/crm/v3/objects/contacts/1", 204, b"{}")
                .is_err()
        );
        let err = br#"{"message":"m","correlationId":"aeb5f871-7f07-4993-9211-075dc63e7cbf","category":"C"}"#;
        s.validate_response("DELETE", "/crm/v3/objects/contacts/1", 400, err)
            .unwrap();
        assert!(matches!(
            s.validate_response("DELETE", "/crm/v3/objects/contacts/1", 400, b"<html>"),
            Err(SchemaError::NotJson { .. })
        ));
    }

    #[test]
    fn int32_and_uuid_formats() {
        assert!(format_problem("int32", &json!(3_000_000_000u64)).is_some());
        assert!(format_problem("int32", &json!(12)).is_none());
        assert!(format_problem("uuid", &json!("not-a-uuid")).is_some());
        assert!(format_problem("uuid", &json!("aeb5f871-7f07-4993-9211-075dc63e7cbf")).is_none());
    }
}
