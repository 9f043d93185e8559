//! Two-way Salesforce sync (seed 002, issue 13): `salesforce_outgoing` pushes contacts changed
//! in Ferry (on change, after a first full backfill), `salesforce_incoming` pulls Contacts (or
//! Leads) changed in Salesforce every N minutes. An instance signs in with a Salesforce org
//! connected through OAuth (web-server flow with PKCE), or with the JWT bearer flow. Both
//! directions run on the CRM engine ([`crate::crm`]); this folder holds Salesforce's side.

pub mod client;
pub mod codec;
pub mod config;
pub mod oauth;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::mapping::RemoteProperty;
use ferry_core::schedule::Schedule;
use secrecy::SecretString;
use serde_json::{Value, json};

pub use client::{Client, Describe, SalesforceError};
pub use config::SalesforceConfig;
pub use sync::SyncClient;

use crate::connector::{ConfigError, ConnectionReport, Connector, RunError, RunReport};
use crate::context::{ConnectorContext, RunContext, Secrets};
use crate::describe::{Category, Description, Platform, SecretField, SecretKind, schema_of};

/// Where Salesforce is and how hard to use it.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The login host (`FERRY_SALESFORCE_LOGIN_URL`, default `https://login.salesforce.com`;
    /// `https://test.salesforce.com` for sandboxes, or a My Domain URL).
    pub login_url: String,
    /// The connected app, when one is configured (`FERRY_SALESFORCE_CLIENT_ID`/`_SECRET`).
    pub app: Option<oauth::OAuthApp>,
    /// The REST API version (`62.0`).
    pub api_version: String,
    /// Limit for one request.
    pub timeout: Duration,
    /// Retries of one idempotent request after a 5xx or a timeout.
    pub retries: u32,
    /// The first backoff; doubled each retry, with jitter.
    pub backoff: Duration,
    /// How often a Bulk API 2.0 job's state is read while it runs.
    pub bulk_poll: Duration,
    /// Records per Bulk API 2.0 ingest job.
    pub bulk_batch: usize,
    /// Contacts an outgoing run looks up and writes together.
    pub outgoing_window: usize,
}

impl Default for SalesforceSettings {
    fn default() -> Self {
        SalesforceSettings {
            login_url: "https://login.salesforce.com".to_string(),
            app: None,
            api_version: "62.0".to_string(),
            timeout: Duration::from_secs(60),
            retries: 5,
            backoff: Duration::from_millis(500),
            bulk_poll: Duration::from_secs(2),
            bulk_batch: 10_000,
            outgoing_window: 10_000,
        }
    }
}

/// Salesforce's card on Browse Available.
pub const PLATFORM: Platform = Platform {
    id: "salesforce",
    name: "Salesforce",
    summary: "Two-way contact sync with Salesforce Contacts or Leads: pull records changed in Salesforce on a schedule, and push contacts changed in Ferry within seconds. Connect an org through OAuth (or the JWT bearer flow), map Ferry's fields to the object's fields from its describe, filter which contacts sync; large runs use Bulk API 2.0 and every run stays within a share of the org's daily API limit.",
    page: None,
};

/// What the Sync Log and run errors of Salesforce instances can say.
pub const ERROR_CODES: &[ferry_core::errors::ErrorCode] = ferry_core::error_codes! {
    "salesforce_api_limit_share" => "The run stopped before the org's API requests of the day passed the instance's share of its daily limit (80 % by default); what was done is kept.", "Wait for Salesforce's 24-hour window to move (the next run goes on), or raise the instance's API limit share if the org's other integrations can spare it.";
    "salesforce_duplicates_detected" => "A Salesforce duplicate rule blocked the record (DUPLICATES_DETECTED, \"Use one of these records?\"): another record has the same email or name.", "Merge the duplicates in Salesforce, or set the contact's CRM ID to the existing record's Id so that Ferry updates it.";
    "salesforce_duplicate_value" => "A unique field (often the external-ID field) already has this value on another Salesforce record (DUPLICATE_VALUE).", "Find the record with the value in Salesforce and clear or correct it.";
    "salesforce_entity_is_deleted" => "The Salesforce record was deleted (ENTITY_IS_DELETED).", "Restore it from Salesforce's recycle bin, or clear (UNSET) the contact's CRM ID so that Ferry matches or creates it again.";
    "salesforce_field_not_nillable" => "An UNSET asked to clear a Salesforce field that cannot be empty (not nillable, e.g. LastName); nothing was sent for the contact.", "Give the contact a value for the field, or remove the field from the mapping.";
    "salesforce_invalid_email_address" => "Salesforce refused the email address (INVALID_EMAIL_ADDRESS).", "Correct the contact's email in Ferry.";
    "salesforce_invalid_field" => "A mapped field does not exist on the object or cannot be used (INVALID_FIELD).", "Edit the instance's Data Mapping: the field lists come from the object's describe.";
    "salesforce_invalid_field_for_insert_update" => "A mapped field cannot be written (INVALID_FIELD_FOR_INSERT_UPDATE), e.g. a formula or system field.", "Remove the field from the outgoing mapping, or map it incoming only.";
    "salesforce_invalid_or_null_for_restricted_picklist" => "The value is not one of the restricted picklist's values (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST).", "Use one of the picklist's values in Ferry, or add the value to the picklist in Salesforce.";
    "salesforce_invalid_session_id" => "Salesforce refused the session (INVALID_SESSION_ID) and refused it again after a renewal: the account's refresh token was revoked, the user lost access, or the JWT bearer flow's settings are wrong.", "Reconnect the Salesforce account in the instance's Authentication step (or check the consumer key, username and private key of the JWT bearer flow).";
    "salesforce_malformed_id" => "The contact's CRM ID is not a Salesforce record Id (MALFORMED_ID).", "Correct the CRM ID, or clear it (UNSET) so that Ferry matches the contact by email or name and phone.";
    "salesforce_not_found" => "The Salesforce record with the contact's CRM ID was not found (NOT_FOUND).", "Clear (UNSET) the CRM ID, or set it to the right record's Id.";
    "salesforce_rejected" => "Salesforce refused the record with a code Ferry has no entry for; the message has Salesforce's code and reason.", "Read Salesforce's message (for example a validation rule) and correct the data or the rule.";
    "salesforce_request_limit_exceeded" => "The org has used all of its daily API requests (REQUEST_LIMIT_EXCEEDED); Salesforce refuses API calls until its 24-hour window moves.", "Wait; lower the share of other integrations or ask Salesforce for a higher limit. Ferry's next run goes on where this one stopped.";
    "salesforce_required_field_missing" => "A field Salesforce requires has no value (REQUIRED_FIELD_MISSING), e.g. LastName, or Company on a Lead.", "Map the field and give the contact a value; a Lead needs Company mapped.";
    "salesforce_string_too_long" => "A value is longer than the Salesforce field allows (STRING_TOO_LONG).", "Shorten the value in Ferry, or map it to a longer field.";
};

/// The data mapping a new instance starts with (CRM ID ↔ Id is always added).
fn default_mappings() -> Value {
    json!([
        {"local": "first_name", "remote": "FirstName"},
        {"local": "last_name", "remote": "LastName"},
        {"local": "phone", "remote": "Phone"},
        {"local": "email", "remote": "Email"},
    ])
}

/// Which way an instance syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Salesforce → Ferry.
    Incoming,
    /// Ferry → Salesforce.
    Outgoing,
}

/// A Salesforce connector for one direction.
#[derive(Debug, Clone)]
pub struct Salesforce {
    way: Way,
    settings: SalesforceSettings,
}

/// Every problem of a mapping against the object's describe (beyond
/// `ferry_core::mapping::resolve`'s): outgoing fields must be createable and updateable, and
/// the external-ID field must be one.
pub fn describe_problems(
    cfg: &SalesforceConfig,
    describe: &Describe,
    way: Way,
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, m) in cfg.mappings.iter().enumerate() {
        let name = m.remote.trim();
        if name == config::ID_FIELD {
            continue;
        }
        match describe.field(name) {
            None => out.push(ConfigError::new(
                format!("mappings[{i}].remote"),
                format!("the {} object has no field {name:?}", cfg.object.as_str()),
            )),
            Some(f) if way == Way::Outgoing && !(f.createable && f.updateable) => {
                out.push(ConfigError::new(
                    format!("mappings[{i}].remote"),
                    format!(
                        "{name} cannot be written by Ferry (createable: {}, updateable: {}); map it in the incoming instance only",
                        f.createable, f.updateable
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(x) = cfg.external_id() {
        match describe.field(x) {
            Some(f) if f.external_id => {}
            Some(_) => out.push(ConfigError::new(
                "external_id_field",
                format!("{x} is not marked as an External ID in Salesforce"),
            )),
            None => out.push(ConfigError::new(
                "external_id_field",
                format!("the {} object has no field {x:?}", cfg.object.as_str()),
            )),
        }
    }
    out
}

impl Salesforce {
    /// Both directions.
    pub fn both(settings: SalesforceSettings) -> [Salesforce; 2] {
        [
            Salesforce::new(Way::Incoming, settings.clone()),
            Salesforce::new(Way::Outgoing, settings),
        ]
    }

    /// The connector for `way`, talking to Salesforce as `settings` say.
    pub fn new(way: Way, settings: SalesforceSettings) -> Salesforce {
        Salesforce { way, settings }
    }

    fn config(config: &Value) -> Result<SalesforceConfig, RunError> {
        SalesforceConfig::parse(config)
            .map_err(|e| RunError::fatal(format!("the instance's settings are invalid: {e}")))
    }

    /// The session source of an instance: its connected account, or the JWT bearer flow.
    fn sessions(
        &self,
        store: Option<&ferry_store::Store>,
        institution_id: i64,
        cfg: &SalesforceConfig,
        secrets: &Secrets,
    ) -> Result<Arc<dyn oauth::SessionSource>, RunError> {
        if let Some(account) = cfg.account_id {
            let app = self.settings.app.clone().ok_or_else(|| {
                RunError::fatal("the instance uses a Salesforce account connected through OAuth, but FERRY_SALESFORCE_CLIENT_ID and FERRY_SALESFORCE_CLIENT_SECRET are not set")
            })?;
            let store = store
                .ok_or_else(|| {
                    RunError::fatal("the Salesforce account's tokens are not available here")
                })?
                .clone();
            return Ok(oauth::AccountSession::new(
                store,
                institution_id,
                account,
                self.settings.clone(),
                app,
            ));
        }
        let Some(jwt) = cfg.jwt.clone() else {
            return Err(RunError::fatal(
                "choose a connected Salesforce account, or set up the JWT bearer flow, in the instance's Authentication step",
            ));
        };
        let key = secrets
            .expose("jwt_private_key")
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                RunError::fatal("the JWT bearer flow needs the connected app's private key (secret jwt_private_key)")
            })?;
        Ok(oauth::JwtSession::new(
            self.settings.clone(),
            jwt,
            SecretString::from(key.to_string()),
        ))
    }

    fn client(
        &self,
        store: Option<&ferry_store::Store>,
        institution_id: i64,
        cfg: &SalesforceConfig,
        secrets: &Secrets,
        limit: bool,
    ) -> Result<Client, RunError> {
        Ok(Client::new(
            self.settings.clone(),
            self.sessions(store, institution_id, cfg, secrets)?,
            cfg.object,
            limit.then(|| cfg.limit_share()),
        ))
    }

    async fn connector_client(
        &self,
        ctx: &ConnectorContext,
    ) -> Result<(SalesforceConfig, Client), RunError> {
        let cfg = Self::config(&ctx.config)?;
        let client = self.client(
            ctx.store.as_ref(),
            ctx.institution_id,
            &cfg,
            &ctx.secrets,
            false,
        )?;
        Ok((cfg, client))
    }

    fn dir(&self) -> ferry_core::run::SyncDirection {
        match self.way {
            Way::Incoming => ferry_core::run::SyncDirection::Incoming,
            Way::Outgoing => ferry_core::run::SyncDirection::Outgoing,
        }
    }
}

fn remote_failure(e: SalesforceError) -> RunError {
    if e.is_refused_credentials() {
        RunError::credentials_refused(format!(
            "{e}; reconnect the Salesforce account in the instance's Authentication step"
        ))
    } else if e.is_transient() {
        RunError::retryable(e.to_string())
    } else {
        RunError::fatal(e.to_string())
    }
}

#[async_trait]
impl Connector for Salesforce {
    fn kind(&self) -> &'static str {
        match self.way {
            Way::Incoming => "salesforce_incoming",
            Way::Outgoing => "salesforce_outgoing",
        }
    }

    fn label(&self) -> &'static str {
        match self.way {
            Way::Incoming => "Salesforce incoming",
            Way::Outgoing => "Salesforce outgoing",
        }
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        match self.config_errors(config).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn config_errors(&self, config: &Value) -> Vec<ConfigError> {
        let c = match crate::connector::parse_config::<SalesforceConfig>(config) {
            Ok(c) => c,
            Err(e) => return vec![e],
        };
        let mut out = c.problems();
        if self.way == Way::Incoming {
            // An incoming filter reads the value Salesforce sends for the Ferry field, which
            // only a mapped field has.
            for (i, f) in c.filters.iter().enumerate() {
                let field = f.field.trim();
                let mapped = field == ferry_core::mapping::CRM_ID_FIELD
                    || c.effective_mappings()
                        .iter()
                        .any(|m| m.local.trim() == field);
                if !mapped && !field.is_empty() {
                    out.push(ConfigError::new(
                        format!("filters[{i}].field"),
                        format!(
                            "\"{field}\" is not in the data mapping, so Salesforce sends no value for it and every contact would be filtered out; map it or filter on a mapped field"
                        ),
                    ));
                }
            }
        }
        out
    }

    fn schedule(&self, config: &Value) -> Option<Schedule> {
        let c = SalesforceConfig::parse(config).ok()?;
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
        (self.way == Way::Outgoing)
            .then(|| state.get("watermark").and_then(Value::as_i64))
            .flatten()
    }

    fn describe(&self) -> Description {
        let (summary, default_config) = match self.way {
            Way::Incoming => (
                "Pulls Contacts (or Leads) changed in Salesforce into Ferry every few minutes (15 by default), by SystemModstamp, matching them by platform ID, CRM ID or phone; records deleted in Salesforce archive their contacts.",
                json!({"object": "Contact", "mappings": default_mappings(), "filters": [], "schedule": {"every_minutes": config::DEFAULT_EVERY_MINUTES}}),
            ),
            Way::Outgoing => (
                "Pushes contacts changed in Ferry to Salesforce within seconds (after a first full backfill), matching by Id, then the external-ID field, then email, then first and last name confirmed by phone, else creating them; large runs use Bulk API 2.0.",
                json!({"object": "Contact", "mappings": default_mappings(), "filters": []}),
            ),
        };
        Description {
            kind: self.kind(),
            label: self.label(),
            title: self.label(),
            summary,
            category: Category::CrmSync,
            platform: PLATFORM,
            config_schema: schema_of::<SalesforceConfig>(),
            secrets: vec![SecretField {
                name: "jwt_private_key",
                label: "JWT bearer private key",
                kind: SecretKind::PrivateKey,
                help: "For the JWT bearer flow only: the PEM private key whose certificate is uploaded to the connected app. Not needed when you choose a connected account.",
            }],
            default_config,
            error_codes: ERROR_CODES.to_vec(),
            oauth_provider: Some("salesforce"),
        }
    }

    fn oauth_provider(&self) -> Option<Arc<dyn crate::describe::OAuthProvider>> {
        Some(Arc::new(oauth::Provider::new(self.settings.clone())))
    }

    fn validate_secrets(&self, config: &Value, secrets: &Secrets) -> Result<(), ConfigError> {
        let has_account = config.get("account_id").is_some_and(|a| !a.is_null());
        let has_jwt = config.get("jwt").is_some_and(|a| !a.is_null());
        if has_account || (has_jwt && secrets.get("jwt_private_key").is_some()) {
            Ok(())
        } else if has_jwt {
            Err(ConfigError::new(
                "secrets.jwt_private_key",
                "the JWT bearer flow needs the connected app's private key (PEM)",
            ))
        } else {
            Err(ConfigError::new(
                "account_id",
                "choose a connected Salesforce account, or set up the JWT bearer flow",
            ))
        }
    }

    async fn check_with_remote(
        &self,
        ctx: &ConnectorContext,
        schema: &ferry_core::contact::FieldSchema,
    ) -> Result<(), ConfigError> {
        let cfg = SalesforceConfig::parse(&ctx.config)?;
        let client = self
            .client(
                ctx.store.as_ref(),
                ctx.institution_id,
                &cfg,
                &ctx.secrets,
                false,
            )
            .map_err(|e| ConfigError::new("account_id", e.reason))?;
        let describe = client.describe().await.map_err(|e| {
            if e.is_refused_credentials() {
                ConfigError::new("account_id", format!("Salesforce refused the sign-in: {e}"))
            } else {
                ConfigError::new(
                    "config",
                    format!("the object's describe could not be read to check the mapping: {e}"),
                )
            }
        })?;
        if let Some(e) = describe_problems(&cfg, describe, self.way)
            .into_iter()
            .next()
        {
            return Err(e);
        }
        ferry_core::mapping::resolve(
            &cfg.effective_mappings(),
            schema,
            &describe.properties(),
            config::ID_FIELD,
            Some("Email"),
            self.dir(),
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
    ) -> Result<Option<Vec<RemoteProperty>>, RunError> {
        let (_, client) = self.connector_client(ctx).await?;
        let describe = client.describe().await.map_err(remote_failure)?;
        // Outgoing screens offer only the fields Ferry can write.
        let props = match self.way {
            Way::Incoming => describe.properties(),
            Way::Outgoing => describe
                .properties()
                .into_iter()
                .filter(|p| {
                    p.name == config::ID_FIELD
                        || describe
                            .field(&p.name)
                            .is_some_and(|f| f.createable && f.updateable)
                })
                .collect(),
        };
        Ok(Some(props))
    }

    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        let (cfg, client) = self.connector_client(ctx).await?;
        let describe = client.describe().await.map_err(remote_failure)?;
        let usage = client
            .usage()
            .map(|(u, m)| format!(" The org has used {u} of its {m} API requests today."))
            .unwrap_or_default();
        Ok(ConnectionReport {
            message: format!(
                "Connected to Salesforce; the {} object has {} fields.{usage}",
                cfg.object.as_str(),
                describe.fields.len()
            ),
            detail: json!({
                "fields": describe.fields.len(),
                "api_usage": client.usage().map(|(u, m)| json!({"used": u, "max": m})),
            }),
        })
    }

    async fn run(&self, ctx: &RunContext) -> Result<RunReport, RunError> {
        let cfg = Self::config(ctx.config())?;
        let client = self.client(
            Some(ctx.store()),
            ctx.institution_id(),
            &cfg,
            ctx.secrets(),
            true,
        )?;
        let describe = client.describe().await.map_err(remote_failure)?;
        if let Some(e) = describe_problems(&cfg, describe, self.way)
            .into_iter()
            .next()
        {
            return Err(RunError::fatal(format!(
                "the data mapping is invalid: {e}; edit the instance's Data Mapping"
            )));
        }
        let threshold = cfg.bulk_threshold();
        // Bulk API 2.0 for the writes of a run with more changed contacts than the threshold.
        let bulk_writes = match self.way {
            Way::Outgoing => {
                let watermark = ctx.state::<Value>()["watermark"].as_i64().unwrap_or(0);
                let limit = u32::try_from(threshold.saturating_add(1)).unwrap_or(u32::MAX);
                ctx.store()
                    .contacts_for_sync(ctx.institution_id(), watermark, limit)
                    .await?
                    .len()
                    > threshold
            }
            Way::Incoming => false,
        };
        let sync = SyncClient::new(
            client,
            cfg.external_id().map(str::to_string),
            bulk_writes,
            self.settings.bulk_batch,
            threshold,
        );
        let mappings = cfg.effective_mappings();
        let spec = crate::crm::SyncSpec {
            mappings: &mappings,
            filters: &cfg.filters,
        };
        let report = match self.way {
            Way::Outgoing => {
                crate::crm::run_outgoing(ctx, &sync, spec, self.settings.outgoing_window).await
            }
            Way::Incoming => crate::crm::run_incoming(ctx, &sync, spec).await,
        }?;
        let mut detail = report.detail.clone();
        if let Value::Object(m) = &mut detail {
            m.insert("bulk_writes".into(), json!(bulk_writes));
            if let Some((used, max)) = sync.client.usage() {
                m.insert("api_usage".into(), json!({"used": used, "max": max}));
            }
        }
        Ok(report.with_detail(detail))
    }
}
