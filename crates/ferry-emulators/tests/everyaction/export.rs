//! Changed-entity export jobs: metadata, the job lifecycle, the window, files without auth.

use std::time::Duration;

use ferry_emulators::everyaction::{EmulatorConfig, OptIn, SeedPerson};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::common::{Env, config, env, env_with};

fn person(i: usize, at: Timestamp) -> SeedPerson {
    SeedPerson::new(json!({
        "firstName": format!("First{i}"), "lastName": format!("Last, \"{i}\""),
        "emails": [{"email": format!("p{i}@example.org")}],
        "phones": [{"phoneNumber": format!("617555{:04}", i % 10_000), "phoneType": "C", "phoneOptInStatus": "I"}],
        "addresses": [{"addressLine1": format!("{i} Elm St"), "city": "Salem", "stateOrProvince": "MA", "zipOrPostalCode": "01970"}],
    }))
    .modified_at(at)
}

/// Creates a job, polls until Complete, downloads every file (without auth).
async fn export(env: &Env, body: Value) -> (Value, Vec<String>) {
    let created = env.post("/v4/changedEntityExportJobs", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["exportJobId"].as_u64().unwrap();
    let first = env.get(&format!("/v4/changedEntityExportJobs/{id}")).await;
    assert_eq!(first.body["jobStatus"], "Pending");
    assert_eq!(first.body["message"], "Created export job");
    assert_eq!(first.body["files"], json!([]));
    let done = env.get(&format!("/v4/changedEntityExportJobs/{id}")).await;
    assert_eq!(done.body["jobStatus"], "Complete", "{}", done.text);
    let mut files = Vec::new();
    for f in done.body["files"].as_array().unwrap() {
        let url = f["downloadUrl"].as_str().unwrap();
        assert!(
            url.starts_with(env.emu.base_url()),
            "the emulator's own URL"
        );
        let r = env.get_plain(url).await;
        assert_eq!(r.status, 200, "downloads need no authentication");
        files.push(r.text);
    }
    (done.body, files)
}

fn rows(files: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(f.as_bytes());
        for rec in rdr.records() {
            out.push(rec.unwrap().iter().map(str::to_string).collect());
        }
    }
    out
}

#[tokio::test]
async fn metadata_endpoints_are_bare_arrays() {
    let env = env().await;
    let r = env.get("/v4/changedEntityExportJobs/resources").await;
    assert!(r.body.as_array().unwrap().contains(&json!("Contacts")));
    let r = env.get("/v4/changedEntityExportJobs/fields/Contacts").await;
    let fields = r.body.as_array().unwrap();
    let opt = fields
        .iter()
        .find(|f| f["fieldName"] == "PhoneOptInStatus")
        .unwrap();
    assert_eq!(opt["fieldType"], "N");
    assert_eq!(
        opt["availableValues"],
        json!([{"id":1,"name":"Opt-In"},{"id":2,"name":"Unknown"},{"id":3,"name":"Opt-Out"}])
    );
    assert!(
        fields
            .iter()
            .any(|f| f["fieldName"] == "VanID" && f["isCoreField"] == true)
    );
    let r = env
        .get("/v4/changedEntityExportJobs/changeTypes/Contacts")
        .await;
    assert_eq!(r.body[0]["changeTypeName"], "CreatedOrUpdated");
    assert_eq!(
        env.get("/v4/changedEntityExportJobs/fields/Nope")
            .await
            .status,
        400
    );
    assert_eq!(
        env.get("/v4/changedEntityExportJobs/777").await.error().0,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_48_hour_window_exports_current_versions_and_excludes_changes_from_self() {
    let env = env().await;
    let now: Timestamp = "2026-12-04T07:00:00Z".parse().unwrap();
    env.emu().freeze_clock(now);
    let h = |n: i64| now - SignedDuration::from_hours(n);
    let ids = env
        .emu()
        .seed_people([
            person(1, h(47)),
            person(2, h(49)),
            person(3, h(1)),
            person(4, h(2)),
        ])
        .unwrap();
    // Person 4 is then written by the API user itself (Ferry), person 1 flipped in VAN's UI.
    let r = env
        .post(
            &format!("/v4/people/{}", ids[3]),
            json!({"middleName": "Q"}),
        )
        .await;
    assert_eq!(r.status, 302);
    env.emu()
        .set_opt_in(ids[0], "6175550001", OptIn::Out)
        .unwrap();
    let from = (now - SignedDuration::from_hours(48))
        .strftime("%Y-%m-%dT%H:%M:%S.00Z")
        .to_string();
    let (job, files) = export(
        &env,
        json!({"resourceType": "Contacts", "dateChangedFrom": from,
               "requestedFields": ["FirstName", "LastName", "Phone", "PhoneOptInStatus", "Email", "NoSuchField"],
               "excludeChangesFromSelf": true}),
    )
    .await;
    assert_eq!(job["exportedRecordCount"], 2);
    let rows = rows(&files);
    assert_eq!(
        rows[0],
        [
            "VanID",
            "FirstName",
            "LastName",
            "Phone",
            "PhoneOptInStatus",
            "Email"
        ]
    );
    let van_ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        van_ids,
        [ids[0].to_string(), ids[2].to_string()],
        "49 h ago and changes from self are out"
    );
    assert_eq!(rows[1][2], "Last, \"1\"", "quoted CSV");
    assert_eq!(rows[1][4], "3", "the current version: opted out since");
    // Without excludeChangesFromSelf the API user's own change is exported.
    let (job, _) = export(
        &env,
        json!({"resourceType": "Contacts", "dateChangedFrom": from}),
    )
    .await;
    assert_eq!(job["exportedRecordCount"], 3);
}

#[tokio::test]
async fn job_requests_are_checked() {
    let env = env().await;
    let now = env.emu().now();
    let old = (now - SignedDuration::from_hours(24 * 91)).to_string();
    let r = env
        .post(
            "/v4/changedEntityExportJobs",
            json!({"resourceType": "Contacts", "dateChangedFrom": old}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error().1,
        "'dateChangedFrom' must be within the last 90 days."
    );
    let r = env
        .post(
            "/v4/changedEntityExportJobs",
            json!({"resourceType": "Contacts"}),
        )
        .await;
    assert_eq!(
        r.body["errors"][0]["properties"],
        json!(["dateChangedFrom"])
    );
    let ok_from = (now - SignedDuration::from_hours(1)).to_string();
    let r = env
        .post(
            "/v4/changedEntityExportJobs",
            json!({"resourceType": "Contacts", "dateChangedFrom": ok_from, "fileSizeKbLimit": 999}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = env
        .post(
            "/v4/changedEntityExportJobs",
            json!({"resourceType": "Contacts", "dateChangedFrom": ok_from, "requestedFields": ["Phone", "Bogus"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["requestedFields"],
        json!(["Phone"]),
        "only accepted properties come back"
    );
    assert_eq!(r.body["fileSizeKbLimit"], 40_000);
}

#[tokio::test]
async fn files_split_by_the_size_limit_and_links_need_their_signature_and_expire() {
    let env = env_with(EmulatorConfig {
        header_on_every_file: true,
        ..config()
    })
    .await;
    let now = env.emu().now();
    let seeds: Vec<SeedPerson> = (0..12_000).map(|i| person(i, now)).collect();
    env.emu().seed_people(seeds).unwrap();
    let from = (now - SignedDuration::from_hours(1)).to_string();
    let fields = [
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "PhoneOptInStatus",
        "AddressLine1",
        "City",
        "State",
        "Zip",
    ];
    let (job, files) = export(
        &env,
        json!({"resourceType": "Contacts", "dateChangedFrom": from, "requestedFields": fields, "fileSizeKbLimit": 1000}),
    )
    .await;
    assert!(files.len() >= 2, "{} files", files.len());
    for f in &files {
        assert!(f.len() <= 1000 * 1024);
        assert!(f.starts_with("VanID,FirstName"));
    }
    let data_rows = rows(&files).len() - files.len();
    assert_eq!(data_rows, 12_000);
    assert_eq!(job["exportedRecordCount"], 12_000);
    let url = job["files"][0]["downloadUrl"].as_str().unwrap();
    let (base, _) = url.split_once("?sig=").unwrap();
    assert_eq!(
        env.get_plain(&format!("{base}?sig=forged")).await.status,
        403
    );
    env.emu().advance_clock(Duration::from_secs(21 * 86_400));
    assert_eq!(
        env.get_plain(url).await.status,
        403,
        "links expire after 20 days"
    );
}
