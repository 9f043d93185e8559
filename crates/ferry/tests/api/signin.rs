//! Sign-in throttling: guessing slows down the guessing client only; the owner's right
//! password from elsewhere always signs in. Waits are long in these tests (10 minutes and
//! more), so nothing depends on how fast the test runs.

use ferry_core::signin::Policy;
use ferry_store::AuditQuery;
use ferry_web::WebConfig;
use ferry_web::client::TrustedProxies;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, spawn_app_with};

fn slow_policy() -> Policy {
    Policy {
        first_account_delay_secs: 600,
        ..Policy::default()
    }
}

async fn attempt(app: &TestApp, xff: Option<&str>, email: &str, password: &str) -> u16 {
    let mut req = app
        .http
        .post(app.url("/login"))
        .form(&[("email", email), ("password", password)]);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn failed_signins(app: &TestApp) -> Vec<ferry_store::AuditEntry> {
    let inst = app
        .store
        .institution_by_slug("state-u")
        .await
        .unwrap()
        .unwrap();
    app.store
        .audit_log(
            inst.id,
            &AuditQuery {
                kind: Some("signin.failed".into()),
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .entries
}

#[tokio::test]
async fn the_right_password_signs_in_after_many_wrong_ones_from_another_client() {
    let app = spawn_app_with(WebConfig {
        trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
        signin: slow_policy(),
        ..WebConfig::default()
    })
    .await;
    let attacker = Some("6.6.6.6, 192.0.2.66");
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(attempt(&app, attacker, ADMIN_EMAIL, "wrong password").await);
    }
    assert_eq!(&statuses[..4], [401, 401, 401, 401], "{statuses:?}");
    assert!(
        statuses[4..].iter().all(|s| *s == 429),
        "after 3 free failures the guessing client waits: {statuses:?}"
    );
    assert_eq!(
        attempt(&app, attacker, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        429,
        "the guessing client waits even with the right password"
    );
    // The owner, at another address behind the same proxy, is not slowed at all.
    assert_eq!(
        attempt(&app, Some("198.51.100.7"), ADMIN_EMAIL, ADMIN_PASSWORD).await,
        303
    );
    // Failures were audited with the client's address (the one the proxy vouched for), and
    // only those that were checked: waiting attempts are not failures.
    let failed = failed_signins(&app).await;
    assert_eq!(failed.len(), 4);
    assert!(
        failed
            .iter()
            .all(|e| e.client == "192.0.2.66" && e.detail["reason"] == "wrong_password"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(WebConfig {
        signin: slow_policy(),
        ..WebConfig::default()
    })
    .await;
    for _ in 0..4 {
        assert_eq!(
            attempt(&app, Some("192.0.2.66"), ADMIN_EMAIL, "wrong password").await,
            401
        );
    }
    // Claiming another address changes nothing: the peer (127.0.0.1) is the client.
    assert_eq!(
        attempt(&app, Some("198.51.100.7"), ADMIN_EMAIL, ADMIN_PASSWORD).await,
        429
    );
    let failed = failed_signins(&app).await;
    assert!(failed.iter().all(|e| e.client == "127.0.0.1"), "{failed:?}");
}

#[tokio::test]
async fn a_client_over_its_budget_waits_for_every_account_others_do_not() {
    let app = spawn_app_with(WebConfig {
        trusted_proxies: TrustedProxies::parse("127.0.0.0/8").unwrap(),
        signin: Policy {
            client_budget: 5,
            ..slow_policy()
        },
        ..WebConfig::default()
    })
    .await;
    for i in 0..5 {
        let email = format!("user{i}@example.edu");
        assert_eq!(
            attempt(&app, Some("192.0.2.66"), &email, "wrong password").await,
            401
        );
    }
    assert_eq!(
        attempt(&app, Some("192.0.2.66"), ADMIN_EMAIL, ADMIN_PASSWORD).await,
        429,
        "the address spent its budget"
    );
    assert_eq!(
        attempt(&app, Some("192.0.2.67"), ADMIN_EMAIL, ADMIN_PASSWORD).await,
        303
    );
}

#[tokio::test]
async fn a_right_password_takes_its_count_back() {
    let app = spawn_app_with(WebConfig {
        signin: Policy {
            client_budget: 3,
            ..slow_policy()
        },
        ..WebConfig::default()
    })
    .await;
    // Two failures, then many right passwords: the address never reaches its budget of 3,
    // and the account's streak starts over at each success.
    for _ in 0..2 {
        assert_eq!(
            attempt(&app, None, ADMIN_EMAIL, "wrong password").await,
            401
        );
    }
    for _ in 0..5 {
        assert_eq!(attempt(&app, None, ADMIN_EMAIL, ADMIN_PASSWORD).await, 303);
    }
}

/// The same without `X-Forwarded-For`: real peers at different loopback addresses, with the
/// default rules. Only the other client's outcome is asserted, so the test does not depend on
/// how long the guessing client's waits are.
#[tokio::test]
async fn guessing_from_one_address_does_not_lock_the_owner_out_at_another() {
    let app = crate::helpers::spawn_app().await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let attacker = from("127.0.0.2");
    for _ in 0..10 {
        let res = attacker
            .post(app.url("/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", "wrong password")])
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&res.status().as_u16()));
    }
    let res = from("127.0.0.3")
        .post(app.url("/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the owner signs in from another address");
}
