//! Contacts in the browser's forms, over HTTP: create and edit (blanks keep, `UNSET` clears, a
//! bad value saves nothing), archive, test users, the CSV upload's report and failed rows, the
//! count that follows the search, and renaming and deleting custom fields.

use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// Posts a urlencoded form with the session; returns the status, the `Location` and the body.
async fn form(
    app: &TestApp,
    cookie: &str,
    csrf: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> (u16, String, String) {
    let mut all: Vec<(&str, &str)> = vec![("_csrf", csrf)];
    all.extend_from_slice(pairs);
    let res = app
        .http
        .post(app.url(path))
        .header("cookie", cookie)
        .form(&all)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, res.text().await.unwrap())
}

/// Uploads a CSV file as the upload page's script does.
async fn upload(app: &TestApp, cookie: &str, csrf: &str, csv: &str) -> (u16, String) {
    let res = app
        .http
        .post(app.url("/contacts/import"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("content-type", "text/csv")
        .header("x-file-name", "students%20fall.csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// One part of a `multipart/form-data` body: its name, its file name and type for a file part,
/// and its content.
struct Part<'a> {
    name: &'a str,
    file: Option<(&'a str, &'a str)>,
    content: &'a str,
}

fn token(csrf: &str) -> Part<'_> {
    Part {
        name: "_csrf",
        file: None,
        content: csrf,
    }
}

fn csv_file<'a>(file_name: &'a str, content: &'a str) -> Part<'a> {
    Part {
        name: "file",
        file: Some((file_name, "text/csv")),
        content,
    }
}

/// Posts the upload form as a browser without JavaScript does (`multipart/form-data`, the parts
/// in the order given); returns the status and the page.
async fn post_form(app: &TestApp, cookie: &str, parts: &[Part<'_>]) -> (u16, String) {
    const BOUNDARY: &str = "----ferry-test-7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for p in parts {
        body.push_str(&format!("--{BOUNDARY}\r\n"));
        match p.file {
            Some((file_name, media_type)) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\nContent-Type: {media_type}\r\n\r\n",
                p.name
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                p.name
            )),
        }
        body.push_str(p.content);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    let res = app
        .http
        .post(app.url("/contacts/import"))
        .header("cookie", cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn contact_count(app: &TestApp) -> usize {
    let (_, list) = app.get("/api/v1/contacts?limit=500").await;
    list["contacts"].as_array().unwrap().len()
}

/// The text of a `data:` URL's body.
fn data_url_text(href: &str) -> String {
    let body = href
        .strip_prefix("data:text/csv;charset=utf-8,")
        .expect("a CSV data URL");
    form_urlencoded::parse(format!("x={body}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

fn attr_of(html: &str, id: &str, attr: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let key = format!("{attr}=\"");
    let from = tag.find(&key).unwrap() + key.len();
    tag[from..from + tag[from..].find('"').unwrap()]
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

#[tokio::test]
async fn create_and_edit_a_contact_with_blanks_and_unset() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/fields",
        json!({"name": "major", "label": "Major", "kind": "text"}),
    )
    .await;
    let (cookie, csrf) = app.login().await;

    // Missing phone: nothing is created, the error sits beside the field, what was typed stays.
    let (status, _, body) = form(
        &app,
        &cookie,
        &csrf,
        "/contacts/new",
        &[
            ("first_name", "Ines"),
            ("last_name", "Okafor"),
            ("phone", ""),
        ],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("Nothing was saved"), "{body}");
    assert!(body.contains("id=\"f-phone-error\""), "{body}");
    assert!(body.contains("value=\"Ines\""), "{body}");
    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(list["contacts"].as_array().unwrap().len(), 0);

    let (status, location, _) = form(
        &app,
        &cookie,
        &csrf,
        "/contacts/new",
        &[
            ("first_name", "Ines"),
            ("last_name", "Okafor"),
            ("preferred_name", "Nessa"),
            ("phone", "(617) 555-0190"),
            ("crm_id", "CRM-190"),
            ("custom.major", "Biology"),
            ("sms_opt_in", "unknown"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.ends_with("?saved=created"), "{location}");
    let id: i64 = location
        .trim_start_matches("/contacts/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, page) = app.page(&cookie, &location).await;
    assert!(page.contains("The contact was created."));

    // The edit form explains blanks and UNSET.
    let (_, edit) = app.page(&cookie, &format!("/contacts/{id}/edit")).await;
    assert!(edit.contains("keeps the value it has"), "{edit}");
    assert!(edit.contains("<code>UNSET</code>"), "{edit}");
    assert!(edit.contains("value=\"CRM-190\""), "{edit}");

    // A blank preferred name keeps it; UNSET clears the CRM ID and the custom field.
    let (status, location, body) = form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/edit"),
        &[
            ("first_name", "Ines"),
            ("last_name", "Okafor-Diaz"),
            ("preferred_name", ""),
            ("phone", "+16175550190"),
            ("crm_id", "UNSET"),
            ("custom.major", "UNSET"),
            ("sms_opt_in", "opted_in"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(location.ends_with("?saved=updated"));
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["last_name"], "Okafor-Diaz");
    assert_eq!(c["preferred_name"], "Nessa", "a blank keeps the value");
    assert_eq!(c["crm_id"], serde_json::Value::Null, "UNSET clears");
    assert!(c["custom"].get("major").is_none(), "{c}");
    assert_eq!(c["sms_opt_in"], "opted_in");

    // UNSET on the email is refused, and nothing of that save applies.
    let (status, _, body) = form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/edit"),
        &[("last_name", "Changed"), ("email", "UNSET")],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("id=\"f-email-error\""), "{body}");
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["last_name"], "Okafor-Diaz");
}

#[tokio::test]
async fn archive_and_test_user_from_the_contact_page() {
    let app = spawn_app().await;
    let id = app.contact("Tomas", "6175550191").await;
    let (cookie, csrf) = app.login().await;
    let (_, page) = app.page(&cookie, &format!("/contacts/{id}")).await;
    assert!(page.contains("Mark as test user"), "{page}");
    assert!(page.contains("never synced to any integration"), "{page}");

    let (status, location, _) = form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/test-user"),
        &[("test_user", "true")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = app.page(&cookie, &location).await;
    assert!(page.contains("no integration will sync it"), "{page}");
    assert!(page.contains("Unmark test user"), "{page}");
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["test_user"], true);

    form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/archive"),
        &[],
    )
    .await;
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["archived"], true);
    let (_, page) = app.page(&cookie, &format!("/contacts/{id}")).await;
    assert!(page.contains("Un-archive"), "{page}");
    assert!(page.contains("takes it out of the archive"), "{page}");
    form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/unarchive"),
        &[],
    )
    .await;
    form(
        &app,
        &cookie,
        &csrf,
        &format!("/contacts/{id}/test-user"),
        &[("test_user", "false")],
    )
    .await;
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["archived"], false);
    assert_eq!(c["test_user"], false);

    // A viewer sees no buttons and cannot post.
    let res = app
        .http
        .post(app.url(&format!("/contacts/{id}/archive")))
        .bearer_auth(&app.viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn csv_upload_reports_each_skipped_row_and_gives_the_failed_rows() {
    let app = spawn_app().await;
    let archived = app.contact("Ada", "6175550192").await;
    app.post(&format!("/api/v1/contacts/{archived}/archive"), json!({}))
        .await;
    let (cookie, csrf) = app.login().await;
    let (_, page) = app.page(&cookie, "/contacts/import").await;
    assert!(page.contains("import-bar"), "{page}");
    assert!(page.contains("<code>UNSET</code>"), "{page}");

    let csv = "first_name,last_name,phone,email\r\n\
               Ada,Student,6175550192,ada@state.edu\r\n\
               Bo,Lee,not a phone,bo@state.edu\r\n\
               Cy,\"Quoted, Name\",6175550193,\r\n\
               Di,Ray,6175550194,not-an-email\r\n";
    let (status, report) = upload(&app, &cookie, &csrf, csv).await;
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("id=\"report-created\">1<"), "{report}");
    assert!(report.contains("id=\"report-updated\">1<"), "{report}");
    assert!(report.contains("id=\"report-skipped\">2<"), "{report}");
    assert!(
        report.contains("href=\"/errors#invalid_phone\""),
        "{report}"
    );
    assert!(
        report.contains("href=\"/errors#invalid_email\""),
        "{report}"
    );
    let href = attr_of(&report, "failed-rows", "href");
    assert_eq!(
        data_url_text(&href),
        "first_name,last_name,phone,email\r\nBo,Lee,not a phone,bo@state.edu\r\nDi,Ray,6175550194,not-an-email\r\n"
    );
    assert_eq!(
        attr_of(&report, "failed-rows", "download"),
        "students fall-failed-rows.csv"
    );
    let (_, c) = app.get(&format!("/api/v1/contacts/{archived}")).await;
    assert_eq!(c["archived"], false, "importing a contact un-archives it");
    assert_eq!(c["email"], "ada@state.edu");

    // A file refused as a whole says so, with its code.
    let (status, report) = upload(&app, &cookie, &csrf, "first_name,shoe_size\r\nA,9\r\n").await;
    assert_eq!(status, 400);
    assert!(report.contains("nothing was imported"), "{report}");
    assert!(report.contains("/errors#unknown_field"), "{report}");

    // Without the CSRF header the upload is refused.
    let res = app
        .http
        .post(app.url("/contacts/import"))
        .header("cookie", &cookie)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_nothing_is_imported() {
    let app = crate::helpers::spawn_app_with(ferry_web::WebConfig {
        max_import_bytes: 2048,
        ..Default::default()
    })
    .await;
    let (cookie, csrf) = app.login().await;
    let mut csv = String::from("first_name,last_name,phone\r\n");
    for i in 0..300 {
        csv.push_str(&format!("A{i},B,61755{i:05}\r\n"));
    }
    assert!(csv.len() > 2048);
    let (status, report) = upload(&app, &cookie, &csrf, &csv).await;
    assert_eq!(status, 413, "{report}");
    assert!(report.contains("2 KiB"), "{report}");
    let (_, list) = app.get("/api/v1/contacts").await;
    assert_eq!(list["contacts"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_count_follows_the_search() {
    let app = spawn_app().await;
    for (name, phone) in [
        ("Mira", "6175550195"),
        ("Milo", "6175550196"),
        ("Zed", "6175550197"),
    ] {
        app.contact(name, phone).await;
    }
    let (cookie, _) = app.login().await;
    let (_, all) = app.page(&cookie, "/contacts").await;
    assert!(all.contains("3 contacts in all"), "{all}");
    let (_, some) = app.page(&cookie, "/contacts?q=mi").await;
    assert!(some.contains("2 contacts match"), "{some}");
    let (_, one) = app.page(&cookie, "/contacts?q=zed").await;
    assert!(one.contains("1 contact matches"), "{one}");
}

#[tokio::test]
async fn custom_fields_are_renamed_and_deleted_with_their_values() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/fields",
        json!({"name": "grad_year", "label": "Grad year", "kind": "number"}),
    )
    .await;
    let id = app.contact("Uma", "6175550198").await;
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/contacts/{id}"),
        &app.admin_token,
        Some(json!({"custom": {"grad_year": 2027}})),
    )
    .await;
    let (cookie, csrf) = app.login().await;

    let (status, location, _) = form(
        &app,
        &cookie,
        &csrf,
        "/settings/fields/grad_year/rename",
        &[("label", "Graduation year")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = app.page(&cookie, &location).await;
    assert!(page.contains("keeps its name"), "{page}");
    let (_, fields) = app.get("/api/v1/fields").await;
    assert_eq!(fields[0]["label"], "Graduation year", "{fields}");
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(c["custom"]["grad_year"], 2027, "renaming keeps the values");

    let (_, confirm) = app.page(&cookie, "/settings/fields/grad_year/delete").await;
    assert!(
        confirm.contains("the value stored for 1 contact"),
        "{confirm}"
    );
    assert!(confirm.contains("cannot be undone"), "{confirm}");
    let (status, location, _) = form(
        &app,
        &cookie,
        &csrf,
        "/settings/fields/grad_year/delete",
        &[],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = app.page(&cookie, &location).await;
    assert!(page.contains("its value from 1 contact."), "{page}");
    let (_, fields) = app.get("/api/v1/fields").await;
    assert_eq!(fields.as_array().unwrap().len(), 0, "{fields}");
    let (_, c) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert!(c["custom"].get("grad_year").is_none(), "{c}");
    let (status, _) = app.page(&cookie, "/settings/fields/grad_year/delete").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_upload_form_without_javascript_imports_and_answers_the_page_with_the_report() {
    let app = spawn_app().await;
    let (cookie, csrf) = app.login().await;
    let (_, page) = app.page(&cookie, "/contacts/import").await;
    let form = &page[page.find("id=\"import-form\"").expect("the form")..];
    let token_at = form
        .find(&format!("name=\"_csrf\" value=\"{csrf}\""))
        .expect("the form carries the CSRF token");
    let file_at = form.find("name=\"file\"").expect("the file input");
    assert!(
        token_at < file_at,
        "the token comes before the file, so it is checked before the file arrives"
    );
    assert!(!page.contains("needs JavaScript"), "{page}");

    let csv = "first_name,last_name,phone\r\n\
               Ines,Park,6175550401\r\n\
               Jo,Bad,12\r\n\
               Kai,Ng,6175550402\r\n";
    // Without the token nothing is imported.
    let (status, body) = post_form(&app, &cookie, &[csv_file("spring intake.csv", csv)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not sent from a Ferry page"), "{body}");
    assert_eq!(contact_count(&app).await, 0);
    // The token after the file is refused too: it would be known only once the file is in.
    let (status, body) = post_form(
        &app,
        &cookie,
        &[csv_file("spring intake.csv", csv), token(&csrf)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(contact_count(&app).await, 0);
    // A wrong token is refused.
    let (status, _) = post_form(
        &app,
        &cookie,
        &[token("not-the-token"), csv_file("spring intake.csv", csv)],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(contact_count(&app).await, 0);

    let (status, page) = post_form(
        &app,
        &cookie,
        &[token(&csrf), csv_file("spring intake.csv", csv)],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>Upload contacts</h1>") && page.contains("id=\"import-form\""),
        "the whole upload page, ready for the next file: {page}"
    );
    let report = &page[page.find("id=\"import-result\"").expect("the result")..];
    assert!(report.contains("id=\"report-created\">2<"), "{report}");
    assert!(report.contains("id=\"report-skipped\">1<"), "{report}");
    assert!(report.contains("is not a valid phone number"), "{report}");
    assert!(
        report.contains("href=\"/errors#invalid_phone\""),
        "{report}"
    );
    assert_eq!(
        data_url_text(&attr_of(report, "failed-rows", "href")),
        "first_name,last_name,phone\r\nJo,Bad,12\r\n"
    );
    assert_eq!(
        attr_of(report, "failed-rows", "download"),
        "spring intake-failed-rows.csv",
        "the failed rows are named after the file sent"
    );
    assert_eq!(contact_count(&app).await, 2);
}

#[tokio::test]
async fn the_upload_form_refuses_a_missing_file_a_file_not_csv_and_one_over_the_limit() {
    let app = crate::helpers::spawn_app_with(ferry_web::WebConfig {
        max_import_bytes: 2048,
        ..Default::default()
    })
    .await;
    let (cookie, csrf) = app.login().await;
    let refused = |page: &str, code: &str| {
        assert!(page.contains("<h1>Upload contacts</h1>"), "{page}");
        assert!(page.contains("nothing was imported"), "{page}");
        assert!(
            page.contains(&format!("href=\"/errors#{code}\"")),
            "{code}: {page}"
        );
    };

    // No file part, and the empty part a browser sends when no file was chosen.
    let (status, page) = post_form(&app, &cookie, &[token(&csrf)]).await;
    assert_eq!(status, 400, "{page}");
    refused(&page, "missing_file");
    let (status, page) = post_form(
        &app,
        &cookie,
        &[
            token(&csrf),
            Part {
                name: "file",
                file: Some(("", "application/octet-stream")),
                content: "",
            },
        ],
    )
    .await;
    assert_eq!(status, 400, "{page}");
    refused(&page, "missing_file");

    // A file that is not CSV.
    let (status, page) = post_form(
        &app,
        &cookie,
        &[
            token(&csrf),
            Part {
                name: "file",
                file: Some(("photo.png", "image/png")),
                content: "not,a,csv",
            },
        ],
    )
    .await;
    assert_eq!(status, 415, "{page}");
    refused(&page, "unsupported_media_type");
    assert!(page.contains("photo.png is not a CSV file"), "{page}");

    // Over the limit: refused whole.
    let mut csv = String::from("first_name,last_name,phone\r\n");
    for i in 0..150 {
        csv.push_str(&format!("A{i},B,61755{i:05}\r\n"));
    }
    assert!(csv.len() > 2048);
    let (status, page) = post_form(&app, &cookie, &[token(&csrf), csv_file("big.csv", &csv)]).await;
    assert_eq!(status, 413, "{page}");
    refused(&page, "payload_too_large");
    assert!(page.contains("2 KiB"), "{page}");
    assert_eq!(contact_count(&app).await, 0);

    // A file just under the limit is taken, though the whole form is over it.
    let mut csv = String::from("first_name,last_name,phone\r\n");
    let mut i = 0;
    while csv.len() + 22 <= 2048 {
        csv.push_str(&format!("A{i:03},B,61755{i:05}\r\n"));
        i += 1;
    }
    assert!(csv.len() <= 2048 && csv.len() > 2000, "{}", csv.len());
    let (status, page) =
        post_form(&app, &cookie, &[token(&csrf), csv_file("edge.csv", &csv)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("id=\"report-created\">{i}<")),
        "{page}"
    );
    assert_eq!(contact_count(&app).await, i);
}
