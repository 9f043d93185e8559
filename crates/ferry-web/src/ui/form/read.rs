//! Reading a posted form back into a config, against the same schema that drew it.

use std::collections::BTreeMap;

use ferry_connectors::describe::Description;
use serde_json::{Map, Value, json};

use super::{Errors, SecretsChange, non_null, ordered, types, widget};

/// A form as posted, read.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    /// The config to check and save. An input that could not be read is left out of it (its
    /// error is in `errors`, its text in `raw`), so that the connector's checks still run on
    /// the rest.
    pub config: Value,
    /// The text of inputs that could not be read, by input name, to show as typed.
    pub raw: BTreeMap<String, String>,
    /// What could not be read.
    pub errors: Errors,
    /// Secrets to set (typed, or kept from a failed save) or remove (`null`).
    pub secrets: SecretsChange,
    /// The secret values that were typed (or kept) in this post, by name, to keep sealed if the
    /// save fails.
    pub typed: BTreeMap<String, String>,
}

/// The posted pairs, by name.
struct Pairs<'a>(&'a [(String, String)]);

impl Pairs<'_> {
    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads a posted form for `description`'s kind. `open` opens a secret kept sealed from a
/// failed save (by name and sealed text).
pub fn read(
    description: &Description,
    pairs: &[(String, String)],
    open: &dyn Fn(&str, &str) -> Option<String>,
) -> Posted {
    let pairs = Pairs(pairs);
    let mut posted = Posted::default();
    let schema = &description.config_schema;
    posted.config = read_object(schema, "config", &pairs, &mut posted).unwrap_or_else(|| json!({}));
    for s in &description.secrets {
        let name = format!("secrets.{}", s.name);
        let typed = pairs.one(&name).unwrap_or("");
        // A single-line secret loses the spaces around it; a key keeps its lines.
        let typed = if s.kind == ferry_connectors::describe::SecretKind::PrivateKey {
            typed.to_string()
        } else {
            typed.trim().to_string()
        };
        let kept = pairs
            .one(&format!("{name}.kept"))
            .filter(|k| !k.is_empty())
            .and_then(|k| open(s.name, k));
        let clear = matches!(pairs.one(&format!("{name}.clear")), Some("on" | "true"));
        if !typed.trim().is_empty() {
            posted.typed.insert(s.name.to_string(), typed.clone());
            posted
                .secrets
                .insert(s.name.to_string(), Value::String(typed));
        } else if let Some(kept) = kept {
            posted.typed.insert(s.name.to_string(), kept.clone());
            posted
                .secrets
                .insert(s.name.to_string(), Value::String(kept));
        } else if clear {
            posted.secrets.insert(s.name.to_string(), Value::Null);
        }
    }
    posted
}

fn read_object(schema: &Value, name: &str, pairs: &Pairs, posted: &mut Posted) -> Option<Value> {
    let props = schema.get("properties").and_then(Value::as_object)?;
    let mut out = Map::new();
    for key in ordered(schema) {
        let Some(field) = props.get(&key) else {
            continue;
        };
        if let Some(v) = read_field(field, &format!("{name}.{key}"), pairs, posted) {
            out.insert(key, v);
        }
    }
    Some(Value::Object(out))
}

/// One field's value; `None` leaves it out of the config.
fn read_field(schema: &Value, name: &str, pairs: &Pairs, posted: &mut Posted) -> Option<Value> {
    let schema = non_null(schema);
    let (kinds, nullable) = types(&schema);
    let kind = kinds.first().copied().unwrap_or("string");
    match widget(&schema) {
        Some("schedule_blocks") => {
            let mut blocks: Vec<u64> = pairs
                .all(name)
                .into_iter()
                .filter_map(|b| b.parse().ok())
                .collect();
            blocks.sort_unstable();
            blocks.dedup();
            return Some(json!(blocks));
        }
        Some("contact_fields") => {
            let fields: Vec<&str> = pairs
                .all(name)
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect();
            return Some(json!(fields));
        }
        Some("filter_rows") => {
            let fields = pairs.all(&format!("{name}.field"));
            let values = pairs.all(&format!("{name}.values"));
            let rows: Vec<Value> = fields
                .iter()
                .zip(values.iter().chain(std::iter::repeat(&"")))
                .filter(|(f, v)| !f.trim().is_empty() || !v.trim().is_empty())
                .map(|(f, v)| {
                    let values: Vec<&str> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .collect();
                    json!({"field": f.trim(), "values": values})
                })
                .collect();
            return Some(Value::Array(rows));
        }
        Some("data_mapping") => {
            let fixed = schema.get("x-ferry-fixed");
            let is_fixed = |l: &str, r: &str| {
                fixed.is_some_and(|f| f["local"] == json!(l) && f["remote"] == json!(r))
            };
            let locals = pairs.all(&format!("{name}.local"));
            let remotes = pairs.all(&format!("{name}.remote"));
            let rows: Vec<Value> = locals
                .iter()
                .zip(remotes.iter().chain(std::iter::repeat(&"")))
                .map(|(l, r)| (l.trim(), r.trim()))
                .filter(|(l, r)| !(is_fixed(l, r) || l.is_empty() && r.is_empty()))
                .map(|(l, r)| json!({"local": l, "remote": r}))
                .collect();
            return Some(Value::Array(rows));
        }
        Some("opt_in_path") => {
            let v = pairs.one(name)?.trim();
            if v.is_empty() {
                return None;
            }
            return match v.parse::<i64>() {
                Ok(n) => Some(json!(n)),
                Err(_) => {
                    posted
                        .errors
                        .add(name, "choose one of the opt-in paths, or None");
                    None
                }
            };
        }
        Some("oauth_account") => {
            let v = pairs.one(name)?.trim();
            if v.is_empty() {
                return None;
            }
            return match v.parse::<i64>() {
                Ok(n) => Some(json!(n)),
                Err(_) => {
                    posted
                        .errors
                        .add(name, "choose one of the connected accounts");
                    None
                }
            };
        }
        _ => {}
    }
    match kind {
        "object" if nullable => {
            // An optional section left empty is left out, with no error of its fields.
            let mut inner = Posted::default();
            let v = read_object(&schema, name, pairs, &mut inner)?;
            if v.as_object().is_none_or(Map::is_empty) {
                return None;
            }
            for (k, m) in inner.errors.all() {
                posted.errors.add(k, m);
            }
            posted.raw.extend(inner.raw);
            Some(v)
        }
        "object" => read_object(&schema, name, pairs, posted),
        "boolean" => {
            if nullable {
                match pairs.one(name)? {
                    "true" => Some(json!(true)),
                    "false" => Some(json!(false)),
                    _ => None,
                }
            } else {
                Some(json!(matches!(pairs.one(name), Some("on" | "true"))))
            }
        }
        "integer" | "number" => {
            let text = pairs.one(name)?.trim();
            if text.is_empty() {
                if !nullable && schema.get("default").is_none() {
                    posted.errors.add(name, "Required");
                }
                return None;
            }
            read_number(&schema, name, text, kind == "integer", posted)
        }
        "array" => {
            let items = non_null(schema.get("items").unwrap_or(&Value::Null));
            let (item_kinds, _) = types(&items);
            if items.get("enum").is_some() {
                let allowed = items["enum"].as_array().cloned().unwrap_or_default();
                let chosen: Vec<Value> = pairs
                    .all(name)
                    .into_iter()
                    .map(|v| json!(v))
                    .filter(|v| allowed.contains(v))
                    .collect();
                return Some(Value::Array(chosen));
            }
            let text = pairs.one(name)?;
            match item_kinds.first().copied() {
                Some("integer" | "number") => {
                    let mut out = Vec::new();
                    for part in text
                        .split([',', '\n'])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                    {
                        match part.parse::<i64>() {
                            Ok(n) => out.push(json!(n)),
                            Err(_) => {
                                posted.errors.add(
                                    name,
                                    &format!("\"{part}\" is not a whole number; separate numbers with commas"),
                                );
                                posted.raw.insert(name.to_string(), text.to_string());
                                return None;
                            }
                        }
                    }
                    Some(Value::Array(out))
                }
                Some("string") | None => Some(Value::Array(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| json!(l))
                        .collect(),
                )),
                Some(_) => match serde_json::from_str::<Value>(text) {
                    Ok(v @ Value::Array(_)) => Some(v),
                    _ => {
                        posted
                            .errors
                            .add(name, "enter a JSON list, e.g. [{\"a\": 1}]");
                        posted.raw.insert(name.to_string(), text.to_string());
                        None
                    }
                },
            }
        }
        _ => {
            let text = pairs.one(name)?;
            let multiline = widget(&schema) == Some("template");
            let text = if multiline { text } else { text.trim() };
            if text.is_empty() && nullable {
                return None;
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !text.is_empty()
                && !allowed.contains(&json!(text))
            {
                posted.errors.add(name, "choose one of the options");
                return None;
            }
            Some(json!(text))
        }
    }
}

fn read_number(
    schema: &Value,
    name: &str,
    text: &str,
    integer: bool,
    posted: &mut Posted,
) -> Option<Value> {
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    let range = match (min, max) {
        (Some(a), Some(b)) => format!(" from {a} to {b}"),
        (Some(a), None) => format!(" of at least {a}"),
        (None, Some(b)) => format!(" of at most {b}"),
        (None, None) => String::new(),
    };
    let what = if integer {
        "a whole number"
    } else {
        "a number"
    };
    let parsed: Option<Value> = if integer {
        text.parse::<i64>().ok().map(|n| json!(n))
    } else {
        text.parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
    };
    let Some(v) = parsed else {
        posted.errors.add(name, &format!("Enter {what}{range}"));
        posted.raw.insert(name.to_string(), text.to_string());
        return None;
    };
    let n = v.as_f64().unwrap_or(0.0);
    if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
        posted.errors.add(name, &format!("Enter {what}{range}"));
        posted.raw.insert(name.to_string(), text.to_string());
        return None;
    }
    Some(v)
}
