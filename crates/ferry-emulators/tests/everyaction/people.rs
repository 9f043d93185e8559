//! find, findOrCreate, create, update (merge), get with `$expand`, search with paging.

use ferry_emulators::everyaction::{OptIn, SeedPerson};
use serde_json::json;

use crate::common::env;

fn ana() -> SeedPerson {
    SeedPerson::new(json!({
        "firstName": "Ana", "lastName": "Díaz",
        "emails": [{"email": "ana@example.org"}],
        "phones": [{"phoneNumber": "617-555-0101", "phoneType": "C", "phoneOptInStatus": "I"}],
        "addresses": [{"addressLine1": "12 Main St", "city": "Boston", "stateOrProvince": "MA", "zipOrPostalCode": "02139"}],
    }))
}

#[tokio::test]
async fn find_answers_302_with_an_absolute_location_from_the_requests_own_host() {
    let env = env().await;
    let ids = env.emu().seed_people([ana()]).unwrap();
    let r = env
        .post(
            "/v4/people/find",
            json!({"firstName": "ANA", "lastName": "diaz", "phones": [{"phoneNumber": "(617) 555-0101"}]}),
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(r.body, json!({"vanId": ids[0], "status": "Matched"}));
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/v4/people/{}", env.emu.base_url(), ids[0]),
        "absolute, built from the request's scheme, host and port"
    );
    // Email alone and phone alone match; a name alone is below the minimum.
    let r = env
        .post(
            "/v4/people/find",
            json!({"emails": [{"email": "ANA@example.org"}]}),
        )
        .await;
    assert_eq!(r.status, 302);
    let r = env
        .post(
            "/v4/people/find",
            json!({"phones": [{"phoneNumber": "6175550101"}]}),
        )
        .await;
    assert_eq!(r.status, 302);
    let r = env
        .post(
            "/v4/people/find",
            json!({"firstName": "Ana", "lastName": "Diaz"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"vanId": null, "status": "Unmatched"}),
        "a stub, not the envelope"
    );
    // Any wrong extra field turns a match into Unmatched.
    let r = env
        .post(
            "/v4/people/find",
            json!({"firstName": "Ana", "lastName": "Diaz", "emails": [{"email": "ana@example.org"}], "phones": [{"phoneNumber": "6175550199"}]}),
        )
        .await;
    assert_eq!(r.status, 404);
    // A body vanId that exists overrides the criteria; vanId 0 is a 500.
    let r = env
        .post(
            "/v4/people/find",
            json!({"vanId": ids[0], "firstName": "Zed", "lastName": "Q"}),
        )
        .await;
    assert_eq!(r.status, 302);
    let r = env.post("/v4/people/find", json!({"vanId": 0})).await;
    assert_eq!(r.status, 500);
    assert!(r.body["errors"][0]["referenceCode"].is_string());
}

#[tokio::test]
async fn duplicates_resolve_to_the_lowest_id_by_name_and_the_highest_by_email_alone() {
    let env = env().await;
    let ids = env.emu().seed_people([ana(), ana(), ana()]).unwrap();
    let by_name = env
        .post(
            "/v4/people/find",
            json!({"firstName": "Ana", "lastName": "Diaz", "emails": [{"email": "ana@example.org"}]}),
        )
        .await;
    assert_eq!(by_name.body["vanId"], json!(ids[0]));
    let by_email = env
        .post(
            "/v4/people/find",
            json!({"emails": [{"email": "ana@example.org"}]}),
        )
        .await;
    assert_eq!(by_email.body["vanId"], json!(ids[2]));
}

#[tokio::test]
async fn find_or_create_matches_creates_and_silently_duplicates_below_the_minimum() {
    let env = env().await;
    let ids = env.emu().seed_people([ana()]).unwrap();
    let r = env
        .post(
            "/v4/people/findOrCreate",
            json!({"firstName": "Ana", "lastName": "Diaz", "emails": [{"email": "ana@example.org"}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (302, Some("Matched"))
    );
    assert_eq!(r.body["vanId"], json!(ids[0]));
    let r = env
        .post(
            "/v4/people/findOrCreate",
            json!({"firstName": "Bo", "lastName": "Li", "phones": [{"phoneNumber": "6175550102", "phoneOptInStatus": "I"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "UnmatchedStored");
    assert!(r.header("location").is_none());
    // Below the minimum: a duplicate Ana, every time.
    for _ in 0..2 {
        let r = env
            .post(
                "/v4/people/findOrCreate",
                json!({"firstName": "Ana", "lastName": "Diaz"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let anas = env
        .emu()
        .people()
        .into_iter()
        .filter(|p| p.get("firstName") == Some("Ana"))
        .count();
    assert_eq!(anas, 3);
    let r = env
        .post("/v4/people/create", json!({"firstName": "Cy"}))
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("Stored")));
}

#[tokio::test]
async fn updates_append_dedupe_emails_and_change_the_same_phone_in_place() {
    let env = env().await;
    let id = env.emu().seed_people([ana()]).unwrap()[0];
    let path = format!("/v4/people/{id}");
    let r = env
        .post(
            &path,
            json!({
                "lastName": "Díaz-Ruiz",
                "emails": [{"email": "ANA@example.org"}, {"email": "ana.d@example.org"}],
                "phones": [{"phoneNumber": "6175550101", "phoneOptInStatus": "O"}, {"phoneNumber": "6175550177"}],
                "addresses": [{"addressLine1": "12 Main St", "city": "Boston", "zipOrPostalCode": "02139"}],
            }),
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(r.body, json!({"vanId": id, "status": "Matched"}));
    assert!(r.header("location").unwrap().ends_with(&path));
    let p = env.emu().person(id).unwrap();
    assert_eq!(p.get("lastName"), Some("Díaz-Ruiz"));
    assert_eq!(p.emails.len(), 2, "the identical email is deduplicated");
    assert_eq!(
        p.phones.len(),
        2,
        "a new number is appended, the same one is not"
    );
    assert_eq!(p.phones[0].opt_in, OptIn::Out, "changed in place");
    assert_eq!(p.phones[1].opt_in, OptIn::Unknown, "the default");
    assert_eq!(
        p.addresses.len(),
        2,
        "addresses are appended, even identical ones"
    );
    // {} is a no-op 302; unknown, 0 and negative ids are the envelope 404; a non-integer is IIS's HTML.
    let before = env.emu().person(id).unwrap();
    assert_eq!(env.post(&path, json!({})).await.status, 302);
    assert_eq!(env.emu().person(id).unwrap(), before);
    for bad in ["/v4/people/999", "/v4/people/0", "/v4/people/-4"] {
        let r = env.post(bad, json!({"firstName": "X"})).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.error().0, "NOT_FOUND");
    }
    let r = env.post("/v4/people/abc", json!({})).await;
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn bad_values_get_vans_400s_and_change_nothing() {
    let env = env().await;
    let id = env.emu().seed_people([ana()]).unwrap()[0];
    let before = env.emu().person(id).unwrap();
    let path = format!("/v4/people/{id}");
    let cases = [
        (
            json!({"firstName": "Z", "phones": [{"phoneNumber": "6175550109", "phoneOptInStatus": "Y"}]}),
            "'phoneOptInStatus' must be one of I , U , O",
            "phones[0].phoneOptInStatus",
        ),
        (
            json!({"phones": [{"phoneNumber": "6175550109"}, {"phoneNumber": "12"}]}),
            "Phone number is not valid. If entering UK number, please include leading 0.",
            "phones[1].phoneNumber",
        ),
        (
            json!({"emails": [{"email": "not-an-email"}]}),
            "'email' is not a valid email address",
            "emails[0].email",
        ),
    ];
    for (body, text, property) in cases {
        let r = env.post(&path, body).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.error(), ("INVALID_PARAMETER".into(), text.into()));
        assert_eq!(r.body["errors"][0]["properties"], json!([property]));
    }
    assert_eq!(env.emu().person(id).unwrap(), before);
}

#[tokio::test]
async fn get_leaves_collections_null_unless_expanded() {
    let env = env().await;
    let id = env.emu().seed_people([ana()]).unwrap()[0];
    let r = env.get(&format!("/v4/people/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["firstName"], "Ana");
    assert!(r.body["phones"].is_null() && r.body["emails"].is_null());
    assert!(r.body["addresses"].is_null() && r.body["notes"].is_null());
    let r = env
        .get(&format!(
            "/v4/people/{id}?$expand=phones,emails,addresses,notes"
        ))
        .await;
    assert_eq!(r.status, 200);
    let phone = &r.body["phones"][0];
    assert_eq!(phone["phoneNumber"], "6175550101");
    assert_eq!(phone["smsOptInStatus"], "Opt-In");
    assert_eq!(phone["phoneOptInStatus"], "Opt-In");
    assert_eq!(phone["deviceType"], "Cell");
    assert_eq!(phone["phoneType"], "Personal");
    assert_eq!(phone["isBest"], true);
    assert_eq!(r.body["emails"][0]["email"], "ana@example.org");
    assert_eq!(r.body["notes"], json!([]), "expanded but empty is []");
    let slots: Vec<&str> = r.body["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(slots, ["Voting", "Mailing"], "one address fills both slots");
    let r = env.get(&format!("/v4/people/{id}?$expand=phonez")).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"][0]["hint"].is_string());
    let r = env.get(&format!("/v4/people/{id}?$expand=scores")).await;
    assert_eq!(
        (r.status, r.error().1),
        (403, "May not request 'scores'".into())
    );
    assert_eq!(env.get("/v4/people/424242").await.error().0, "NOT_FOUND");
}

#[tokio::test]
async fn search_pages_with_top_skip_and_absolute_next_links() {
    let env = env().await;
    let seeds = (0..5).map(|i| {
        SeedPerson::new(json!({"firstName": format!("Sam{i}"), "lastName": "Rivera",
            "phones": [{"phoneNumber": format!("61755501{i:02}")}]}))
    });
    env.emu().seed_people(seeds).unwrap();
    let r = env.get("/v4/people?lastName=riv&$top=2").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["count"], 5);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let next = r.body["nextPageLink"].as_str().unwrap().to_string();
    assert_eq!(
        next,
        format!(
            "{}/v4/people?lastName=riv&$top=2&$skip=2",
            env.emu.base_url()
        )
    );
    let r2 = env.get(next.trim_start_matches(env.emu.base_url())).await;
    assert_eq!(r2.body["items"][0]["firstName"], "Sam2");
    let last = env.get("/v4/people?lastName=riv&$top=2&$skip=4").await;
    assert!(last.body["nextPageLink"].is_null());
    assert_eq!(last.body["items"].as_array().unwrap().len(), 1);
    // Only bare 10 digits find the best phone.
    let r = env.get("/v4/people?phoneNumber=6175550103").await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(
        env.get("/v4/people?phoneNumber=16175550103").await.body["count"],
        0
    );
    assert_eq!(
        env.get("/v4/people?phoneNumber=617-555-0103").await.status,
        400
    );
    let r = env.get("/v4/people?lastName=riv&$top=201").await;
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .1
            .contains("maximum result size for this end point: 200")
    );
    assert_eq!(env.get("/v4/people?lastName=riv&$top=0").await.status, 400);
    let r = env.get("/v4/people").await;
    assert_eq!(
        r.error().1,
        "This endpoint requires at least one search parameter to be set."
    );
}
