//! Seed 003's "Setup from a sample" in a real browser, as an admin walks it: Inbound files → Bulk
//! File Upload, paste a sample, check the mapping Ferry suggests, change it with the selects, a
//! refused save (two columns on one field) with the error beside the column and nothing saved,
//! another (no required column that finds the contact),
//! then the template saved and listed with its mapping, exactly as the API returns it; axe-core
//! on every step and a screenshot of the mapping step.

use serde_json::{Value, json};

use crate::browser::{fill, sign_in};
use crate::browser_contacts::screenshot;
use crate::browser_runs::axe_violations;
use crate::helpers::spawn_app;
use crate::webdriver::Browser;

/// A contacts export: the phone, names and email Ferry knows by other names, a column nobody
/// imports, and one for a custom field (after the one left out, so the form's rows and the
/// columns sent differ).
const SAMPLE: &str = "Mobile,Given Name,Surname,E-mail,Source,Intended Major\n\
6175550101,Ana,Lopez,ana@example.edu,fair,Biology\n\
6175550102,Ben,Okafor,ben@example.edu,web,History\n";

/// The axe violations of the page the browser is on, each prefixed with `step`.
async fn checked(browser: &Browser, step: &str) -> Vec<String> {
    axe_violations(browser)
        .await
        .into_iter()
        .map(|v| format!("{step}: {v}"))
        .collect()
}

/// A DOM property of the element `css` (`value`, `checked`).
async fn prop(browser: &Browser, css: &str, name: &str) -> Value {
    browser.find(css).await.unwrap().prop(name).await.unwrap()
}

/// The value selected in each column's Ferry field select, in column order.
async fn mapping_shown(browser: &Browser) -> Vec<(String, bool)> {
    let mut shown = Vec::new();
    for i in 0..6 {
        let field = prop(browser, &format!("#col_field_{i}"), "value").await;
        let required = prop(browser, &format!("#col_required_{i}"), "checked").await;
        shown.push((
            field.as_str().unwrap().to_string(),
            required.as_bool().unwrap(),
        ));
    }
    shown
}

#[tokio::test]
async fn setup_from_a_sample_maps_columns_and_saves_a_template_in_the_browser() {
    let Some(browser) = crate::helpers::browser_or_skip().await else {
        return;
    };
    let app = spawn_app().await;
    let (status, _) = app
        .post(
            "/api/v1/fields",
            json!({"name": "major", "label": "Major", "kind": "text"}),
        )
        .await;
    assert_eq!(status, 201);
    let mut violations = Vec::new();

    browser.goto(&app.url("/login")).await.unwrap();
    sign_in(&browser).await;
    browser.find("h1").await.unwrap();

    // Inbound files → Bulk File Upload, from the navigation.
    browser
        .click_on("nav.sidebar a[href='/settings/bulk-files']")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Bulk File Upload")
        .await
        .unwrap();
    browser
        .wait_for_text("#templates + .table-wrap", "No templates yet")
        .await
        .unwrap();
    violations.extend(checked(&browser, "Bulk File Upload").await);

    // Step 1: the kind, who to contact, and the first rows of an export.
    browser
        .click_on("#kind option[value='contacts']")
        .await
        .unwrap();
    fill(&browser, "#contact_name", "Dana Registrar").await;
    fill(&browser, "#contact_email", "dana@state.edu").await;
    fill(&browser, "#sample", SAMPLE).await;
    browser
        .click_text("button[type=submit]", "Read the sample")
        .await
        .unwrap();

    // Step 2: what Ferry read, the preview, and the mapping it suggests.
    browser
        .wait_for_text("h1", "Map the sample's columns")
        .await
        .unwrap();
    let intro = browser.find("main p").await.unwrap().text().await.unwrap();
    assert!(intro.contains("utf-8"), "{intro}");
    assert!(intro.contains("separated by ,"), "{intro}");
    browser
        .wait_for_text("table[aria-labelledby=preview] tbody", "Okafor")
        .await
        .unwrap();
    let suggested = |f: &str, r: bool| (f.to_string(), r);
    assert_eq!(
        mapping_shown(&browser).await,
        [
            suggested("phone", true),
            suggested("first_name", true),
            suggested("last_name", true),
            suggested("email", true),
            suggested("", false),
            suggested("", false),
        ],
        "Mobile, Given Name, Surname and E-mail are recognised; the others are not imported"
    );
    let sample_values = browser
        .find("#mapping tbody tr:nth-child(6) td")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample_values, "Biology · History");
    // The custom field is offered.
    assert_eq!(
        browser
            .find("#col_field_5 option[value='major']")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Major (custom)"
    );
    violations.extend(checked(&browser, "the mapping step").await);

    // The template's name and place, and a mistake: Intended Major on first_name too.
    fill(&browser, "#name", "Fair contacts").await;
    fill(&browser, "#folder", "/contacts").await;
    fill(&browser, "#file_mask", "contacts_*.csv").await;
    // The template and the whole mapping in one picture (its heading just below the sticky
    // top bar, nothing focused).
    browser.set_window_size(1280, 1000).await.unwrap();
    browser
        .execute(
            "document.activeElement.blur(); \
             var bar = document.querySelector('.topbar').getBoundingClientRect().height; \
             window.scrollTo(0, document.getElementById('template').getBoundingClientRect().top \
               + window.scrollY - bar - 16); return true;",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&browser, "bulk-setup-mapping").await;
    browser
        .click_on("#col_field_5 option[value='first_name']")
        .await
        .unwrap();
    browser
        .click_text("button[type=submit]", "Save template")
        .await
        .unwrap();
    let error = browser
        .wait_for_text("#col_field_5-error", "two columns are mapped to first_name")
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("first_name"));
    let select = browser.find("#col_field_5").await.unwrap();
    assert_eq!(
        select.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        select.attr("aria-describedby").await.unwrap().as_deref(),
        Some("col_field_5-error")
    );
    assert_eq!(
        browser
            .find("[role=alert]")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "The template was not saved: the field at fault is marked below."
    );
    assert!(
        browser.find_all(".field-error").await.unwrap().len() == 1,
        "only the column at fault has an error"
    );
    // What the admin typed and chose is kept, not replaced by the suggestions.
    assert_eq!(
        prop(&browser, "#name", "value").await,
        json!("Fair contacts")
    );
    assert_eq!(
        prop(&browser, "#file_mask", "value").await,
        json!("contacts_*.csv")
    );
    assert_eq!(
        mapping_shown(&browser).await[5],
        suggested("first_name", false)
    );
    let (status, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "a refused mapping saves nothing");
    violations.extend(checked(&browser, "the mapping step with an error").await);

    // Intended Major to the custom field, E-mail no longer required, and a second mistake:
    // Mobile, the only column that finds the contact, no longer required either.
    browser
        .click_on("#col_field_5 option[value='major']")
        .await
        .unwrap();
    browser.click_on("#col_required_3").await.unwrap();
    assert_eq!(
        prop(&browser, "#col_required_3", "checked").await,
        json!(false)
    );
    browser.click_on("#col_required_0").await.unwrap();
    browser
        .click_text("button[type=submit]", "Save template")
        .await
        .unwrap();
    browser
        .wait_for_text("#col_field_0-error", "mark the column \"Mobile\" required")
        .await
        .unwrap();
    assert!(
        browser.find_all(".field-error").await.unwrap().len() == 1,
        "only the key column has an error"
    );
    assert_eq!(mapping_shown(&browser).await[0], suggested("phone", false));
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    assert_eq!(
        list,
        json!([]),
        "a template without a required key saves nothing"
    );
    violations.extend(checked(&browser, "the mapping step without a key").await);

    // Put right: Mobile required again, and save.
    browser.click_on("#col_required_0").await.unwrap();
    browser
        .click_text("button[type=submit]", "Save template")
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Bulk File Upload")
        .await
        .unwrap();
    browser
        .wait_for_text("[role=status]", "The template Fair contacts is saved.")
        .await
        .unwrap();

    // The confirmation names the template saved, and only that one.
    browser
        .goto(&app.url("/settings/bulk-files?saved=nope"))
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "Bulk File Upload")
        .await
        .unwrap();
    assert!(browser.find_all("[role=status]").await.unwrap().is_empty());

    // The API has exactly the mapping chosen, in the sample's order; Source is not kept.
    let (_, list) = app.get("/api/v1/bulk-templates").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let t = &list[0];
    assert_eq!(t["name"], "Fair contacts");
    assert_eq!(t["kind"], "contacts");
    assert_eq!(t["folder"], "/contacts");
    assert_eq!(t["file_mask"], "contacts_*.csv");
    assert_eq!(t["delimiter"], ",");
    assert_eq!(t["header_row"], 1);
    assert_eq!(
        t["contact"],
        json!({"name": "Dana Registrar", "email": "dana@state.edu"})
    );
    assert_eq!(
        t["columns"],
        json!([
            {"name": "Mobile", "field": "phone", "required": true},
            {"name": "Given Name", "field": "first_name", "required": true},
            {"name": "Surname", "field": "last_name", "required": true},
            {"name": "E-mail", "field": "email", "required": false},
            {"name": "Intended Major", "field": "major", "required": false},
        ])
    );

    // Listed with its mapping.
    let row = format!("#template-{}", t["id"]);
    let place = browser
        .find(&format!("{row} td:nth-child(3)"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(place, "/contacts/contacts_*.csv");
    let mut listed = Vec::new();
    for li in browser
        .find_all(&format!("{row} .column-map li"))
        .await
        .unwrap()
    {
        listed.push(li.text().await.unwrap());
    }
    assert_eq!(
        listed,
        [
            "Mobile → phone required",
            "Given Name → first_name required",
            "Surname → last_name required",
            "E-mail → email",
            "Intended Major → major",
        ]
    );
    violations.extend(checked(&browser, "Bulk File Upload with the template").await);

    assert!(
        violations.is_empty(),
        "axe-core found serious or critical problems:\n{}",
        violations.join("\n")
    );
    browser.quit().await.unwrap();
}
