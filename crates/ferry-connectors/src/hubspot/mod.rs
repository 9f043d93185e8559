//! Two-way HubSpot sync (seed 002): `hubspot_outgoing` pushes contacts changed in Ferry (on
//! change, and a full backfill at first), `hubspot_incoming` pulls contacts modified in HubSpot
//! every N minutes. Authentication is a private-app access token (the `access_token` secret).

// The client's wire types carry HubSpot's documented field names; see its OpenAPI documents.
#[allow(missing_docs)]
pub mod client;
pub mod codec;
pub mod config;
mod names;
#[allow(missing_docs)]
pub mod oauth;
mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::schedule::Schedule;
use secrecy::SecretString;
use serde_json::{Value, json};

pub use crate::crm::MAX_ATTEMPTS;
pub use client::{Client, HubSpotError, Limits};
pub use config::HubSpotConfig;
pub use sync::OVERLAP_MS;

/// Outgoing contacts looked up together: a window's lookups are batched (IDs and emails 100 a
/// read, the names of the whole window in few searches), and the contacts decided so far are
/// written at the same time, in full batches of 100, so that the writes, which draw on the
/// 10-second limit, go on while the name searches, which HubSpot limits separately, still run.
/// (The default of [`HubSpotSettings::outgoing_window`].)
pub const WINDOW: usize = 10_000;

use crate::connector::{ConfigError, ConnectionReport, Connector, RunError, RunReport};
use crate::context::{ConnectorContext, RunContext, Secrets};
use crate::describe::{Category, Description, Platform, SecretField, SecretKind, schema_of};

/// Where HubSpot is and how hard to use it.
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    /// The API's base URL (`FERRY_HUBSPOT_API_URL`, default `https://api.hubapi.com`).
    pub api_url: String,
    /// The consent page (`FERRY_HUBSPOT_AUTH_URL`, default `https://app.hubspot.com/oauth/authorize`).
    pub auth_url: String,
    /// The OAuth app, when one is configured (`FERRY_HUBSPOT_CLIENT_ID`/`_SECRET`).
    pub app: Option<oauth::OAuthApp>,
    /// Client-side limits per account.
    pub limits: Limits,
    /// Contacts an outgoing run looks up and writes together (default 10,000: one window's
    /// names fit HubSpot's search cap). Smaller windows move the watermark more often.
    pub outgoing_window: usize,
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        HubSpotSettings {
            api_url: "https://api.hubapi.com".to_string(),
            auth_url: "https://app.hubspot.com/oauth/authorize".to_string(),
            app: None,
            limits: Limits::default(),
            outgoing_window: WINDOW,
        }
    }
}

/// HubSpot's card on Browse Available.
pub const PLATFORM: Platform = Platform {
    id: "hubspot",
    name: "HubSpot",
    summary: "Two-way contact sync with HubSpot CRM: pull contacts modified in HubSpot on a schedule, \
and push contacts changed in Ferry within seconds. Connect an account through OAuth or use a \
private app's access token, map Ferry's fields to HubSpot's properties, and filter which contacts sync.",
    page: None,
};

/// The data mapping a new instance starts with (CRM ID ↔ Record ID is always added).
fn default_mappings() -> Value {
    json!([
        {"local": "first_name", "remote": "firstname"},
        {"local": "last_name", "remote": "lastname"},
        {"local": "phone", "remote": "phone"},
        {"local": "email", "remote": "email"},
    ])
}

/// Which way an instance syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// HubSpot → Ferry.
    Incoming,
    /// Ferry → HubSpot.
    Outgoing,
}

/// A HubSpot connector for one direction.
#[derive(Debug, Clone)]
pub struct HubSpot {
    way: Way,
    settings: HubSpotSettings,
    /// One limiter per account (OAuth account ID or private-app token), shared across runs.
    limiters: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<client::AccountLimiter>>>>,
}

impl HubSpot {
    /// Both directions, sharing one rate limiter per account (an account's incoming and
    /// outgoing runs draw on the same HubSpot budget).
    pub fn both(settings: HubSpotSettings) -> [HubSpot; 2] {
        let incoming = HubSpot::new(Way::Incoming, settings);
        let outgoing = HubSpot {
            way: Way::Outgoing,
            settings: incoming.settings.clone(),
            limiters: incoming.limiters.clone(),
        };
        [incoming, outgoing]
    }

    /// The connector for `way`, talking to HubSpot as `settings` say.
    pub fn new(way: Way, settings: HubSpotSettings) -> HubSpot {
        HubSpot {
            way,
            settings,
            limiters: Arc::default(),
        }
    }

    fn limiter(&self, key: String) -> Arc<client::AccountLimiter> {
        let mut all = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.entry(key)
            .or_insert_with(|| client::AccountLimiter::new(&self.settings.limits))
            .clone()
    }

    /// A client for the instance: its OAuth account's refreshed token, or its private-app token.
    fn client_for(
        &self,
        store: Option<&ferry_store::Store>,
        institution_id: i64,
        account: Option<i64>,
        secrets: &Secrets,
    ) -> Result<Client, RunError> {
        let Some(account) = account else {
            return self.client(secrets);
        };
        let app = self.settings.app.clone().ok_or_else(|| {
            RunError::fatal("the instance uses a HubSpot account connected through OAuth, but FERRY_HUBSPOT_CLIENT_ID and FERRY_HUBSPOT_CLIENT_SECRET are not set")
        })?;
        let store = store
            .ok_or_else(|| RunError::fatal("the HubSpot account's tokens are not available here"))?
            .clone();
        Ok(Client::with_limiter(
            &self.settings.api_url,
            oauth::AccountTokens::new(store, institution_id, account, self.settings.clone(), app),
            self.settings.limits.clone(),
            self.limiter(format!("account:{account}")),
        ))
    }

    /// The contact properties HubSpot has, through the instance's account or token.
    async fn properties(
        &self,
        ctx: &ConnectorContext,
        account: Option<i64>,
    ) -> Result<Vec<ferry_core::mapping::RemoteProperty>, RunError> {
        self.client_for(
            ctx.store.as_ref(),
            ctx.institution_id,
            account,
            &ctx.secrets,
        )?
        .properties()
        .await
        .map_err(|e| RunError::fatal(e.to_string()))
    }

    fn client(&self, secrets: &Secrets) -> Result<Client, RunError> {
        let token = secrets.expose("access_token").filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            RunError::fatal("no HubSpot access token is set; enter a private-app access token in the instance's Authentication step")
        })?;
        // Keyed by a hash of the token (in memory only), never the token itself.
        let key = {
            use std::hash::Hasher;
            let mut h = std::hash::DefaultHasher::new();
            h.write(token.trim().as_bytes());
            format!("token:{:016x}", h.finish())
        };
        Ok(Client::with_limiter(
            &self.settings.api_url,
            Arc::new(client::StaticToken(SecretString::from(
                token.trim().to_string(),
            ))),
            self.settings.limits.clone(),
            self.limiter(key),
        ))
    }

    fn config(config: &Value) -> Result<HubSpotConfig, RunError> {
        HubSpotConfig::parse(config)
            .map_err(|e| RunError::fatal(format!("the instance's settings are invalid: {e}")))
    }
}

#[async_trait]
impl Connector for HubSpot {
    fn kind(&self) -> &'static str {
        match self.way {
            Way::Incoming => "hubspot_incoming",
            Way::Outgoing => "hubspot_outgoing",
        }
    }

    fn label(&self) -> &'static str {
        match self.way {
            Way::Incoming => "HubSpot incoming",
            Way::Outgoing => "HubSpot outgoing",
        }
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        match self.config_errors(config).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn config_errors(&self, config: &Value) -> Vec<ConfigError> {
        let c = match crate::connector::parse_config::<HubSpotConfig>(config) {
            Ok(c) => c,
            Err(e) => return vec![e],
        };
        let mut out = c.problems();
        if self.way == Way::Incoming {
            // An incoming filter reads the value HubSpot sends for the Ferry field, which only
            // a mapped field has: on any other field every contact would be filtered out.
            for (i, f) in c.filters.iter().enumerate() {
                let field = f.field.trim();
                let mapped = field == ferry_core::mapping::CRM_ID_FIELD
                    || c.mappings.iter().any(|m| m.local.trim() == field);
                if !mapped && !field.is_empty() {
                    out.push(ConfigError::new(
                        format!("filters[{i}].field"),
                        format!(
                            "\"{field}\" is not in the data mapping, so HubSpot sends no value for it and every contact would be filtered out; map it to a HubSpot property or filter on a mapped field"
                        ),
                    ));
                }
            }
        }
        out
    }

    fn schedule(&self, config: &Value) -> Option<Schedule> {
        let c = HubSpotConfig::parse(config).ok()?;
        match self.way {
            Way::Incoming => Some(Schedule::EveryMinutes(
                c.schedule
                    .map_or(config::DEFAULT_EVERY_MINUTES, |s| s.every_minutes),
            )),
            Way::Outgoing => c.schedule.map(|s| Schedule::EveryMinutes(s.every_minutes)),
        }
    }

    fn runs_on_change(&self) -> bool {
        self.way == Way::Outgoing
    }

    fn change_watermark(&self, state: &Value) -> Option<i64> {
        // Outgoing's watermark is the change sequence sent (incoming's is a HubSpot time).
        (self.way == Way::Outgoing)
            .then(|| state.get("watermark").and_then(Value::as_i64))
            .flatten()
    }

    fn describe(&self) -> Description {
        let (summary, default_config) = match self.way {
            Way::Incoming => (
                "Pulls contacts modified in HubSpot into Ferry every few minutes (15 by default), matching them to Ferry's contacts by platform ID, CRM ID or phone.",
                json!({"mappings": default_mappings(), "filters": [], "schedule": {"every_minutes": config::DEFAULT_EVERY_MINUTES}}),
            ),
            Way::Outgoing => (
                "Pushes contacts changed in Ferry to HubSpot within seconds (after a first full backfill), matching by CRM ID, then email, then first and last name confirmed by phone, else creating them.",
                json!({"mappings": default_mappings(), "filters": []}),
            ),
        };
        Description {
            kind: self.kind(),
            label: self.label(),
            title: self.label(),
            summary,
            category: Category::CrmSync,
            platform: PLATFORM,
            config_schema: schema_of::<HubSpotConfig>(),
            secrets: vec![
                SecretField {
                    name: "access_token",
                    label: "Private app access token",
                    kind: SecretKind::Token,
                    help: "A HubSpot private app's access token with the CRM contacts scopes; not needed when you choose a connected account.",
                },
                SecretField {
                    name: "developer_api_key",
                    label: "Developer API key",
                    kind: SecretKind::Password,
                    help: "Kept for HubSpot's older API version; Ferry stores it and does not use it.",
                },
                SecretField {
                    name: "api_key",
                    label: "API key",
                    kind: SecretKind::Password,
                    help: "Kept for HubSpot's older API version; Ferry stores it and does not use it.",
                },
            ],
            default_config,
            error_codes: Vec::new(),
            oauth_provider: Some("hubspot"),
        }
    }

    fn oauth_provider(&self) -> Option<Arc<dyn crate::describe::OAuthProvider>> {
        Some(Arc::new(oauth::Provider::new(self.settings.clone())))
    }

    fn validate_secrets(&self, config: &Value, secrets: &Secrets) -> Result<(), ConfigError> {
        let has_account = config.get("account_id").is_some_and(|a| !a.is_null());
        if has_account || secrets.get("access_token").is_some() {
            Ok(())
        } else {
            Err(ConfigError::new(
                "secrets.access_token",
                "choose a connected HubSpot account, or enter a private-app access token",
            ))
        }
    }

    async fn check_with_remote(
        &self,
        ctx: &ConnectorContext,
        schema: &ferry_core::contact::FieldSchema,
    ) -> Result<(), ConfigError> {
        let cfg = HubSpotConfig::parse(&ctx.config)?;
        let client = self
            .client_for(
                ctx.store.as_ref(),
                ctx.institution_id,
                cfg.account_id,
                &ctx.secrets,
            )
            .map_err(|e| ConfigError::new("secrets.access_token", e.reason))?;
        let props = client.properties().await.map_err(|e| match e.status() {
            Some(401 | 403) => ConfigError::new(
                "secrets.access_token",
                format!("HubSpot refused the token: {e}"),
            ),
            _ => ConfigError::new(
                "config",
                format!("HubSpot's properties could not be read to check the mapping: {e}"),
            ),
        })?;
        let dir = match self.way {
            Way::Incoming => ferry_core::run::SyncDirection::Incoming,
            Way::Outgoing => ferry_core::run::SyncDirection::Outgoing,
        };
        ferry_core::mapping::resolve(
            &cfg.mappings,
            schema,
            &props,
            config::ID_PROPERTY,
            Some("email"),
            dir,
        )
        .map(|_| ())
        .map_err(|e| match e.index {
            Some(i) => ConfigError::new(format!("mappings[{i}]"), e.message),
            None => ConfigError::new("mappings", e.message),
        })
    }

    async fn remote_properties(
        &self,
        ctx: &ConnectorContext,
    ) -> Result<Option<Vec<ferry_core::mapping::RemoteProperty>>, RunError> {
        let account = match ctx.config.get("account_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                RunError::fatal("config.account_id: must be the id of a connected HubSpot account")
            })?),
        };
        Ok(Some(self.properties(ctx, account).await?))
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        let cfg = Self::config(&ctx.config)?;
        let props = self.properties(ctx, cfg.account_id).await?;
        Ok(ConnectionReport {
            message: format!(
                "Connected to HubSpot; the account has {} contact properties.",
                props.len()
            ),
            detail: json!({ "properties": props.len() }),
        })
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let cfg = Self::config(ctx.config())?;
        let client = self.client_for(
            Some(ctx.store()),
            ctx.institution_id(),
            cfg.account_id,
            ctx.secrets(),
        )?;
        let spec = crate::crm::SyncSpec {
            mappings: &cfg.mappings,
            filters: &cfg.filters,
        };
        match self.way {
            Way::Outgoing => {
                crate::crm::run_outgoing(ctx, &client, spec, self.settings.outgoing_window).await
            }
            Way::Incoming => crate::crm::run_incoming(ctx, &client, spec).await,
        }
    }
}
