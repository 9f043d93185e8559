//! Bulk API 2.0: ingest and query jobs, their states and CSV results.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Env, V, env};

async fn put_csv(env: &Env, job: &str, csv: &str) -> u16 {
    env.http
        .put(env.url(&format!("{V}/jobs/ingest/{job}/batches")))
        .bearer_auth(&env.token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn text(env: &Env, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = env
        .http
        .get(env.url(path))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    (
        r.status().as_u16(),
        r.headers().clone(),
        r.text().await.unwrap(),
    )
}

fn rows(csv_text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// Runs an ingest job to its end, following its states; returns the final job info.
async fn run_ingest(env: &Env, definition: Value, csv: &str) -> (String, Value) {
    let job = env
        .call(Method::POST, "jobs/ingest", Some(definition))
        .await;
    assert_eq!(job.status, 200, "{}", job.body);
    assert_eq!(job.body["state"], "Open");
    let id = job.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"));
    assert_eq!(put_csv(env, &id, csv).await, 201);
    let closed = env
        .call(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!(closed.body["state"], "UploadComplete");
    let mut states = Vec::new();
    loop {
        let info = env.get(&format!("jobs/ingest/{id}")).await;
        let state = info.body["state"].as_str().unwrap().to_string();
        states.push(state.clone());
        if matches!(state.as_str(), "JobComplete" | "Failed" | "Aborted") {
            assert_eq!(states[0], "InProgress", "a job is seen in progress first");
            return (id, info.body);
        }
    }
}

#[tokio::test]
async fn ingest_upsert_reports_successes_and_failures_in_csv() {
    let env = env().await;
    let ids = env.seed("Contact", vec![json!({"LastName": "Old", "FirstName": "Keep", "Phone": "617-555-0100", "Ferry_Id__c": "p-1"})]).await;
    let csv = "Ferry_Id__c,LastName,FirstName,Phone,Email\n\
               p-1,Diaz,,#N/A,\n\
               p-2,New,Nia,,nia@state.edu\n\
               p-3,Bad,,,not-an-email\n\
               ,NoKey,,,\n";
    let (id, info) = run_ingest(&env, json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Ferry_Id__c", "lineEnding": "LF"}), csv).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(
        (
            info["numberRecordsProcessed"].clone(),
            info["numberRecordsFailed"].clone()
        ),
        (json!(4), json!(2))
    );

    let (status, _, ok) = text(&env, &format!("{V}/jobs/ingest/{id}/successfulResults/")).await;
    assert_eq!(status, 200);
    assert!(
        ok.starts_with("\"sf__Id\",\"sf__Created\",\"Ferry_Id__c\""),
        "{ok}"
    );
    let ok = rows(&ok);
    assert_eq!(ok.len(), 2);
    assert_eq!(
        (ok[0][0].as_str(), ok[0][1].as_str()),
        (ids[0].as_str(), "false")
    );
    assert_eq!(ok[1][1], "true");
    let (_, _, failed) = text(&env, &format!("{V}/jobs/ingest/{id}/failedResults/")).await;
    let failed = rows(&failed);
    assert!(
        failed[0][1].starts_with("INVALID_EMAIL_ADDRESS:"),
        "{:?}",
        failed[0]
    );
    assert_eq!(failed[0][2], "p-3");
    assert!(failed[1][1].starts_with("MISSING_ARGUMENT:"));

    // An empty cell leaves a field alone, #N/A clears it.
    let old = env.emu.state().record("Contact", &ids[0]).unwrap();
    assert_eq!(
        (
            old.get("LastName").as_deref(),
            old.get("FirstName").as_deref(),
            old.get("Phone")
        ),
        (Some("Diaz"), Some("Keep"), None)
    );
    let (_, _, unprocessed) =
        text(&env, &format!("{V}/jobs/ingest/{id}/unprocessedrecords/")).await;
    assert_eq!(rows(&unprocessed).len(), 0);
    assert_eq!(
        env.call(Method::DELETE, &format!("jobs/ingest/{id}"), None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn bulk_and_collections_give_the_same_outcome() {
    let data = [
        json!({"Ferry_Id__c": "p-1", "LastName": "Diaz", "Email": "ana@state.edu"}),
        json!({"Ferry_Id__c": "p-2", "LastName": "Ng", "Email": "taken@state.edu"}),
        json!({"Ferry_Id__c": "p-3", "FirstName": "NoLast"}),
    ];
    let seed = || {
        vec![
            json!({"LastName": "Taken", "Email": "taken@state.edu"}),
            json!({"LastName": "Was", "Ferry_Id__c": "p-1"}),
        ]
    };
    let a = env().await;
    a.seed("Contact", seed()).await;
    let records: Vec<Value> = data
        .iter()
        .map(|d| {
            let mut m = d.as_object().unwrap().clone();
            m.insert("attributes".into(), json!({"type": "Contact"}));
            Value::Object(m)
        })
        .collect();
    let r = a
        .call(
            Method::PATCH,
            "composite/sobjects/Contact/Ferry_Id__c",
            Some(json!({"records": records})),
        )
        .await;
    let collection_codes: Vec<String> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["errors"][0]["statusCode"]
                .as_str()
                .unwrap_or("ok")
                .to_string()
        })
        .collect();

    let b = env().await;
    b.seed("Contact", seed()).await;
    let csv = "Ferry_Id__c,LastName,FirstName,Email\np-1,Diaz,,ana@state.edu\np-2,Ng,,taken@state.edu\np-3,,NoLast,\n";
    let (id, _) = run_ingest(
        &b,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Ferry_Id__c"}),
        csv,
    )
    .await;
    let (_, _, failed) = text(&b, &format!("{V}/jobs/ingest/{id}/failedResults/")).await;
    let bulk_codes: Vec<String> = rows(&failed)
        .iter()
        .map(|r| r[1].split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        collection_codes,
        ["ok", "DUPLICATES_DETECTED", "REQUIRED_FIELD_MISSING"]
    );
    assert_eq!(
        bulk_codes,
        ["DUPLICATES_DETECTED", "REQUIRED_FIELD_MISSING"]
    );
    let strip = |env: &Env| -> Vec<(Option<String>, Option<String>, Option<String>)> {
        env.emu
            .state()
            .records("Contact")
            .iter()
            .map(|r| (r.get("Ferry_Id__c"), r.get("LastName"), r.get("Email")))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[tokio::test]
async fn ingest_refusals_and_failures() {
    let env = env().await;
    let r = env
        .call(
            Method::POST,
            "jobs/ingest",
            Some(json!({"object": "Contact", "operation": "upsert"})),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "INVALIDJOB"));
    let r = env.call(Method::POST, "jobs/ingest", Some(json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"}))).await;
    assert_eq!(r.error_code(), "INVALIDJOB");
    let r = env
        .call(
            Method::POST,
            "jobs/ingest",
            Some(json!({"object": "Account", "operation": "insert"})),
        )
        .await;
    assert_eq!(r.error_code(), "INVALIDJOB");

    // Data once, results only when done, line endings as declared.
    let job = env
        .call(
            Method::POST,
            "jobs/ingest",
            Some(json!({"object": "Contact", "operation": "insert"})),
        )
        .await;
    let id = job.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        text(&env, &format!("{V}/jobs/ingest/{id}/successfulResults/"))
            .await
            .0,
        409
    );
    assert_eq!(put_csv(&env, &id, "LastName\r\nA\r\n").await, 201);
    assert_eq!(put_csv(&env, &id, "LastName\nB\n").await, 409);
    env.call(
        Method::PATCH,
        &format!("jobs/ingest/{id}"),
        Some(json!({"state": "UploadComplete"})),
    )
    .await;
    env.get(&format!("jobs/ingest/{id}")).await;
    let info = env.get(&format!("jobs/ingest/{id}")).await;
    assert_eq!(info.body["state"], "Failed");
    assert!(
        info.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("LineEnding")
    );
    assert!(env.emu.state().records("Contact").is_empty());
    let again = env
        .call(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!((again.status, again.error_code()), (409, "INVALIDJOBSTATE"));

    // Aborting an open job.
    let job = env
        .call(
            Method::POST,
            "jobs/ingest",
            Some(json!({"object": "Contact", "operation": "delete"})),
        )
        .await;
    let id = job.body["id"].as_str().unwrap().to_string();
    let aborted = env
        .call(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            Some(json!({"state": "Aborted"})),
        )
        .await;
    assert_eq!(aborted.body["state"], "Aborted");
}

#[tokio::test]
async fn update_and_delete_by_id_in_csv_with_another_delimiter() {
    let env = env().await;
    let ids = env
        .seed(
            "Contact",
            vec![json!({"LastName": "A"}), json!({"LastName": "B"})],
        )
        .await;
    let csv = format!("Id|LastName\n{}|Aa\n003000000000000|X\n", ids[0]);
    let (id, info) = run_ingest(
        &env,
        json!({"object": "Contact", "operation": "update", "columnDelimiter": "PIPE"}),
        &csv,
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 1);
    let (_, _, failed) = text(&env, &format!("{V}/jobs/ingest/{id}/failedResults/")).await;
    assert!(failed.contains("NOT_FOUND:"), "{failed}");
    assert_eq!(
        env.emu
            .state()
            .record("Contact", &ids[0])
            .unwrap()
            .get("LastName")
            .as_deref(),
        Some("Aa")
    );
    let (_, info) = run_ingest(
        &env,
        json!({"object": "Contact", "operation": "delete"}),
        &format!("Id\n{}\n", ids[1]),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 0);
    assert!(env.emu.state().record("Contact", &ids[1]).unwrap().deleted);
}

#[tokio::test]
async fn query_jobs_page_csv_with_locators() {
    let env = env().await;
    env.seed("Contact", (0..2_500).map(|i| json!({"LastName": format!("L{i:04}"), "SystemModstamp": "2026-03-01T12:00:00Z", "HasOptedOutOfEmail": i == 0})).collect()).await;
    let job = env.call(Method::POST, "jobs/query", Some(json!({"operation": "query", "query": "SELECT Id, LastName, SystemModstamp, HasOptedOutOfEmail, Email FROM Contact ORDER BY LastName"}))).await;
    assert_eq!(job.status, 200, "{}", job.body);
    assert_eq!(job.body["state"], "UploadComplete");
    let id = job.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        text(&env, &format!("{V}/jobs/query/{id}/results")).await.0,
        409,
        "not complete yet"
    );
    assert_eq!(
        env.get(&format!("jobs/query/{id}")).await.body["state"],
        "InProgress"
    );
    assert_eq!(
        env.get(&format!("jobs/query/{id}")).await.body["state"],
        "JobComplete"
    );

    let mut all = Vec::new();
    let mut locator = String::new();
    let mut pages = 0;
    loop {
        let path = if locator.is_empty() {
            format!("{V}/jobs/query/{id}/results?maxRecords=1000")
        } else {
            format!("{V}/jobs/query/{id}/results?maxRecords=1000&locator={locator}")
        };
        let (status, headers, body) = text(&env, &path).await;
        assert_eq!(status, 200);
        pages += 1;
        let page = rows(&body);
        assert_eq!(
            headers["sforce-numberofrecords"].to_str().unwrap(),
            page.len().to_string()
        );
        if pages == 1 {
            assert!(body.starts_with(
                "\"Id\",\"LastName\",\"SystemModstamp\",\"HasOptedOutOfEmail\",\"Email\""
            ));
            assert_eq!(page[0][2], "2026-03-01T12:00:00.000Z");
            assert_eq!((page[0][3].as_str(), page[0][4].as_str()), ("true", ""));
        }
        all.extend(page);
        locator = headers["sforce-locator"].to_str().unwrap().to_string();
        if locator == "null" {
            break;
        }
    }
    assert_eq!((all.len(), pages), (2_500, 3));
    assert_eq!(all[2_499][1], "L2499");
    // Results are read with the job's API version.
    assert_eq!(
        text(
            &env,
            &format!("/services/data/v61.0/jobs/query/{id}/results")
        )
        .await
        .0,
        409
    );
    let bad = env
        .call(
            Method::POST,
            "jobs/query",
            Some(json!({"operation": "query", "query": "SELECT COUNT() FROM Contact"})),
        )
        .await;
    assert_eq!(bad.error_code(), "MALFORMED_QUERY");
}
