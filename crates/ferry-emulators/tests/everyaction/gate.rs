//! Authentication, the rate limit, faults and the administration endpoints.

use std::time::Duration;

use ferry_emulators::everyaction::{Faults, SeedPerson};
use jiff::Timestamp;
use serde_json::json;

use crate::common::{KEY, env};

#[tokio::test]
async fn basic_auth_needs_the_key_in_mode_1_and_any_app_name() {
    let env = env().await;
    let ok = env
        .get_as(
            "/v4/apiKeyProfiles",
            Some(("anything", &format!("{KEY}|1"))),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["count"], 1);
    assert!(ok.body["nextPageLink"].is_null());
    let profile = &ok.body["items"][0];
    assert_eq!(profile["databaseName"], "EveryAction Emulator");
    assert_eq!(profile["hasMyCampaign"], true);
    assert_eq!(profile["username"], "ferry-tests");
    let denied = json!({"errors":[{"code":"UNAUTHORIZED","text":"Invalid Database Mode"}]});
    for auth in [
        None,
        Some(("ferry-tests", format!("{KEY}|0"))),
        Some(("ferry-tests", "wrong-key|1".to_string())),
        Some(("ferry-tests", KEY.to_string())),
    ] {
        let r = env
            .get_as(
                "/v4/apiKeyProfiles",
                auth.as_ref().map(|(u, p)| (*u, p.as_str())),
            )
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body, denied, "a bad key and a wrong mode look the same");
    }
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_the_wait_in_the_text_and_no_retry_after() {
    let env = env().await;
    env.emu()
        .freeze_clock("2026-12-04T12:00:00Z".parse::<Timestamp>().unwrap());
    env.emu().set_rate_limit(2);
    assert_eq!(env.get("/v4/apiKeyProfiles").await.status, 200);
    env.emu().advance_clock(Duration::from_millis(400));
    assert_eq!(env.get("/v4/people?lastName=x").await.status, 200);
    let r = env.get("/v4/apiKeyProfiles").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body,
        json!({"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 600 ms."}]})
    );
    assert!(r.header("retry-after").is_none());
    env.emu().advance_clock(Duration::from_millis(600));
    assert_eq!(
        env.get("/v4/apiKeyProfiles").await.status,
        200,
        "the first slid out"
    );
    let c = env.emu().counters();
    assert_eq!(c.rate_limited, 1);
    assert_eq!(c.requests_to("GET /v4/apiKeyProfiles"), 3);
    assert_eq!(c.total_429(), 1);
}

#[tokio::test]
async fn faults_inject_5xx_and_429_bursts_and_after_effects() {
    let env = env().await;
    env.emu().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = env.get("/v4/apiKeyProfiles").await;
    assert!(r.status >= 500, "{}", r.status);
    env.emu().set_faults(Faults {
        burst_429_rate: 1.0,
        burst_429_len: 2,
        burst_429_wait_ms: 30,
        ..Faults::default()
    });
    let r = env.get("/v4/apiKeyProfiles").await;
    assert_eq!(
        r.body,
        json!({"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 30 ms."}]})
    );
    // After-effect errors: the write happens, the answer is lost.
    let id = env
        .emu()
        .seed_people([SeedPerson::new(json!({"firstName":"A"}))])
        .unwrap()[0];
    env.emu().set_faults(Faults {
        error_rate: 1.0,
        after_effect_rate: 1.0,
        ..Faults::default()
    });
    let r = env
        .post(&format!("/v4/people/{id}"), json!({"lastName": "B"}))
        .await;
    assert!(r.status >= 500);
    assert_eq!(env.emu().person(id).unwrap().get("lastName"), Some("B"));
    assert!(env.emu().counters().injected_errors >= 2);
}

#[tokio::test]
async fn admin_endpoints_seed_flip_and_dump_without_auth() {
    let env = env().await;
    let http = &env.http;
    let r = http
        .post(env.url("/__emulator/people"))
        .json(&json!({"people": [{"firstName": "Ike", "phones": [{"phoneNumber": "6175550111", "phoneOptInStatus": "I"}], "dateModified": "2026-12-01T00:00:00Z"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["vanIds"][0]
        .as_u64()
        .unwrap();
    let r = http
        .post(env.url(&format!("/__emulator/people/{id}/optIn")))
        .json(&json!({"phoneNumber": "617-555-0111", "status": "O"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let dump: serde_json::Value = http
        .get(env.url("/__emulator/people"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dump["people"][0]["phones"][0]["optIn"], "Opt-Out");
    assert_eq!(dump["people"][0]["modifiedBy"], "other");
    let r = http
        .put(env.url("/__emulator/clock"))
        .json(&json!({"now": "2026-12-04T03:00:00Z", "frozen": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.emu().now().to_string(), "2026-12-04T03:00:00Z");
    let r = http
        .put(env.url("/__emulator/limits"))
        .json(&json!({"rate_limit_per_second": 15}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.emu().rate_limit(), 15);
    assert_eq!(
        env.emu().counters().api_requests(),
        0,
        "admin calls are not counted"
    );
}
