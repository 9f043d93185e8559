//! `POST /crm/v3/objects/contacts/search`: filter groups (OR of ANDs), HubSpot's operators,
//! one sort, `after` paging with `limit` ≤ 200 and the 10,000-result cap, free-text `query`.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{READ, parse_body};
use super::error::{ApiError, ApiResult, json_response};
use super::gate::Principal;
use super::properties::{Kind, parse_date_ms};
use super::store::{Contact, Store};
use super::{MAX_SEARCH_LIMIT, SEARCH_RESULT_CAP, Shared};

/// The spec: "Up to 6 groups of filters"; HubSpot's guide: at most 6 filters per group and 18
/// in all.
const MAX_GROUPS: usize = 6;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
/// Properties `query` searches.
const QUERY_PROPERTIES: [&str; 7] = [
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "company",
    "website",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    after: Option<Value>,
    #[serde(default)]
    query: Option<String>,
}

#[derive(Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(default)]
    high_value: Option<Value>,
}

/// A comparable value: numbers (and dates as epoch ms) numerically, text case-insensitively.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Num(f64),
    Text(String),
}

impl Key {
    fn of(kind: Kind, s: &str) -> Option<Key> {
        match kind {
            Kind::Number => s.trim().parse::<f64>().ok().map(Key::Num),
            Kind::Date | Kind::DateTime => parse_date_ms(s.trim()).map(|ms| Key::Num(ms as f64)),
            _ => Some(Key::Text(s.to_lowercase())),
        }
    }

    fn cmp(&self, other: &Key) -> Option<Ordering> {
        match (self, other) {
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b),
            (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Op {
    Eq(Key),
    Neq(Key),
    Lt(Key),
    Lte(Key),
    Gt(Key),
    Gte(Key),
    Between(Key, Key),
    In(Vec<Key>),
    NotIn(Vec<Key>),
    Has,
    NotHas,
    ContainsToken(String),
    NotContainsToken(String),
}

#[derive(Debug)]
struct Compiled {
    property: String,
    kind: Kind,
    op: Op,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compile(store: &Store, f: &Filter) -> ApiResult<Compiled> {
    let def = store.def(&f.property_name).ok_or_else(|| {
        ApiError::validation(format!(
            "Property \"{}\" does not exist on object type contacts",
            f.property_name
        ))
    })?;
    let kind = def.kind;
    let need = |v: &Option<Value>, what: &str| -> ApiResult<String> {
        v.as_ref().and_then(scalar).ok_or_else(|| {
            ApiError::validation(format!(
                "Filter on {} with operator {} requires {what}",
                f.property_name, f.operator
            ))
        })
    };
    let key = |s: String| -> ApiResult<Key> {
        Key::of(kind, &s).ok_or_else(|| {
            ApiError::validation(format!(
                "{s:?} is not a valid value for {} filter on {}",
                f.operator, f.property_name
            ))
        })
    };
    let many = || -> ApiResult<Vec<Key>> {
        let values = f.values.as_ref().filter(|v| !v.is_empty()).ok_or_else(|| {
            ApiError::validation(format!(
                "Filter on {} with operator {} requires values",
                f.property_name, f.operator
            ))
        })?;
        values
            .iter()
            .map(|v| {
                scalar(v)
                    .ok_or_else(|| ApiError::validation("values must be strings"))
                    .and_then(key)
            })
            .collect()
    };
    let op = match f.operator.as_str() {
        "EQ" => Op::Eq(key(need(&f.value, "a value")?)?),
        "NEQ" => Op::Neq(key(need(&f.value, "a value")?)?),
        "LT" => Op::Lt(key(need(&f.value, "a value")?)?),
        "LTE" => Op::Lte(key(need(&f.value, "a value")?)?),
        "GT" => Op::Gt(key(need(&f.value, "a value")?)?),
        "GTE" => Op::Gte(key(need(&f.value, "a value")?)?),
        "BETWEEN" => Op::Between(
            key(need(&f.value, "a value")?)?,
            key(need(&f.high_value, "a highValue")?)?,
        ),
        "IN" => Op::In(many()?),
        "NOT_IN" => Op::NotIn(many()?),
        "HAS_PROPERTY" => Op::Has,
        "NOT_HAS_PROPERTY" => Op::NotHas,
        "CONTAINS_TOKEN" => Op::ContainsToken(need(&f.value, "a value")?.to_lowercase()),
        "NOT_CONTAINS_TOKEN" => Op::NotContainsToken(need(&f.value, "a value")?.to_lowercase()),
        other => {
            return Err(ApiError::validation(format!(
                "Invalid input JSON on line 1, column 1: Cannot deserialize value of type `FilterOperator` from String \"{other}\": not one of the values accepted for Enum class: [BETWEEN, CONTAINS_TOKEN, EQ, GT, GTE, HAS_PROPERTY, IN, LT, LTE, NEQ, NOT_CONTAINS_TOKEN, NOT_HAS_PROPERTY, NOT_IN]"
            )));
        }
    };
    Ok(Compiled {
        property: f.property_name.clone(),
        kind,
        op,
    })
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// A value's tokens: words split on whitespace and punctuation.
fn contains_token(value: &str, token: &str) -> bool {
    let value = value.to_lowercase();
    if glob(token, &value) {
        return true;
    }
    value
        .split(|c: char| c.is_whitespace() || ",;:/()-_.@+".contains(c))
        .filter(|t| !t.is_empty())
        .any(|t| glob(token, t))
}

impl Compiled {
    fn matches(&self, c: &Contact) -> bool {
        let raw = c.get(&self.property);
        let value = raw.as_deref().and_then(|s| Key::of(self.kind, s));
        let cmp = |k: &Key, want: &[Ordering]| {
            value
                .as_ref()
                .and_then(|v| v.cmp(k))
                .is_some_and(|o| want.contains(&o))
        };
        match &self.op {
            Op::Eq(k) => cmp(k, &[Ordering::Equal]),
            Op::Neq(k) => !cmp(k, &[Ordering::Equal]),
            Op::Lt(k) => cmp(k, &[Ordering::Less]),
            Op::Lte(k) => cmp(k, &[Ordering::Less, Ordering::Equal]),
            Op::Gt(k) => cmp(k, &[Ordering::Greater]),
            Op::Gte(k) => cmp(k, &[Ordering::Greater, Ordering::Equal]),
            Op::Between(lo, hi) => {
                cmp(lo, &[Ordering::Greater, Ordering::Equal])
                    && cmp(hi, &[Ordering::Less, Ordering::Equal])
            }
            Op::In(ks) => ks.iter().any(|k| cmp(k, &[Ordering::Equal])),
            Op::NotIn(ks) => !ks.iter().any(|k| cmp(k, &[Ordering::Equal])),
            Op::Has => raw.is_some(),
            Op::NotHas => raw.is_none(),
            Op::ContainsToken(t) => raw.as_deref().is_some_and(|v| contains_token(v, t)),
            Op::NotContainsToken(t) => !raw.as_deref().is_some_and(|v| contains_token(v, t)),
        }
    }
}

struct Sort {
    property: String,
    kind: Kind,
    descending: bool,
}

fn parse_sort(store: &Store, v: &Value) -> ApiResult<Sort> {
    let (property, direction) = match v {
        // The spec types sorts as strings; a leading `-` sorts descending.
        Value::String(s) => match s.strip_prefix('-') {
            Some(p) => (p.to_string(), "DESCENDING".to_string()),
            None => (s.clone(), "ASCENDING".to_string()),
        },
        // HubSpot's guide sends objects: {"propertyName", "direction"}.
        Value::Object(o) => (
            o.get("propertyName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            o.get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING")
                .to_string(),
        ),
        _ => return Err(ApiError::validation("sorts must be strings or objects")),
    };
    let descending = match direction.as_str() {
        "ASCENDING" => false,
        "DESCENDING" => true,
        d => {
            return Err(ApiError::validation(format!(
                "Invalid sort direction {d:?}; use ASCENDING or DESCENDING"
            )));
        }
    };
    let def = store.def(&property).ok_or_else(|| {
        ApiError::validation(format!(
            "Property \"{property}\" does not exist on object type contacts"
        ))
    })?;
    Ok(Sort {
        kind: def.kind,
        property,
        descending,
    })
}

fn query_matches(c: &Contact, q: &str) -> bool {
    QUERY_PROPERTIES.iter().any(|p| {
        c.get(p).is_some_and(|v| {
            let v = v.to_lowercase();
            v.contains(q)
                || v.split(|ch: char| ch.is_whitespace() || ch == '@' || ch == '.')
                    .any(|t| t.starts_with(q))
        })
    })
}

/// `POST /crm/v3/objects/contacts/search`.
pub(crate) async fn search(
    State(shared): State<Arc<Shared>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    p.require(&[READ])?;
    let req: SearchRequest = parse_body(&body)?;
    let limit = req.limit.unwrap_or(10);
    if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}"
        )));
    }
    let after = match &req.after {
        None | Some(Value::Null) => 0usize,
        Some(v) => scalar(v)
            .and_then(|s| {
                if s.is_empty() {
                    Some(0)
                } else {
                    s.parse().ok()
                }
            })
            .ok_or_else(|| ApiError::validation(format!("Invalid paging cursor after: {v}")))?,
    };
    if after >= SEARCH_RESULT_CAP {
        return Err(ApiError::validation(format!(
            "Paging past {SEARCH_RESULT_CAP} results is not supported: a search returns at most {SEARCH_RESULT_CAP} results (after = {after}). Narrow the query, e.g. restart it from the last value seen."
        )));
    }
    if req.filter_groups.len() > MAX_GROUPS {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {} (at most {MAX_GROUPS})",
            req.filter_groups.len()
        )));
    }
    let total_filters: usize = req.filter_groups.iter().map(|g| g.filters.len()).sum();
    if req
        .filter_groups
        .iter()
        .any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
        || total_filters > MAX_FILTERS
    {
        return Err(ApiError::validation(format!(
            "Too many filters: at most {MAX_FILTERS_PER_GROUP} per group and {MAX_FILTERS} in all"
        )));
    }
    if req.sorts.len() > 1 {
        return Err(ApiError::validation(format!(
            "Only one sort is supported, got {}",
            req.sorts.len()
        )));
    }
    let now = shared.clock.now_ms();
    let st = shared.lock();
    let groups: Vec<Vec<Compiled>> = req
        .filter_groups
        .iter()
        .map(|g| g.filters.iter().map(|f| compile(&st.store, f)).collect())
        .collect::<ApiResult<_>>()?;
    let sort = req
        .sorts
        .first()
        .map(|s| parse_sort(&st.store, s))
        .transpose()?;
    let query = req
        .query
        .as_deref()
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let mut hits: Vec<&Contact> = st
        .store
        .contacts
        .values()
        .filter_map(|c| c.searchable(now))
        .filter(|c| !c.archived())
        .filter(|c| groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| f.matches(c))))
        .filter(|c| query.as_deref().is_none_or(|q| query_matches(c, q)))
        .collect();
    if let Some(sort) = &sort {
        hits.sort_by(|a, b| {
            let ka = a.get(&sort.property).and_then(|v| Key::of(sort.kind, &v));
            let kb = b.get(&sort.property).and_then(|v| Key::of(sort.kind, &v));
            let ord = match (ka, kb) {
                (Some(x), Some(y)) => {
                    let o = x.cmp(&y).unwrap_or(Ordering::Equal);
                    if sort.descending { o.reverse() } else { o }
                }
                // Records without a value come last either way.
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            ord.then(a.id.cmp(&b.id))
        });
    }
    let total = hits.len();
    let end = (after + limit as usize).min(total).min(SEARCH_RESULT_CAP);
    let names = st.store.select(&req.properties);
    let results: Vec<Value> = hits
        .get(after.min(total)..end.max(after.min(total)))
        .unwrap_or_default()
        .iter()
        .map(|c| c.render(&names))
        .collect();
    let mut body = json!({"total": total, "results": results});
    if end < total {
        body["paging"] = json!({"next": {"after": end.to_string()}});
    }
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_wildcards() {
        assert!(contains_token("Ana Maria Diaz", "maria"));
        assert!(!contains_token("Ana Maria Diaz", "mar"));
        assert!(contains_token("ana@state.edu", "*@state.edu"));
        assert!(contains_token("ana@state.edu", "state"));
        assert!(contains_token("Ana", "a*"));
        assert!(!contains_token("bob@x.org", "*@state.edu"));
    }

    #[test]
    fn keys_compare_by_type() {
        let a = Key::of(Kind::Number, "9").unwrap();
        let b = Key::of(Kind::Number, "10").unwrap();
        assert_eq!(a.cmp(&b), Some(Ordering::Less));
        let d1 = Key::of(Kind::DateTime, "2024-01-01T00:00:00.000Z").unwrap();
        let d2 = Key::of(Kind::DateTime, "1704067200001").unwrap();
        assert_eq!(d1.cmp(&d2), Some(Ordering::Less));
        assert_eq!(
            Key::of(Kind::String, "ANA")
                .unwrap()
                .cmp(&Key::of(Kind::String, "ana").unwrap()),
            Some(Ordering::Equal)
        );
    }
}
