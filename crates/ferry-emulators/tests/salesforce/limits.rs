//! The daily limit and its header, fault injection, sessions, the admin endpoints.

use ferry_emulators::salesforce::{Faults, Limits};
use reqwest::Method;
use serde_json::json;

use crate::common::{env, http};

#[tokio::test]
async fn every_answer_reports_usage_and_the_limit_is_enforced() {
    let env = env().await;
    env.emu.state().set_limits(Limits {
        daily_max: 5,
        used: 2,
    });
    let r = env.get("limits").await;
    assert_eq!(r.header("sforce-limit-info"), Some("api-usage=3/5"));
    assert_eq!(
        r.body["DailyApiRequests"],
        json!({"Max": 5, "Remaining": 2})
    );
    let bad = env.get("query?q=SELECT+Nope+FROM+Contact").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.header("sforce-limit-info"),
        Some("api-usage=4/5"),
        "errors are counted and carry the header"
    );
    assert_eq!(
        env.get("sobjects").await.header("sforce-limit-info"),
        Some("api-usage=5/5")
    );
    let refused = env.get("sobjects").await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (403, "REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(refused.body[0]["message"], "TotalRequests Limit exceeded.");
    assert_eq!(refused.header("sforce-limit-info"), Some("api-usage=5/5"));
    assert_eq!(env.emu.state().counters().limit_exceeded, 1);
    // The next UTC day starts afresh.
    env.emu
        .state()
        .advance_clock(std::time::Duration::from_secs(86_400));
    let fresh = env
        .emu
        .state()
        .issue_tokens(env.emu.base_url())
        .access_token;
    let r = http()
        .get(env.url("/services/data/v62.0/sobjects"))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/5");
}

#[tokio::test]
async fn injected_errors_and_expiring_sessions() {
    let env = env().await;
    env.emu.state().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = env.get("sobjects").await;
    assert!(matches!(r.status, 500 | 503), "{}", r.status);
    assert!(matches!(
        r.error_code(),
        "UNKNOWN_EXCEPTION" | "SERVER_UNAVAILABLE"
    ));
    // After-effect faults apply the write and lose the answer.
    env.emu.state().set_faults(Faults {
        error_rate: 1.0,
        after_effect_rate: 1.0,
        ..Faults::default()
    });
    let r = env
        .call(
            Method::POST,
            "sobjects/Contact",
            Some(json!({"LastName": "Ghost"})),
        )
        .await;
    assert!(r.status >= 500);
    assert_eq!(env.emu.state().records("Contact").len(), 1);

    env.emu.state().set_faults(Faults {
        session_expiry_rate: 1.0,
        ..Faults::default()
    });
    let r = env.get("sobjects").await;
    assert_eq!((r.status, r.error_code()), (401, "INVALID_SESSION_ID"));
    env.emu.state().set_faults(Faults::default());
    assert_eq!(
        env.get("sobjects").await.status,
        401,
        "the session stays expired"
    );
    assert_eq!(env.emu.state().counters().expired_sessions, 1);

    // Sessions also time out after their idle lifetime.
    let fresh = env
        .emu
        .state()
        .issue_tokens(env.emu.base_url())
        .access_token;
    env.emu
        .state()
        .advance_clock(std::time::Duration::from_secs(3 * 3600));
    let r = http()
        .get(env.url("/services/data/v62.0/sobjects"))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn faults_are_reproducible_from_their_seed() {
    let env = env().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        env.emu.state().set_faults(Faults {
            seed: 7,
            error_rate: 0.3,
            ..Faults::default()
        });
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(env.get("sobjects").await.status);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|s| *s >= 500) && runs[0].contains(&200));
}

#[tokio::test]
async fn admin_endpoints_seed_dump_and_reset() {
    let env = env().await;
    let base = env.emu.base_url();
    let r = http()
        .post(format!("{base}/__emulator/records/Lead"))
        .json(&json!({"records": [{"LastName": "L", "Company": "Acme"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let bad = http()
        .post(format!("{base}/__emulator/records/Lead"))
        .json(&json!([{"LastName": "L"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400, "Company is required on a Lead");
    let dump: serde_json::Value = http()
        .get(format!("{base}/__emulator/records/Lead"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        dump["records"][0]["fields"]["Status"],
        "Open - Not Contacted"
    );
    assert!(
        dump["records"][0]["Id"]
            .as_str()
            .unwrap()
            .starts_with("00Q")
    );
    let tokens: serde_json::Value = http()
        .post(format!("{base}/__emulator/oauth/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["instance_url"], base);
    http()
        .put(format!("{base}/__emulator/limits"))
        .json(&json!({"daily_max": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(env.emu.state().limits().daily_max, 10);
    http()
        .post(format!("{base}/__emulator/reset"))
        .send()
        .await
        .unwrap();
    assert!(env.emu.state().records("Lead").is_empty());
    assert_eq!(env.emu.state().counters().api_requests, 0);
}
