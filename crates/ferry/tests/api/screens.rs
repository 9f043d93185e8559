//! The generic integration screens: the schema form of every registered kind round-trips its
//! default config (issue 10's conformance: the form renders it, and posting it back yields the
//! same config), and a bad save shows every problem at once, beside its field, keeping what was
//! typed.

use std::collections::BTreeMap;

use ferry_web::ui::form::{self, Errors, FormContext};
use serde_json::json;

use crate::helpers::spawn_app;

/// What a browser posts for a form: the successful controls of `html` in document order
/// (inputs, checked boxes, selected options, text areas), leaving out `<template>` rows.
fn form_pairs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        let end = rest.find('>').expect("tags close");
        let tag = &rest[1..end];
        let name_of = |t: &str| t.split_whitespace().next().unwrap_or("").to_lowercase();
        match name_of(tag).as_str() {
            "template" => {
                let close = rest.find("</template>").expect("templates close");
                rest = &rest[close + "</template>".len()..];
                continue;
            }
            "input" => {
                let a = attrs(tag);
                if let Some(name) = a.get("name") {
                    let kind = a.get("type").map_or("text", String::as_str);
                    let value = a.get("value").cloned();
                    match kind {
                        "checkbox" | "radio" => {
                            if a.contains_key("checked") {
                                out.push((name.clone(), value.unwrap_or_else(|| "on".into())));
                            }
                        }
                        "submit" | "button" => {}
                        _ => out.push((name.clone(), value.unwrap_or_default())),
                    }
                }
            }
            "textarea" => {
                let a = attrs(tag);
                let close = rest.find("</textarea>").expect("text areas close");
                if let Some(name) = a.get("name") {
                    out.push((name.clone(), unescape(&rest[end + 1..close])));
                }
                rest = &rest[close..];
            }
            "select" => {
                let a = attrs(tag);
                let close = rest.find("</select>").expect("selects close");
                let inner = &rest[end + 1..close];
                let options: Vec<BTreeMap<String, String>> = inner
                    .split("<option")
                    .skip(1)
                    .map(|o| attrs(&o[..o.find('>').unwrap()]))
                    .collect();
                let chosen = options
                    .iter()
                    .rev()
                    .find(|o| o.contains_key("selected"))
                    .or(options.first());
                if let (Some(name), Some(o)) = (a.get("name"), chosen) {
                    out.push((name.clone(), o.get("value").cloned().unwrap_or_default()));
                }
                rest = &rest[close..];
            }
            _ => {}
        }
        rest = &rest[rest.find('>').unwrap() + 1..];
    }
    out
}

/// A tag's attributes (names lowercased, values unescaped; a bare attribute maps to "").
fn attrs(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let body = tag.trim_start_matches(|c: char| !c.is_whitespace());
    let mut chars = body.char_indices().peekable();
    let bytes = body;
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() || c == '/' {
            continue;
        }
        let mut j = i;
        while j < bytes.len() && !matches!(bytes.as_bytes()[j], b'=' | b' ' | b'\n' | b'\t') {
            j += 1;
        }
        let name = bytes[i..j].to_lowercase();
        let mut value = String::new();
        let mut k = j;
        if k < bytes.len() && bytes.as_bytes()[k] == b'=' {
            k += 1;
            let quote = bytes.as_bytes()[k];
            if quote == b'"' || quote == b'\'' {
                let close = bytes[k + 1..].find(quote as char).unwrap() + k + 1;
                value = unescape(&bytes[k + 1..close]);
                k = close + 1;
            } else {
                let e = bytes[k..]
                    .find(char::is_whitespace)
                    .map_or(bytes.len(), |e| e + k);
                value = unescape(&bytes[k..e]);
                k = e;
            }
        }
        out.insert(name, value);
        while chars.peek().is_some_and(|(p, _)| *p < k) {
            chars.next();
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every registered kind: its form drawn from its default config, posted back as a browser
/// would, reads back to the same config, without an error.
#[test]
fn every_kind_s_form_round_trips_its_default_config() {
    let registry = ferry_connectors::Registry::builtin("http://127.0.0.1:8080");
    assert!(registry.len() >= 5);
    let ctx = FormContext {
        field_options: vec![
            ("id".into(), "Platform ID".into()),
            ("first_name".into(), "First name".into()),
            ("last_name".into(), "Last name".into()),
            ("phone".into(), "Phone".into()),
            ("email".into(), "Email".into()),
            ("crm_id".into(), "CRM ID".into()),
        ],
        ..Default::default()
    };
    for d in registry.descriptions() {
        let errors = Errors::default();
        let html = form::Renderer::new(d, &ctx, &errors, &d.default_config).render();
        let pairs = form_pairs(&html);
        assert!(!pairs.is_empty(), "{}: the form has inputs", d.kind);
        let posted = form::read(d, &pairs, &|_, _| None);
        assert!(
            posted.errors.is_empty(),
            "{}: {:?}\n{pairs:?}",
            d.kind,
            posted.errors.all()
        );
        assert_eq!(
            posted.config, d.default_config,
            "{}: posting the default config back yields it\n{pairs:?}",
            d.kind
        );
        assert!(posted.secrets.is_empty(), "{}: no secret is sent", d.kind);
    }
}

/// A form with many mistakes: every one is shown at once, next to its field and in the summary,
/// in plain words; the first gets the focus; what was typed stays, the password sealed.
#[tokio::test]
async fn a_bad_form_shows_every_error_at_once_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let form: Vec<(&str, &str)> = vec![
        ("_csrf", &csrf),
        ("type", "eab_notes_export"),
        ("name", ""),
        ("enabled", "on"),
        ("config.sftp.username", "eab"),
        ("config.sftp.host", ""),
        ("config.sftp.port", "99999"),
        ("secrets.password", "typed-sftp-pass"),
        ("config.schedule.blocks", "0"),
        ("config.filters.types", "ai_agent"),
        ("config.filters.directions", "incoming"),
        ("config.eab.import_version", "4"),
        ("config.eab.institution_id", ""),
        ("config.eab.group_id", "group_id"),
        ("config.eab.created_by", "Mainstay"),
        ("config.eab.note_reasons", "Outreach"),
        ("config.eab.note_body", "Hi {nmae}"),
    ];
    let res = app
        .http
        .post(app.url("/settings/integrations/new/eab_notes_export"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    for (id, words) in [
        ("name-error", "name is required"),
        ("config-sftp-host-error", "Required"),
        (
            "config-sftp-port-error",
            "Enter a whole number from 1 to 65535",
        ),
        (
            "config-filters-channels-error",
            "select at least one channel",
        ),
        ("config-eab-institution_id-error", "Required"),
        ("config-eab-note_body-error", "{nmae}"),
    ] {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} is shown: {page}"));
        assert!(page[at..at + 300].contains(words), "{id}: {words}");
    }
    assert!(
        page.contains("6 things need fixing; nothing was saved."),
        "{page}"
    );
    let summary = &page[page.find("id=\"form-errors\"").unwrap()..];
    let summary = &summary[..summary.find("</div>").unwrap()];
    assert!(
        !summary.contains("config.") && !summary.contains("expected u16"),
        "plain words: {summary}"
    );
    assert_eq!(
        page.matches(" autofocus").count(),
        1,
        "one field has the focus"
    );
    let focus = page.find(" autofocus").unwrap();
    assert!(
        page[..focus].rfind("<input").unwrap() == page.find("<input id=\"name\"").unwrap(),
        "the first error, the name, has the focus"
    );
    assert!(
        page.contains("value=\"99999\""),
        "the bad port is kept as typed"
    );
    assert!(page.contains("value=\"eab\""), "the username is kept");
    assert!(
        page.contains(">Hi {nmae}</textarea>"),
        "the note body is kept"
    );
    assert!(
        !page.contains("typed-sftp-pass"),
        "the password is never shown"
    );
    assert!(
        page.contains("name=\"secrets.password.kept\""),
        "but kept, sealed"
    );
    assert!(page.contains("kept from your last try"));
    let (_, all) = app.get("/api/v1/integrations").await;
    assert_eq!(all, json!([]), "nothing was saved");
}

/// A saved export's form, posted back as it is drawn, saves the same config (and keeps the
/// write-only password).
#[tokio::test]
async fn a_saved_instance_s_form_saves_its_config_unchanged() {
    let app = spawn_app().await;
    let request = json!({
        "type": "eab_notes_export", "name": "EAB notes", "description": "nightly", "enabled": true,
        "config": {
            "sftp": {"host": "sftp.example.edu", "port": 2222, "username": "eab", "directory": "inbox", "file_prefix": "notes_",
                     "host_key": "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
            "schedule": {"blocks": [0, 7]},
            "filters": {"channels": ["sms"], "types": ["ai_agent", "live_chat"], "directions": ["incoming", "outgoing"]},
            "neutralize_formulas": true,
            "eab": {"import_version": "3", "institution_id": "77", "group_id": "group_id", "dedupe_contacts": true,
                    "is_private": true, "student_viewable": false, "show_on_student_report": true,
                    "created_by": "Mainstay", "note_reasons": "Outreach & advising", "note_body": "{first_name}: \"{message}\" <{url}>"}
        },
        "secrets": {"password": "pw-1"}
    });
    let (status, created) = app.post("/api/v1/integrations", request.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (cookie, _) = app.login().await;
    let (status, page) = app
        .page(&cookie, &format!("/settings/integrations/i/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Set (leave empty to keep)") && !page.contains("pw-1"));
    let start = page
        .find("<form method=\"post\" action=\"/settings/integrations/i/")
        .unwrap();
    let end = page[start..].find("</form>").unwrap() + start;
    let pairs = form_pairs(&page[start..end]);
    let res = app
        .http
        .post(app.url(&format!("/settings/integrations/i/{id}")))
        .header("cookie", &cookie)
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let (_, saved) = app.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(saved["config"], request["config"]);
    assert_eq!(saved["name"], "EAB notes");
    assert_eq!(saved["description"], "nightly");
    assert_eq!(saved["enabled"], true);
    assert_eq!(saved["secrets"]["password"], true);
}
