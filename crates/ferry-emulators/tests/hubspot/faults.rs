//! Fault injection: reproducible with a seed; 5xx before and after the effect; 429 bursts;
//! latency; hangs.

use std::time::{Duration, Instant};

use ferry_emulators::hubspot::{EmulatorConfig, Faults};
use serde_json::json;

use crate::common::{self, Env, env, env_with};

const CONTACTS: &str = "/crm/v3/objects/contacts";

async fn statuses(env: &Env, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(env.get(CONTACTS).await.status);
    }
    out
}

#[tokio::test]
async fn faults_are_reproducible_with_a_seed() {
    let env = env().await;
    let faults = Faults {
        seed: 42,
        error_rate: 0.3,
        burst_429_rate: 0.1,
        burst_429_len: 2,
        ..Faults::default()
    };
    env.state().set_faults(faults);
    let first = statuses(&env, 60).await;
    env.state().set_faults(faults);
    let second = statuses(&env, 60).await;
    assert_eq!(first, second, "same seed, same answers");
    let errors = first.iter().filter(|s| **s >= 500).count();
    assert!((8..=30).contains(&errors), "about 30 % 5xx: {first:?}");
    assert!(first.contains(&429), "{first:?}");
    assert!(first.contains(&200), "{first:?}");
    let c = env.state().counters();
    assert_eq!(c.injected.errors as usize, 2 * errors);
    assert_eq!(
        c.injected.bursts_429 as usize,
        2 * first.iter().filter(|s| **s == 429).count()
    );

    assert!(env.state().schema_violations().is_empty());
    env.state().set_faults(Faults { seed: 43, ..faults });
    assert_ne!(
        statuses(&env, 60).await,
        first,
        "another seed, other answers"
    );

    // The same seed from the config gives the same sequence in a fresh emulator.
    let other = env_with(EmulatorConfig {
        faults,
        ..common::config()
    })
    .await;
    assert_eq!(statuses(&other, 60).await, first);
}

#[tokio::test]
async fn injected_5xx_look_like_hubspot_and_its_gateway() {
    let env = env().await;
    env.state().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let r = env.get(CONTACTS).await;
        seen.insert(
            r.status,
            (r.header("content-type").unwrap_or("").to_string(), r.text),
        );
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        [500, 502, 503, 504]
    );
    assert!(seen[&502].0.starts_with("text/html") && seen[&502].1.contains("502 Bad Gateway"));
    assert!(seen[&504].0.starts_with("text/html"));
    assert!(
        seen[&500].0.starts_with("application/json")
            && seen[&500].1.contains("\"status\":\"error\"")
    );
    assert!(env.state().contacts().is_empty());
}

#[tokio::test]
async fn an_error_after_the_effect_loses_the_answer_not_the_write() {
    let env = env().await;
    env.state().set_faults(Faults {
        error_rate: 1.0,
        after_effect_rate: 1.0,
        ..Faults::default()
    });
    let r = env
        .post(CONTACTS, json!({"properties": {"email": "ghost@x.org"}}))
        .await;
    assert!(r.status >= 500);
    assert!(
        env.state().contact_by_email("ghost@x.org").is_some(),
        "the contact was created"
    );
    env.state().set_faults(Faults::default());
    let r = env
        .post(CONTACTS, json!({"properties": {"email": "ghost@x.org"}}))
        .await;
    assert_eq!(r.status, 409, "a blind retry meets its own write");

    // Before the effect nothing happens.
    env.state().set_faults(Faults {
        error_rate: 1.0,
        after_effect_rate: 0.0,
        ..Faults::default()
    });
    env.post(CONTACTS, json!({"properties": {"email": "never@x.org"}}))
        .await;
    assert!(env.state().contact_by_email("never@x.org").is_none());
}

#[tokio::test]
async fn bursts_of_429() {
    let env = env().await;
    env.state().set_faults(Faults {
        burst_429_rate: 1.0,
        burst_429_len: 3,
        ..Faults::default()
    });
    let r = env.get(CONTACTS).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(r.header("x-hubspot-ratelimit-remaining"), Some("0"));
    env.state().set_faults(Faults {
        seed: 5,
        burst_429_rate: 0.05,
        burst_429_len: 4,
        ..Faults::default()
    });
    let s = statuses(&env, 200).await;
    // Every 429 belongs to bursts of 4 (back-to-back bursts make longer runs; the last run may
    // be cut short by the end of the sequence).
    let runs: Vec<usize> = s
        .split(|x| *x != 429)
        .map(<[u16]>::len)
        .filter(|n| *n > 0)
        .collect();
    assert!(runs.len() >= 2, "{s:?}");
    let complete = if s.last() == Some(&429) {
        &runs[..runs.len() - 1]
    } else {
        &runs[..]
    };
    assert!(complete.iter().all(|n| n % 4 == 0), "{runs:?}");
    // A burst 429 is not counted as a real limit.
    assert!(env.state().counters().rate_limited.is_empty());
}

#[tokio::test]
async fn added_latency() {
    let env = env().await;
    env.state().set_faults(Faults {
        latency: Duration::from_millis(120),
        latency_jitter: Duration::from_millis(30),
        ..Faults::default()
    });
    let start = Instant::now();
    assert_eq!(env.get(CONTACTS).await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn hangs_time_out_clients_and_end_with_a_504() {
    let env = env().await;
    env.state().set_faults(Faults {
        timeout_rate: 1.0,
        hang: Duration::from_millis(300),
        ..Faults::default()
    });
    let err = env
        .http
        .get(env.url(CONTACTS))
        .bearer_auth(&env.token)
        .timeout(Duration::from_millis(50))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let start = Instant::now();
    let r = env.get(CONTACTS).await;
    assert_eq!(r.status, 504);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(env.state().counters().injected.timeouts, 2);
}

#[tokio::test]
async fn shutdown_releases_hanging_requests() {
    let env = env().await;
    env.state().set_faults(Faults {
        timeout_rate: 1.0,
        hang: Duration::from_secs(3600),
        ..Faults::default()
    });
    let url = env.url(CONTACTS);
    let http = env.http.clone();
    let token = env.token.clone();
    let pending = tokio::spawn(async move { http.get(url).bearer_auth(token).send().await });
    // Wait (with a deadline) until the request is hanging inside the emulator.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.state().counters().injected.timeouts == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Env { emu, .. } = env;
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown())
        .await
        .expect("shutdown does not wait for the hang");
    let res = pending.await.unwrap();
    assert!(res.map(|r| r.status().as_u16() == 504).unwrap_or(true));
}
