//! Salesforce sign-in: the web-server flow with PKCE (a connected account, its tokens sealed by
//! the store and refreshed with the refresh token), and the JWT bearer flow for server-to-server
//! use. Either gives a [`Session`]: an access token and the `instance_url` every call goes to.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_store::Store;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::SalesforceSettings;
use super::client::SalesforceError;
use super::config::{JwtBearer, LoginHost};

/// The scopes Ferry asks for: the REST API, and a refresh token.
pub const SCOPES: &str = "api refresh_token";

/// The connected app's credentials (`FERRY_SALESFORCE_CLIENT_ID`,
/// `FERRY_SALESFORCE_CLIENT_SECRET`).
#[derive(Clone)]
pub struct OAuthApp {
    /// The consumer key.
    pub client_id: String,
    /// The consumer secret.
    pub client_secret: SecretString,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A signed-in session: where calls go and the token they carry.
#[derive(Clone)]
pub struct Session {
    /// The org's instance, e.g. `https://acme.my.salesforce.com` (no trailing slash).
    pub instance_url: String,
    /// The access token (Salesforce's session ID).
    pub access_token: SecretString,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("instance_url", &self.instance_url)
            .finish_non_exhaustive()
    }
}

/// Where a client's session comes from, and how it gets a new one after Salesforce said
/// `INVALID_SESSION_ID`.
#[async_trait::async_trait]
pub trait SessionSource: Send + Sync {
    /// The current session (signing in first if there is none).
    async fn session(&self) -> Result<Session, SalesforceError>;
    /// A new session, the current one having been refused.
    async fn renew(&self) -> Result<Session, SalesforceError>;
}

/// What a token answer holds.
#[derive(Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: SecretString,
    /// Only from the web-server flow.
    pub refresh_token: Option<SecretString>,
    /// Where API calls go.
    pub instance_url: String,
    /// The identity URL, `…/id/{orgId}/{userId}`.
    pub id: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The stored form of a connected account's tokens.
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token.expose_secret(),
            "refresh_token": self.refresh_token.as_ref().map(|r| r.expose_secret().to_string()),
            "instance_url": self.instance_url,
            "id": self.id,
        })
    }

    /// From the stored form.
    pub fn from_json(v: &Value) -> Option<Tokens> {
        Some(Tokens {
            access_token: SecretString::from(v["access_token"].as_str()?.to_string()),
            refresh_token: v["refresh_token"]
                .as_str()
                .map(|r| SecretString::from(r.to_string())),
            instance_url: v["instance_url"].as_str()?.to_string(),
            id: v["id"].as_str().unwrap_or("").to_string(),
        })
    }

    /// The org and user IDs of the identity URL.
    pub fn org_and_user(&self) -> Option<(&str, &str)> {
        let mut parts = self.id.trim_end_matches('/').rsplit('/');
        let user = parts.next()?;
        let org = parts.next()?;
        Some((org, user))
    }
}

fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The consent page for `state` with the PKCE challenge, returning to `redirect_uri`.
pub fn authorize_url(
    settings: &SalesforceSettings,
    app: &OAuthApp,
    redirect_uri: &str,
    state: &str,
    code_challenge: &str,
) -> String {
    format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&code_challenge={}&code_challenge_method=S256",
        settings.login_url.trim_end_matches('/'),
        q(&app.client_id),
        q(redirect_uri),
        q(SCOPES),
        q(state),
        q(code_challenge),
    )
}

/// Posts a token request to `{host}/services/oauth2/token`.
async fn token_request(
    settings: &SalesforceSettings,
    host: &str,
    form: &[(&str, &str)],
) -> Result<Tokens, SalesforceError> {
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .build()
        .map_err(|e| SalesforceError::Transport(e.to_string()))?;
    let res = http
        .post(format!(
            "{}/services/oauth2/token",
            host.trim_end_matches('/')
        ))
        .header("Accept", "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| SalesforceError::Transport(e.to_string()))?;
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(SalesforceError::Token {
            status,
            error: v["error"].as_str().unwrap_or("unknown_error").to_string(),
            description: v["error_description"]
                .as_str()
                .unwrap_or("the token request was refused")
                .to_string(),
        });
    }
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| SalesforceError::Transport(format!("the token answer has no {k}")))
    };
    Ok(Tokens {
        access_token: SecretString::from(field("access_token")?),
        refresh_token: v["refresh_token"]
            .as_str()
            .map(|r| SecretString::from(r.to_string())),
        instance_url: field("instance_url")?.trim_end_matches('/').to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
    })
}

/// Exchanges the code of the consent page's redirect (with the PKCE verifier) for tokens.
pub async fn exchange_code(
    settings: &SalesforceSettings,
    app: &OAuthApp,
    redirect_uri: &str,
    code: &str,
    code_verifier: &str,
) -> Result<Tokens, SalesforceError> {
    token_request(
        settings,
        &settings.login_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("code", code),
            ("code_verifier", code_verifier),
        ],
    )
    .await
}

/// A new access token for a refresh token (Salesforce does not rotate refresh tokens).
pub async fn refresh(
    settings: &SalesforceSettings,
    app: &OAuthApp,
    refresh_token: &str,
) -> Result<Tokens, SalesforceError> {
    token_request(
        settings,
        &settings.login_url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The host a JWT bearer flow signs in at, and the assertion's audience: the standard login or
/// test host; a custom login URL (an emulator, a community) is both.
fn jwt_host(settings: &SalesforceSettings, host: LoginHost) -> (String, String) {
    let login = settings.login_url.trim_end_matches('/');
    let standard = login == LoginHost::Login.audience() || login == LoginHost::Test.audience();
    if standard {
        (host.audience().to_string(), host.audience().to_string())
    } else {
        (login.to_string(), login.to_string())
    }
}

/// Signs the JWT bearer assertion: RS256 with `iss` the consumer key, `sub` the username,
/// `aud` the login host, and `exp` three minutes ahead.
pub fn assertion(
    jwt: &JwtBearer,
    audience: &str,
    private_key_pem: &str,
    now_s: i64,
) -> Result<String, String> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    let (label, der) = pem_private_key(private_key_pem)?;
    let key = if label == "RSA PRIVATE KEY" {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    }
    .map_err(|_| "the private key is not an RSA key in PEM (PKCS#8 or PKCS#1)".to_string())?;
    let claims = json!({
        "iss": jwt.consumer_key(),
        "sub": jwt.username(),
        "aud": audience,
        "exp": now_s + 180,
    });
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "the assertion could not be signed".to_string())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The first `… PRIVATE KEY` block of a PEM text: its label and DER bytes.
fn pem_private_key(pem: &str) -> Result<(String, Vec<u8>), String> {
    let mut label: Option<String> = None;
    let mut body = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
            body.clear();
        } else if line.starts_with("-----END ") {
            if let Some(l) = label.take()
                && l.ends_with("PRIVATE KEY")
            {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|_| "the private key's PEM body is not base64".to_string())?;
                return Ok((l, der));
            }
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    Err("no PRIVATE KEY block in the private key (paste the PEM text, BEGIN and END lines included)".into())
}

/// Signs in through the JWT bearer flow.
pub async fn jwt_bearer(
    settings: &SalesforceSettings,
    jwt: &JwtBearer,
    private_key_pem: &str,
) -> Result<Tokens, SalesforceError> {
    let (host, audience) = jwt_host(settings, jwt.login_host());
    let now_s = jiff::Timestamp::now().as_second();
    let assertion =
        assertion(jwt, &audience, private_key_pem, now_s).map_err(|m| SalesforceError::Token {
            status: 400,
            error: "invalid_private_key".into(),
            description: m,
        })?;
    token_request(
        settings,
        &host,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ],
    )
    .await
}

fn session_of(t: &Tokens) -> Session {
    Session {
        instance_url: t.instance_url.clone(),
        access_token: t.access_token.clone(),
    }
}

/// The session of a connected account: its stored tokens, refreshed (and stored again) when
/// Salesforce refuses the access token.
pub struct AccountSession {
    store: Store,
    institution_id: i64,
    account_id: i64,
    settings: SalesforceSettings,
    app: OAuthApp,
    current: Mutex<Option<Tokens>>,
}

impl AccountSession {
    /// The session of `account_id`, signed in with `app`.
    pub fn new(
        store: Store,
        institution_id: i64,
        account_id: i64,
        settings: SalesforceSettings,
        app: OAuthApp,
    ) -> Arc<AccountSession> {
        Arc::new(AccountSession {
            store,
            institution_id,
            account_id,
            settings,
            app,
            current: Mutex::new(None),
        })
    }
}

fn store_error(e: ferry_store::StoreError) -> SalesforceError {
    match e {
        ferry_store::StoreError::NotFound => SalesforceError::Token {
            status: 401,
            error: "account_removed".into(),
            description: "the Salesforce account of this instance is no longer connected; choose or connect an account".into(),
        },
        other => SalesforceError::Transport(format!("the account's tokens could not be read: {other}")),
    }
}

#[async_trait::async_trait]
impl SessionSource for AccountSession {
    async fn session(&self) -> Result<Session, SalesforceError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            let stored = self
                .store
                .crm_account_tokens(self.institution_id, self.account_id)
                .await
                .map_err(store_error)?;
            *current = Some(
                Tokens::from_json(&stored).ok_or_else(|| SalesforceError::Token {
                    status: 401,
                    error: "unreadable_tokens".into(),
                    description: "the account's tokens are unreadable; connect it again".into(),
                })?,
            );
        }
        Ok(session_of(current.as_ref().expect("set above")))
    }

    async fn renew(&self) -> Result<Session, SalesforceError> {
        self.session().await?;
        let mut current = self.current.lock().await;
        let tokens = current.clone().expect("read by session()");
        let refresh_token = tokens
            .refresh_token
            .clone()
            .ok_or_else(|| SalesforceError::Token {
                status: 401,
                error: "no_refresh_token".into(),
                description: "the account has no refresh token; connect it again".into(),
            })?;
        let fresh = refresh(&self.settings, &self.app, refresh_token.expose_secret()).await?;
        let stored = Tokens {
            // The refresh answer has no refresh token: the old one stays valid.
            refresh_token: fresh.refresh_token.clone().or(Some(refresh_token)),
            id: if fresh.id.is_empty() {
                tokens.id
            } else {
                fresh.id.clone()
            },
            ..fresh
        };
        self.store
            .set_crm_account_tokens(self.institution_id, self.account_id, &stored.to_json())
            .await
            .map_err(store_error)?;
        tracing::info!(
            account_id = self.account_id,
            "refreshed the Salesforce access token"
        );
        let s = session_of(&stored);
        *current = Some(stored);
        Ok(s)
    }
}

/// A session from the JWT bearer flow: signs in when first asked and again when refused (the
/// flow has no refresh token).
pub struct JwtSession {
    settings: SalesforceSettings,
    jwt: JwtBearer,
    private_key: SecretString,
    current: Mutex<Option<Session>>,
}

impl JwtSession {
    /// A session for `jwt` with the PEM `private_key`.
    pub fn new(
        settings: SalesforceSettings,
        jwt: JwtBearer,
        private_key: SecretString,
    ) -> Arc<JwtSession> {
        Arc::new(JwtSession {
            settings,
            jwt,
            private_key,
            current: Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl SessionSource for JwtSession {
    async fn session(&self) -> Result<Session, SalesforceError> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref() {
            return Ok(s.clone());
        }
        let t = jwt_bearer(&self.settings, &self.jwt, self.private_key.expose_secret()).await?;
        let s = session_of(&t);
        *current = Some(s.clone());
        Ok(s)
    }

    async fn renew(&self) -> Result<Session, SalesforceError> {
        *self.current.lock().await = None;
        self.session().await
    }
}

/// Salesforce as an OAuth provider of Ferry's generic routes (with PKCE).
#[derive(Debug, Clone)]
pub struct Provider {
    settings: SalesforceSettings,
}

impl Provider {
    /// The provider for the org at `settings.login_url` (its app in `settings.app`).
    pub fn new(settings: SalesforceSettings) -> Self {
        Provider { settings }
    }
}

#[async_trait::async_trait]
impl crate::describe::OAuthProvider for Provider {
    fn id(&self) -> &'static str {
        "salesforce"
    }

    fn name(&self) -> &'static str {
        "Salesforce"
    }

    fn is_configured(&self) -> bool {
        self.settings.app.is_some()
    }

    fn setup_hint(&self) -> &'static str {
        "set FERRY_SALESFORCE_CLIENT_ID and FERRY_SALESFORCE_CLIENT_SECRET (a connected app's consumer key and secret, with Ferry's /oauth/salesforce/callback as its callback URL) on the server, and FERRY_SALESFORCE_LOGIN_URL for a sandbox or My Domain. Until then, use the JWT bearer flow."
    }

    fn authorize_url(&self, _redirect_uri: &str, _state: &str) -> Option<String> {
        // Salesforce's flow always carries a PKCE challenge: see `authorize_url_pkce`.
        None
    }

    async fn connect(
        &self,
        _redirect_uri: &str,
        _code: &str,
    ) -> Result<crate::describe::ConnectedAccount, String> {
        Err("Salesforce sign-in needs the flow's PKCE verifier; start again from the instance's Authentication step.".into())
    }

    fn uses_pkce(&self) -> bool {
        true
    }

    fn authorize_url_pkce(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> Option<String> {
        let app = self.settings.app.as_ref()?;
        Some(authorize_url(
            &self.settings,
            app,
            redirect_uri,
            state,
            code_challenge,
        ))
    }

    async fn connect_pkce(
        &self,
        redirect_uri: &str,
        code: &str,
        code_verifier: &str,
    ) -> Result<crate::describe::ConnectedAccount, String> {
        let app = self
            .settings
            .app
            .as_ref()
            .ok_or("Salesforce OAuth is not configured on this server.")?;
        let tokens = exchange_code(&self.settings, app, redirect_uri, code, code_verifier)
            .await
            .map_err(|e| format!("Salesforce refused the sign-in: {e}"))?;
        let (org, user) = tokens
            .org_and_user()
            .map(|(o, u)| (o.to_string(), u.to_string()))
            .ok_or("Salesforce did not say which org this is (no identity URL).")?;
        let host = tokens
            .instance_url
            .split("://")
            .nth(1)
            .unwrap_or(&tokens.instance_url)
            .to_string();
        Ok(crate::describe::ConnectedAccount {
            external_id: org.clone(),
            label: format!("{host} (org {org}, user {user})"),
            tokens: tokens.to_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_url_carries_the_pkce_challenge() {
        let settings = SalesforceSettings::default();
        let app = OAuthApp {
            client_id: "3MVG9key".into(),
            client_secret: SecretString::from("s".to_string()),
        };
        let url = authorize_url(
            &settings,
            &app,
            "http://ferry.test/oauth/salesforce/callback",
            "st",
            "ch",
        );
        assert!(url.starts_with("https://login.salesforce.com/services/oauth2/authorize?response_type=code&client_id=3MVG9key&redirect_uri=http%3A%2F%2Fferry.test%2Foauth%2Fsalesforce%2Fcallback"), "{url}");
        assert!(
            url.ends_with("&state=st&code_challenge=ch&code_challenge_method=S256"),
            "{url}"
        );
    }

    #[test]
    fn jwt_audiences_follow_the_login_host() {
        let mut s = SalesforceSettings::default();
        assert_eq!(
            jwt_host(&s, LoginHost::Test).1,
            "https://test.salesforce.com"
        );
        s.login_url = "http://127.0.0.1:9000".into();
        assert_eq!(jwt_host(&s, LoginHost::Login).0, "http://127.0.0.1:9000");
    }

    #[test]
    fn stored_tokens_round_trip_and_name_the_org() {
        let t = Tokens {
            access_token: SecretString::from("a".to_string()),
            refresh_token: Some(SecretString::from("r".to_string())),
            instance_url: "https://x.my.salesforce.com".into(),
            id: "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA".into(),
        };
        let back = Tokens::from_json(&t.to_json()).unwrap();
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "r");
        assert_eq!(
            t.org_and_user(),
            Some(("00D000000000001AAA", "005000000000001AAA"))
        );
        assert!(pem_private_key("nothing").is_err());
    }
}
