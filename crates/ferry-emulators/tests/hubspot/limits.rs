//! Rate limits: the 10-second rolling window, search per second, daily; headers and 429 bodies.

use std::time::Duration;

use ferry_emulators::hubspot::{EmulatorConfig, RateLimits};
use reqwest::Method;
use serde_json::json;

use crate::common::{self, TOKEN, env_with};

const CONTACTS: &str = "/crm/v3/objects/contacts";
const SEARCH: &str = "/crm/v3/objects/contacts/search";

fn limited(limits: RateLimits) -> EmulatorConfig {
    EmulatorConfig {
        private_app_tokens: vec![TOKEN.into(), "pat-na1-second-app".into()],
        limits,
        ..common::config()
    }
}

#[tokio::test]
async fn a_burst_over_the_ten_second_limit_gets_429s_with_headers() {
    let env = env_with(limited(RateLimits {
        ten_secondly_max: 5,
        ..RateLimits::default()
    }))
    .await;
    for i in 0..5 {
        let r = env.get(CONTACTS).await;
        assert_eq!(r.status, 200, "within the limit: no 429");
        assert_eq!(r.header("x-hubspot-ratelimit-max"), Some("5"));
        assert_eq!(
            r.header("x-hubspot-ratelimit-remaining"),
            Some((4 - i).to_string().as_str())
        );
        assert_eq!(
            r.header("x-hubspot-ratelimit-interval-milliseconds"),
            Some("10000")
        );
        assert_eq!(r.header("x-hubspot-ratelimit-daily"), Some("250000"));
        assert_eq!(
            r.header("x-hubspot-ratelimit-daily-remaining"),
            Some((250_000 - 1 - i).to_string().as_str())
        );
        assert!(
            r.header("retry-after").is_none(),
            "HubSpot does not promise Retry-After"
        );
    }
    let r = env.get(CONTACTS).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["status"], "error");
    assert_eq!(
        r.message(),
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(r.body["correlationId"].is_string());
    assert_eq!(r.header("x-hubspot-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-hubspot-ratelimit-max"), Some("5"));

    // Another app has its own budget.
    let r = env
        .call_as(Some("pat-na1-second-app"), Method::GET, CONTACTS, None)
        .await;
    assert_eq!(r.status, 200);

    // A refused request consumes nothing; the window rolls.
    env.state().advance_clock(Duration::from_millis(9_000));
    assert_eq!(env.get(CONTACTS).await.status, 429);
    env.state().advance_clock(Duration::from_millis(1_001));
    let r = env.get(CONTACTS).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hubspot-ratelimit-remaining"), Some("4"));

    let c = env.state().counters();
    assert_eq!(c.rate_limited["TEN_SECONDLY_ROLLING"], 2);
    assert_eq!(c.total_429(), 2);
    assert_eq!(c.requests_to("GET /crm/v3/objects/contacts"), 9);
}

#[tokio::test]
async fn search_has_its_own_per_second_limit_and_spares_the_ten_second_one() {
    let env = env_with(limited(RateLimits {
        ten_secondly_max: 10,
        search_max: 2,
        ..RateLimits::default()
    }))
    .await;
    for _ in 0..2 {
        let r = env.post(SEARCH, json!({})).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-hubspot-ratelimit-remaining"),
            Some("10"),
            "search is exempt"
        );
    }
    let r = env.post(SEARCH, json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "SECONDLY");
    assert_eq!(r.message(), "You have reached your secondly limit.");
    assert_eq!(
        env.get(CONTACTS).await.status,
        200,
        "other endpoints are unaffected"
    );
    env.state().advance_clock(Duration::from_secs(1));
    assert_eq!(env.post(SEARCH, json!({})).await.status, 200);
    assert_eq!(env.state().counters().rate_limited["SECONDLY"], 1);
}

#[tokio::test]
async fn the_daily_limit() {
    let env = env_with(limited(RateLimits {
        daily_max: 3,
        ..RateLimits::unlimited()
    }))
    .await;
    for _ in 0..3 {
        assert_eq!(env.get(CONTACTS).await.status, 200);
    }
    let r = env.post(SEARCH, json!({})).await;
    assert_eq!(r.status, 429, "search counts toward the daily limit");
    assert_eq!(r.body["policyName"], "DAILY");
    assert_eq!(r.message(), "You have reached your daily limit.");
    assert_eq!(r.header("x-hubspot-ratelimit-daily-remaining"), Some("0"));
    env.state().advance_clock(Duration::from_secs(86_400));
    assert_eq!(env.get(CONTACTS).await.status, 200, "a new UTC day");
}

#[tokio::test]
async fn limits_change_at_run_time() {
    let env = env_with(limited(RateLimits::unlimited())).await;
    for _ in 0..20 {
        assert_eq!(env.get(CONTACTS).await.status, 200);
    }
    let res = env
        .http
        .put(env.url("/__emulator/limits"))
        .json(&json!({"ten_secondly_max": 3, "ten_secondly_window_ms": 10_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(env.state().limits().ten_secondly_max, 3);
    assert_eq!(
        env.state().limits().daily_max,
        RateLimits::default().daily_max,
        "omitted fields take the defaults"
    );
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(env.get(CONTACTS).await.status);
        }
        v
    };
    assert_eq!(
        statuses, [429; 4],
        "the 20 requests already in the window count"
    );
    env.state().advance_clock(Duration::from_secs(10));
    assert_eq!(env.get(CONTACTS).await.status, 200);
}
