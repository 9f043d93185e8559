//! HubSpot OAuth: the authorize URL, the code exchange, token refresh, and a [`TokenSource`]
//! for an account connected this way that refreshes its access token before it expires and
//! stores the new tokens.

use std::sync::Arc;

use ferry_store::Store;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::HubSpotSettings;
use super::client::HubSpotError;
use crate::crm::http::TokenSource;

/// The scopes Ferry asks for.
pub const SCOPES: &str =
    "oauth crm.objects.contacts.read crm.objects.contacts.write crm.schemas.contacts.read";

/// Refresh this long before the access token expires.
const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// The OAuth app's credentials (`FERRY_HUBSPOT_CLIENT_ID`, `FERRY_HUBSPOT_CLIENT_SECRET`).
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Tokens as stored with an account.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// Epoch milliseconds.
    pub expires_at_ms: i64,
}

impl Tokens {
    /// The stored form.
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token.expose_secret(),
            "refresh_token": self.refresh_token.expose_secret(),
            "expires_at_ms": self.expires_at_ms,
        })
    }

    /// From the stored form.
    pub fn from_json(v: &Value) -> Option<Tokens> {
        Some(Tokens {
            access_token: SecretString::from(v["access_token"].as_str()?.to_string()),
            refresh_token: SecretString::from(v["refresh_token"].as_str()?.to_string()),
            expires_at_ms: v["expires_at_ms"].as_i64()?,
        })
    }
}

/// The account behind a token: HubSpot's hub ID and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    pub hub_id: String,
    pub hub_domain: String,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The URL of HubSpot's consent page for `state`, returning to `redirect_uri`.
pub fn authorize_url(
    settings: &HubSpotSettings,
    app: &OAuthApp,
    redirect_uri: &str,
    state: &str,
) -> String {
    let q = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "{}?client_id={}&redirect_uri={}&scope={}&state={}",
        settings.auth_url,
        q(&app.client_id),
        q(redirect_uri),
        q(SCOPES),
        q(state)
    )
}

async fn token_request(
    settings: &HubSpotSettings,
    form: &[(&str, &str)],
) -> Result<Tokens, HubSpotError> {
    let http = reqwest::Client::builder()
        .timeout(settings.limits.timeout)
        .build()
        .map_err(|e| HubSpotError::Transport(e.to_string()))?;
    let res = http
        .post(format!(
            "{}/oauth/v1/token",
            settings.api_url.trim_end_matches('/')
        ))
        .form(form)
        .send()
        .await
        .map_err(|e| HubSpotError::Transport(e.to_string()))?;
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(HubSpotError::Api {
            status,
            category: v["status"]
                .as_str()
                .or(v["category"].as_str())
                .unwrap_or("")
                .to_string(),
            message: v["message"]
                .as_str()
                .unwrap_or("the token request was refused")
                .to_string(),
        });
    }
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| HubSpotError::Transport(format!("the token answer has no {k}")))
    };
    Ok(Tokens {
        access_token: SecretString::from(field("access_token")?),
        refresh_token: SecretString::from(field("refresh_token")?),
        expires_at_ms: now_ms() + v["expires_in"].as_i64().unwrap_or(1800) * 1000,
    })
}

/// Exchanges the code from the consent page's redirect for tokens.
pub async fn exchange_code(
    settings: &HubSpotSettings,
    app: &OAuthApp,
    redirect_uri: &str,
    code: &str,
) -> Result<Tokens, HubSpotError> {
    token_request(
        settings,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("code", code),
        ],
    )
    .await
}

/// New tokens for a refresh token.
pub async fn refresh(
    settings: &HubSpotSettings,
    app: &OAuthApp,
    refresh_token: &str,
) -> Result<Tokens, HubSpotError> {
    token_request(
        settings,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The hub an access token belongs to (`GET /oauth/v1/access-tokens/{token}`).
pub async fn hub_of(settings: &HubSpotSettings, access_token: &str) -> Result<Hub, HubSpotError> {
    let res = reqwest::Client::new()
        .get(format!(
            "{}/oauth/v1/access-tokens/{access_token}",
            settings.api_url.trim_end_matches('/')
        ))
        .send()
        .await
        .map_err(|e| HubSpotError::Transport(e.to_string()))?;
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(HubSpotError::Api {
            status,
            category: v["category"].as_str().unwrap_or("").to_string(),
            message: v["message"]
                .as_str()
                .unwrap_or("the token was not recognised")
                .to_string(),
        });
    }
    Ok(Hub {
        hub_id: match &v["hub_id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => {
                return Err(HubSpotError::Transport(
                    "the token information has no hub_id".into(),
                ));
            }
        },
        hub_domain: v["hub_domain"].as_str().unwrap_or("").to_string(),
    })
}

/// The access token of a stored account, refreshed (and stored again) when it nears expiry.
pub struct AccountTokens {
    store: Store,
    institution_id: i64,
    account_id: i64,
    settings: HubSpotSettings,
    app: OAuthApp,
    current: Mutex<Option<Tokens>>,
}

impl AccountTokens {
    pub fn new(
        store: Store,
        institution_id: i64,
        account_id: i64,
        settings: HubSpotSettings,
        app: OAuthApp,
    ) -> Arc<AccountTokens> {
        Arc::new(AccountTokens {
            store,
            institution_id,
            account_id,
            settings,
            app,
            current: Mutex::new(None),
        })
    }
}

fn store_error(e: ferry_store::StoreError) -> HubSpotError {
    match e {
        ferry_store::StoreError::NotFound => HubSpotError::Api {
            status: 401,
            category: "ACCOUNT_REMOVED".into(),
            message: "the HubSpot account of this instance is no longer connected; choose or connect an account".into(),
        },
        other => HubSpotError::Transport(format!("the account's tokens could not be read: {other}")),
    }
}

#[async_trait::async_trait]
impl TokenSource<HubSpotError> for AccountTokens {
    async fn token(&self) -> Result<SecretString, HubSpotError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            let stored = self
                .store
                .crm_account_tokens(self.institution_id, self.account_id)
                .await
                .map_err(store_error)?;
            *current = Tokens::from_json(&stored);
        }
        let tokens = current.clone().ok_or_else(|| {
            HubSpotError::Transport("the account's tokens are unreadable; connect it again".into())
        })?;
        if tokens.expires_at_ms - REFRESH_MARGIN_MS > now_ms() {
            return Ok(tokens.access_token);
        }
        let fresh = refresh(
            &self.settings,
            &self.app,
            tokens.refresh_token.expose_secret(),
        )
        .await?;
        self.store
            .set_crm_account_tokens(self.institution_id, self.account_id, &fresh.to_json())
            .await
            .map_err(store_error)?;
        tracing::info!(
            account_id = self.account_id,
            "refreshed the HubSpot access token"
        );
        let token = fresh.access_token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    async fn invalidate(&self) {
        if let Some(t) = self.current.lock().await.as_mut() {
            t.expires_at_ms = 0;
        }
    }
}

/// HubSpot as an OAuth provider of Ferry's generic routes.
#[derive(Debug, Clone)]
pub struct Provider {
    settings: HubSpotSettings,
}

impl Provider {
    /// The provider for HubSpot at `settings` (its app in `settings.app`).
    pub fn new(settings: HubSpotSettings) -> Self {
        Provider { settings }
    }
}

#[async_trait::async_trait]
impl crate::describe::OAuthProvider for Provider {
    fn id(&self) -> &'static str {
        "hubspot"
    }

    fn name(&self) -> &'static str {
        "HubSpot"
    }

    fn is_configured(&self) -> bool {
        self.settings.app.is_some()
    }

    fn setup_hint(&self) -> &'static str {
        "set FERRY_HUBSPOT_CLIENT_ID and FERRY_HUBSPOT_CLIENT_SECRET (a HubSpot public app's credentials) on the server. Until then, use a private app's access token."
    }

    fn authorize_url(&self, redirect_uri: &str, state: &str) -> Option<String> {
        let app = self.settings.app.as_ref()?;
        Some(authorize_url(&self.settings, app, redirect_uri, state))
    }

    async fn connect(
        &self,
        redirect_uri: &str,
        code: &str,
    ) -> Result<crate::describe::ConnectedAccount, String> {
        let app = self
            .settings
            .app
            .as_ref()
            .ok_or("HubSpot OAuth is not configured on this server.")?;
        let tokens = exchange_code(&self.settings, app, redirect_uri, code)
            .await
            .map_err(|e| format!("HubSpot refused the sign-in: {e}"))?;
        let hub = hub_of(&self.settings, tokens.access_token.expose_secret())
            .await
            .map_err(|e| format!("HubSpot did not say which account this is: {e}"))?;
        let label = if hub.hub_domain.is_empty() {
            format!("HubSpot {}", hub.hub_id)
        } else {
            format!("{} ({})", hub.hub_domain, hub.hub_id)
        };
        Ok(crate::describe::ConnectedAccount {
            external_id: hub.hub_id,
            label,
            tokens: tokens.to_json(),
        })
    }
}
