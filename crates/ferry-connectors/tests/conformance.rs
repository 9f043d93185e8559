//! The connector conformance suite, run over every kind Ferry ships (issue: "a connector
//! conformance suite run over every registered kind"). A new connector passes it before its
//! screens, API schema and error codes can be trusted, because all of those are built from
//! what it says about itself.

use std::collections::BTreeMap;

use ferry_connectors::Registry;
use ferry_connectors::describe::Description;
use serde_json::{Value, json};

fn registry() -> Registry {
    Registry::builtin("https://ferry.example.edu")
}

fn each(check: impl Fn(&Registry, &Description)) {
    let r = registry();
    assert!(!r.is_empty());
    for d in r.descriptions() {
        check(&r, d);
    }
}

#[test]
fn descriptions_match_their_connectors_and_are_complete() {
    each(|r, d| {
        let c = r.get(d.kind).unwrap();
        assert_eq!(c.kind(), d.kind);
        assert_eq!(c.label(), d.label, "{}", d.kind);
        assert!(!d.summary.trim().is_empty(), "{}: no summary", d.kind);
        assert!(
            d.summary.ends_with('.'),
            "{}: summary is a sentence",
            d.kind
        );
        assert!(!d.platform.name.is_empty() && !d.platform.summary.is_empty());
        assert!(
            d.platform
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}: platform id {:?}",
            d.kind,
            d.platform.id
        );
    });
    // Kinds of one platform agree on its card.
    let r = registry();
    let mut cards: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for d in r.descriptions() {
        let card = (d.platform.name, d.platform.summary);
        assert_eq!(
            *cards.entry(d.platform.id).or_insert(card),
            card,
            "{}",
            d.kind
        );
    }
}

#[test]
fn the_default_config_validates() {
    each(|r, d| {
        // A default config may leave the place to connect to empty; with it filled in, it is valid.
        let mut config = d.default_config.clone();
        fill_blanks(&mut config);
        r.validate(d.kind, &config)
            .unwrap_or_else(|e| panic!("{}: default config {config} is refused: {e}", d.kind));
    });
}

/// Fills empty strings with a plausible value (a host name, a user name…).
fn fill_blanks(v: &mut Value) {
    match v {
        Value::String(s) if s.is_empty() => *s = "x1".into(),
        Value::Object(m) => m.values_mut().for_each(fill_blanks),
        Value::Array(a) => a.iter_mut().for_each(fill_blanks),
        _ => {}
    }
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    each(|r, d| {
        let mut config = d.default_config.clone();
        fill_blanks(&mut config);
        config["colour"] = json!("blue");
        let e = r.validate(d.kind, &config).unwrap_err().to_string();
        assert!(e.contains("colour"), "{}: {e}", d.kind);
    });
}

#[test]
fn the_schema_describes_every_field_and_refuses_unknown_ones() {
    each(|_, d| {
        let s = &d.config_schema;
        assert_eq!(s["type"], "object", "{}", d.kind);
        assert_eq!(s["additionalProperties"], false, "{}", d.kind);
        let text = s.to_string();
        assert!(
            !text.contains("$ref"),
            "{}: the schema stands alone",
            d.kind
        );
        // Every property has help text (the config structs' doc comments).
        fn documented(kind: &str, path: &str, s: &Value) {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (name, p) in props {
                    let here = format!("{path}.{name}");
                    assert!(
                        p.get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty()),
                        "{kind}: {here} has no description"
                    );
                    documented(kind, &here, p);
                    for alt in ["anyOf", "oneOf"] {
                        for a in p.get(alt).and_then(Value::as_array).into_iter().flatten() {
                            documented(kind, &here, a);
                        }
                    }
                    if let Some(items) = p.get("items") {
                        documented(kind, &here, items);
                    }
                }
            }
        }
        documented(d.kind, "config", s);
        // The default config's sections are all in the schema.
        for key in d.default_config.as_object().unwrap().keys() {
            assert!(
                s["properties"].get(key).is_some(),
                "{}: default config has {key}, the schema does not",
                d.kind
            );
        }
    });
}

#[test]
fn secrets_are_declared_once_and_explained() {
    each(|r, d| {
        let names: Vec<&str> = d.secret_names().collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{}: {names:?}", d.kind);
        for s in &d.secrets {
            assert!(
                !s.label.is_empty() && !s.help.is_empty(),
                "{}: {}",
                d.kind,
                s.name
            );
            assert!(r.validate_secret_names(d.kind, [s.name]).is_ok());
        }
        assert!(r.validate_secret_names(d.kind, ["not_a_secret"]).is_err());
        // Secrets never appear in the config's schema.
        for s in &d.secrets {
            assert!(
                d.config_schema["properties"].get(s.name).is_none(),
                "{}: secret {} is also a config field",
                d.kind,
                s.name
            );
        }
    });
}

#[test]
fn every_declared_error_code_is_in_the_dictionary_with_meaning_and_next_step() {
    let r = registry();
    let dictionary = r.dictionary();
    assert!(dictionary.windows(2).all(|w| w[0].code < w[1].code));
    for d in r.descriptions() {
        for e in &d.error_codes {
            let entry = dictionary
                .iter()
                .find(|x| x.code == e.code)
                .unwrap_or_else(|| panic!("{}: {} is not in the dictionary", d.kind, e.code));
            assert_eq!(entry, e, "{}: two meanings for {}", d.kind, e.code);
            assert!(
                !e.meaning.is_empty() && !e.next_step.is_empty(),
                "{}",
                e.code
            );
            assert!(
                e.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                e.code
            );
        }
    }
    // The core names no connector's codes: they come from the descriptions.
    assert!(
        ferry_core::errors::DICTIONARY
            .iter()
            .all(|e| !e.code.starts_with("sftp_")),
    );
    assert!(dictionary.iter().any(|e| e.code == "sftp_auth_failed"));
    assert!(dictionary.iter().any(|e| e.code == "missing_crm_id"));
}

/// Every `x-ferry-*` form extension a kind's schema uses names fields it has and widgets the
/// screens draw, so that its form shows every field once: sections and orders name existing
/// fields (or `@secrets`/`@test`), each field is in one section, `@secrets` is placed once, and
/// every field has a title or help for its label.
#[test]
fn the_schema_s_form_extensions_name_real_fields_and_known_widgets() {
    fn walk(kind: &str, path: &str, schema: &Value, placed_secrets: &mut usize) {
        if let Some(w) = schema.get("x-ferry-widget") {
            let w = w.as_str().unwrap_or_default();
            assert!(
                ferry_connectors::describe::FORM_WIDGETS.contains(&w),
                "{kind}: {path} asks for the unknown widget {w:?}"
            );
        }
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(order) = schema.get("x-ferry-order").and_then(Value::as_array) {
            for name in order.iter().map(|n| n.as_str().unwrap()) {
                if name == "@secrets" {
                    *placed_secrets += 1;
                } else if name != "@test" {
                    assert!(
                        props.is_some_and(|p| p.contains_key(name)),
                        "{kind}: {path}'s x-ferry-order names {name:?}, which it does not have"
                    );
                }
            }
        }
        for (name, field) in props.into_iter().flatten() {
            let here = format!("{path}.{name}");
            let has_words = ["title", "description"].iter().any(|k| {
                field
                    .get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.trim().is_empty())
            });
            assert!(has_words, "{kind}: {here} has no title or help");
            let inner = field
                .get("anyOf")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|s| s.get("type") != Some(&json!("null"))))
                .unwrap_or(field);
            walk(kind, &here, inner, placed_secrets);
        }
    }
    each(|_, d| {
        let schema = &d.config_schema;
        let props = schema["properties"].as_object().unwrap();
        let mut placed_secrets = 0;
        if let Some(sections) = schema.get("x-ferry-sections").and_then(Value::as_array) {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for s in sections {
                assert!(
                    s["title"].as_str().is_some_and(|t| !t.is_empty()),
                    "{}: a section has no title",
                    d.kind
                );
                for f in s["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                {
                    if f == "@secrets" {
                        placed_secrets += 1;
                    } else if f != "@test" {
                        // One config struct may serve several kinds; a kind's schema may leave a
                        // section's field out, never have one no section names.
                        *seen.entry(f.to_string()).or_default() += 1;
                    }
                }
            }
            for name in props.keys() {
                assert_eq!(
                    seen.get(name),
                    Some(&1),
                    "{}: {name} is in one section",
                    d.kind
                );
            }
        }
        walk(d.kind, "config", schema, &mut placed_secrets);
        assert!(
            placed_secrets <= 1,
            "{}: @secrets is placed {placed_secrets} times",
            d.kind
        );
    });
}
