//! An EveryAction run's synchronization report, end to end against the emulator: on the run's
//! page, summarised in Recent Runs, in `GET /api/v1/runs/{id}`, and downloaded as CSV from the
//! UI (session) and the API (token); other kinds have none.

use ferry_emulators::everyaction::{self, EmulatorConfig, SeedPerson};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const KEY: &str = "0d7c9a8e-4b1f-4e2a-9c3d-5f6a7b8c9d0e";

fn person(first: &str, phone: &str, opt_in: &str, country: &str) -> Value {
    json!({
        "firstName": first, "lastName": "Rivera",
        "emails": [{"email": format!("{}@example.org", first.to_lowercase())}],
        "phones": [{"phoneNumber": phone, "phoneType": "C", "phoneOptInStatus": opt_in}],
        "addresses": [{"addressLine1": "12 Main St", "city": "Boston", "stateOrProvince": "MA", "zipOrPostalCode": "02139", "countryCode": country}],
    })
}

/// Runs the integration's queued run with a worker; returns the run's API view.
async fn run(app: &TestApp, id: i64) -> Value {
    let (status, queued) = app
        .post(&format!("/api/v1/integrations/{id}/runs"), json!({}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let run_id = queued["run_id"].as_i64().unwrap();
    let worker = ferry_worker::Worker::new(
        app.store.store.clone(),
        ferry_connectors::Registry::builtin(&app.base),
        Default::default(),
    );
    assert_eq!(worker.run_once().await.unwrap(), Some(run_id));
    let (_, run) = app.get(&format!("/api/v1/runs/{run_id}")).await;
    run
}

#[tokio::test]
async fn an_everyaction_run_has_a_synchronization_report_on_screen_in_the_api_and_as_csv() {
    let app = spawn_app().await;
    let ea = everyaction::start(EmulatorConfig {
        api_key: KEY.into(),
        app_name: "ferry".into(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    ea.state()
        .seed_people([
            SeedPerson::new(person("Ana", "6175550801", "I", "US")),
            SeedPerson::new(person("Ben", "6175550802", "I", "US")),
            SeedPerson::new(person("Cy", "6175550803", "O", "US")),
            SeedPerson::new(person("Dee", "6045550804", "I", "CA")),
            SeedPerson::new(person("Eve", "6045550805", "I", "CA")),
        ])
        .unwrap();
    let (status, created) = app
        .post(
            "/api/v1/integrations",
            json!({"type": "everyaction", "name": "EveryAction", "enabled": true,
                   "config": {"login": "ferry", "api_host": ea.api_url()},
                   "secrets": {"password": KEY}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let run = run(&app, id).await;
    assert_eq!(run["status"], "success", "{run}");
    let run_id = run["id"].as_i64().unwrap();

    // In the API: each metric with its count, the skipped reasons one each.
    let report: Vec<(String, i64)> = run["report"]
        .as_array()
        .unwrap_or_else(|| panic!("a report: {run}"))
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap().to_string(),
                m["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let get = |m: &str| report.iter().find(|(k, _)| k == m).map(|(_, v)| *v);
    assert_eq!(get("pulled"), Some(5), "{report:?}");
    assert_eq!(get("created"), Some(2), "Ana and Ben: {report:?}");
    assert_eq!(get("skipped"), Some(3), "{report:?}");
    assert_eq!(get("skipped:everyaction_not_us"), Some(2), "{report:?}");
    assert_eq!(
        get("skipped:everyaction_not_opted_in"),
        Some(1),
        "conservative sync leaves Cy out: {report:?}"
    );
    assert_eq!(get("opt_ins_pushed"), Some(0));
    assert_eq!(get("opt_outs_pushed"), Some(0));
    assert_eq!(get("errors"), Some(0));

    // The API's CSV (token).
    let res = app
        .http
        .get(app.url(&format!("/api/v1/runs/{run_id}/report.csv")))
        .bearer_auth(&app.viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("run-{run_id}-report.csv"))
    );
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "metric,value");
    for want in [
        "pulled,5",
        "created,2",
        "updated,0",
        "skipped,3",
        "skipped:everyaction_not_opted_in,1",
        "skipped:everyaction_not_us,2",
        "opt_ins_pushed,0",
        "opt_outs_pushed,0",
        "errors,0",
    ] {
        assert!(lines.contains(&want), "{want} in {csv}");
    }
    let skipped_at = lines.iter().position(|l| *l == "skipped,3").unwrap();
    assert!(
        lines[skipped_at + 1].starts_with("skipped:")
            && lines[skipped_at + 2].starts_with("skipped:"),
        "the reasons follow their total: {csv}"
    );
    assert_eq!(lines.len() - 1, report.len(), "the CSV and the API agree");

    // The UI's CSV (session) is the same file; without a session it sends to sign-in.
    let (cookie, _) = app.login().await;
    let (status, ui_csv) = app
        .page(&cookie, &format!("/runs/{run_id}/report.csv"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ui_csv, csv);
    let anon = app
        .http
        .get(app.url(&format!("/runs/{run_id}/report.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 303);

    // The run's page shows it, with the download link; Recent Runs summarises it.
    let (status, page) = app.page(&cookie, &format!("/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Synchronization report"), "{page}");
    assert!(page.contains(&format!("href=\"/runs/{run_id}/report.csv\"")));
    assert!(
        page.contains("id=\"report-skipped-everyaction_not_us\""),
        "{page}"
    );
    assert!(page.contains("Pulled from EveryAction"));
    let (_, runs) = app.page(&cookie, "/runs").await;
    let summary = runs
        .split(&format!("id=\"run-{run_id}-report\">"))
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("a summary in Recent Runs: {runs}"));
    assert_eq!(summary, "Pulled 5 · Created 2 · Skipped 3");

    // Another institution sees no such run; a kind without a report says so.
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/runs/{run_id}/report.csv"),
            &app.other_admin_token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/api/v1/runs/999999/report.csv").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
