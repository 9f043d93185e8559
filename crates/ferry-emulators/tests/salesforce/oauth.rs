//! OAuth: the web-server flow with PKCE, refresh, the JWT bearer flow, revocation, sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_emulators::salesforce::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, jwt,
};
use serde_json::{Value, json};

use crate::common::{V, env, env_with, http};

const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str(q).unwrap()
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Walks the consent page and returns the redirect's parameters.
async fn authorize(
    base: &str,
    extra: &[(&str, &str)],
    decision: &str,
) -> std::collections::HashMap<String, String> {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", CALLBACK),
        ("state", "xyz 1"),
    ];
    params.extend_from_slice(extra);
    let page = http()
        .get(format!(
            "{base}/services/oauth2/authorize?{}",
            serde_urlencoded::to_string(&params).unwrap()
        ))
        .send()
        .await
        .unwrap();
    let status = page.status().as_u16();
    let location = page
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    if let Some(loc) = location {
        assert_eq!(status, 302);
        return query_of(&loc);
    }
    assert_eq!(status, 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Allow Access?") && html.contains(DEFAULT_USERNAME));
    // Submit the form as a browser would: its hidden fields plus the decision.
    let mut form: Vec<(String, String)> = html
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|s| {
            let name = s
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = s
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (
                name.to_string(),
                value.replace("&#39;", "'").replace("&amp;", "&"),
            )
        })
        .collect();
    form.push(("decision".into(), decision.into()));
    let r = http()
        .post(format!("{base}/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    query_of(r.headers()["location"].to_str().unwrap())
}

#[tokio::test]
async fn web_server_flow_with_pkce_then_refresh() {
    let env = env().await;
    let base = env.emu.base_url().to_string();
    let back = authorize(
        &base,
        &[
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
        "allow",
    )
    .await;
    assert_eq!(back["state"], "xyz 1");
    let code = back["code"].clone();

    // A wrong verifier is refused (and the code is spent, as a replay would be).
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", CALLBACK),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier",
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(body["error_description"], "invalid code verifier");

    let back = authorize(&base, &[("code_challenge", CHALLENGE)], "allow").await;
    let code = back["code"].clone();
    let missing = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(missing.1["error"], "invalid_grant");

    let back = authorize(&base, &[("code_challenge", CHALLENGE)], "allow").await;
    let code = back["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ];
    let (status, grant) = token(&base, &form).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["instance_url"], base.as_str());
    assert_eq!(grant["token_type"], "Bearer");
    assert!(
        grant["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/id/00D"))
    );
    assert!(grant["issued_at"].as_str().unwrap().parse::<i64>().is_ok());
    let refresh = grant["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    let access = grant["access_token"].as_str().unwrap().to_string();
    // The code works once.
    assert_eq!(token(&base, &form).await.1["error"], "invalid_grant");

    let r = http()
        .get(format!("{base}{V}/sobjects"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The session expires; the refresh token gives a new one (and no new refresh token).
    env.emu.state().expire_sessions();
    let r = http()
        .get(format!("{base}{V}/sobjects"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}])
    );
    let (status, renewed) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed.get("refresh_token").is_none());
    let r = http()
        .get(format!("{base}{V}/sobjects"))
        .bearer_auth(renewed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Bad credentials and grants.
    let bad_secret = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(
        (bad_secret.0, bad_secret.1["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let bad_refresh = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "5Aep861nope"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(
        bad_refresh.1,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
    let bad_client = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "other"),
        ],
    )
    .await;
    assert_eq!(bad_client.1["error"], "invalid_client_id");
    assert_eq!(
        token(&base, &[("grant_type", "password")]).await.1["error"],
        "unsupported_grant_type"
    );

    // Revoking the refresh token ends it.
    let r = http()
        .post(format!("{base}/services/oauth2/revoke"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let after = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(after.1["error"], "invalid_grant");
}

#[tokio::test]
async fn authorize_errors_and_denial() {
    let env = env().await;
    let base = env.emu.base_url();
    let denied = authorize(base, &[], "deny").await;
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["state"], "xyz 1");
    let bad = authorize(base, &[("code_challenge", "too-short")], "allow").await;
    assert_eq!(bad["error"], "invalid_request");
    let plain = authorize(
        base,
        &[
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "plain"),
        ],
        "allow",
    )
    .await;
    assert_eq!(plain["error"], "invalid_request");
    // An unknown client gets an error page, never a redirect.
    let r = http()
        .get(format!(
            "{base}/services/oauth2/authorize?{}",
            serde_urlencoded::to_string([
                ("response_type", "code"),
                ("client_id", "nope"),
                ("redirect_uri", CALLBACK)
            ])
            .unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("invalid_client_id"));
    // Without PKCE, a wrong redirect_uri at the exchange is refused.
    let back = authorize(base, &[], "allow").await;
    let (_, body) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", "http://127.0.0.1:9/other"),
        ],
    )
    .await;
    assert_eq!(body["error"], "redirect_uri_mismatch");
}

#[tokio::test]
async fn an_authorization_code_expires() {
    let env = env().await;
    let base = env.emu.base_url();
    let back = authorize(base, &[], "allow").await;
    env.emu
        .state()
        .advance_clock(std::time::Duration::from_secs(16 * 60));
    let (_, body) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "expired authorization code"})
    );
}

fn claims(aud: &str, sub: &str, iss: &str, exp_in: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"iss": iss, "sub": sub, "aud": aud, "exp": now + exp_in})
}

const KEY: &str = include_str!("fixtures/connected-app.key");
const CERT: &str = include_str!("fixtures/connected-app.crt");

#[tokio::test]
async fn jwt_bearer_flow_is_verified_against_the_certificate() {
    let env = env_with(EmulatorConfig {
        jwt_certificate: Some(CERT.to_string()),
        ..EmulatorConfig::default()
    })
    .await;
    let base = env.emu.base_url().to_string();
    let grant = |assertion: String| {
        let base = base.clone();
        async move {
            token(
                &base,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
            )
            .await
        }
    };
    let good = jwt::sign(
        KEY,
        &claims(
            "https://login.salesforce.com",
            DEFAULT_USERNAME,
            DEFAULT_CLIENT_ID,
            180,
        ),
    )
    .unwrap();
    let (status, body) = grant(good).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "JWT bearer answers carry no refresh token"
    );
    assert_eq!(body["instance_url"], base.as_str());
    let r = http()
        .get(format!("{base}{V}/limits"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let (other_key, _) = jwt::generate_key_pair().unwrap();
    let cases = [
        (
            jwt::sign(
                &other_key,
                &claims(
                    "https://login.salesforce.com",
                    DEFAULT_USERNAME,
                    DEFAULT_CLIENT_ID,
                    180,
                ),
            )
            .unwrap(),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt::sign(
                KEY,
                &claims(
                    "https://login.salesforce.com",
                    "someone@else.test",
                    DEFAULT_CLIENT_ID,
                    180,
                ),
            )
            .unwrap(),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            jwt::sign(
                KEY,
                &claims(
                    "https://login.salesforce.com",
                    DEFAULT_USERNAME,
                    "other-key",
                    180,
                ),
            )
            .unwrap(),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            jwt::sign(
                KEY,
                &claims(
                    "https://evil.example.com",
                    DEFAULT_USERNAME,
                    DEFAULT_CLIENT_ID,
                    180,
                ),
            )
            .unwrap(),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            jwt::sign(
                KEY,
                &claims(
                    "https://test.salesforce.com",
                    DEFAULT_USERNAME,
                    DEFAULT_CLIENT_ID,
                    -10,
                ),
            )
            .unwrap(),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            "not.a.jwt".to_string(),
            "invalid_grant",
            "invalid assertion",
        ),
    ];
    for (assertion, error, description) in cases {
        let (status, body) = grant(assertion).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"error": error, "error_description": description})
        );
    }
    // An unsigned token (alg none) is refused.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(
            claims(
                "https://login.salesforce.com",
                DEFAULT_USERNAME,
                DEFAULT_CLIENT_ID,
                180
            )
            .to_string()
        )
    );
    assert_eq!(grant(none).await.1["error"], "invalid_grant");
}

/// `exp` may be a string of digits: Salesforce's JWT bearer flow page writes its example claims
/// set with `"exp": "1333685628"`, and simple-salesforce sends it that way. It used to be refused
/// here as an invalid assertion.
#[tokio::test]
async fn jwt_bearer_flow_accepts_exp_as_a_string_of_digits() {
    let env = env_with(EmulatorConfig {
        jwt_certificate: Some(CERT.to_string()),
        ..EmulatorConfig::default()
    })
    .await;
    let base = env.emu.base_url().to_string();
    let with_exp = |exp: Value| {
        let mut c = claims(
            "https://login.salesforce.com",
            DEFAULT_USERNAME,
            DEFAULT_CLIENT_ID,
            180,
        );
        c["exp"] = exp;
        jwt::sign(KEY, &c).unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let grant = |assertion: String| {
        let base = base.clone();
        async move {
            token(
                &base,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
            )
            .await
        }
    };
    let (status, body) = grant(with_exp(json!((now + 180).to_string()))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some());
    // Expired as a string too; not a number at all is an invalid assertion.
    let (status, body) = grant(with_exp(json!((now - 10).to_string()))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_description"], "expired authorization code");
    for bad in [json!("soon"), json!(""), json!("-5"), json!(null)] {
        let (status, body) = grant(with_exp(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            body,
            json!({"error": "invalid_grant", "error_description": "invalid assertion"}),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn jwt_bearer_flow_accepts_a_public_key_and_is_refused_without_one() {
    let (private, public) = jwt::generate_key_pair().unwrap();
    let env = env_with(EmulatorConfig {
        jwt_certificate: Some(public),
        ..EmulatorConfig::default()
    })
    .await;
    let assertion = jwt::sign(
        &private,
        &claims(env.emu.base_url(), DEFAULT_USERNAME, DEFAULT_CLIENT_ID, 180),
    )
    .unwrap();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion.as_str()),
    ];
    assert_eq!(token(env.emu.base_url(), &form).await.0, 200);
    let plain = env_with(EmulatorConfig::default()).await;
    assert_eq!(
        token(plain.emu.base_url(), &form).await.1["error"],
        "invalid_grant"
    );
}
