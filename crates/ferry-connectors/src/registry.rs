//! Connectors by kind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::connector::{ConfigError, Connector};
use crate::context::Secrets;
use crate::describe::{Category, Description, Platform};
use ferry_core::errors::ErrorCode;

/// The connectors this build knows, by [`Connector::kind`], with their descriptions. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Registry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
    descriptions: BTreeMap<&'static str, Arc<Description>>,
}

/// Why a connector could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two connectors claim the same kind.
    #[error("a connector of kind {0:?} is registered already")]
    DuplicateKind(String),
    /// The kind is not a lowercase identifier.
    #[error("{0:?} is not a valid connector kind: use lowercase letters, digits and underscores")]
    InvalidKind(String),
    /// The connector's description does not fit it.
    #[error("the connector of kind {kind:?} is described wrongly: {problem}")]
    Described {
        /// The connector's kind.
        kind: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why an integration's kind, config or secrets were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// No connector of this kind exists in this build.
    #[error("unknown integration kind {kind:?}; {}", known_kinds(known))]
    UnknownKind {
        /// The kind that was asked for.
        kind: String,
        /// The kinds that exist, sorted.
        known: Vec<&'static str>,
    },
    /// The connector refused the config (or the secrets), naming the field.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn known_kinds(known: &[&str]) -> String {
    if known.is_empty() {
        "this build has no connectors".to_string()
    } else {
        format!("the kinds are: {}", known.join(", "))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl Registry {
    /// A registry without connectors.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// Every connector that ships with Ferry. `public_url` is where people reach Ferry's UI
    /// (`FERRY_PUBLIC_URL`); exports link to messages under it.
    pub fn builtin(public_url: &str) -> Self {
        Registry::builtin_with(public_url, &crate::hubspot::HubSpotSettings::default())
    }

    /// [`Registry::builtin`] with HubSpot's address and limits (`FERRY_HUBSPOT_API_URL`).
    pub fn builtin_with(public_url: &str, hubspot: &crate::hubspot::HubSpotSettings) -> Self {
        let mut registry = Registry::empty();
        for connector in crate::hubspot::HubSpot::both(hubspot.clone()) {
            registry
                .register(Arc::new(connector))
                .expect("built-in kinds are valid and distinct");
        }
        registry = registry.with_salesforce(&crate::salesforce::SalesforceSettings::default());
        registry
            .register(Arc::new(crate::everyaction::EveryAction::default()))
            .expect("built-in kinds are valid and distinct");
        registry
            .register(Arc::new(crate::bulk_upload::BulkUpload::default()))
            .expect("built-in kinds are valid and distinct");
        for kind in crate::sftp_export::ExportKind::ALL {
            registry
                .register(Arc::new(crate::sftp_export::SftpExport::new(
                    kind, public_url,
                )))
                .expect("built-in kinds are valid and distinct");
        }
        registry
    }

    /// The same registry with the Salesforce connectors talking to Salesforce as `settings` say
    /// (`FERRY_SALESFORCE_*`; `ferry demo` and tests point them at the emulator).
    pub fn with_salesforce(mut self, settings: &crate::salesforce::SalesforceSettings) -> Self {
        for c in crate::salesforce::Salesforce::both(settings.clone()) {
            let c: Arc<dyn Connector> = Arc::new(c);
            self.descriptions.insert(c.kind(), Arc::new(c.describe()));
            self.connectors.insert(c.kind(), c);
        }
        self
    }

    /// The same registry with Bulk File Upload reading uploaded files from `vault` (the vault
    /// Ferry's SFTP server writes to); without it, bulk file runs fail with a clear reason.
    pub fn with_upload_vault(mut self, vault: ferry_vault::Vault) -> Self {
        let c: Arc<dyn Connector> = Arc::new(crate::bulk_upload::BulkUpload::new(vault));
        self.connectors.insert(c.kind(), c);
        self
    }

    /// Adds a connector under its kind.
    pub fn register(&mut self, connector: Arc<dyn Connector>) -> Result<(), RegistryError> {
        let kind = connector.kind();
        let valid = !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(RegistryError::InvalidKind(kind.to_string()));
        }
        if self.connectors.contains_key(kind) {
            return Err(RegistryError::DuplicateKind(kind.to_string()));
        }
        let description = connector.describe();
        if description.kind != kind {
            return Err(RegistryError::Described {
                kind: kind.to_string(),
                problem: format!("its description names the kind {:?}", description.kind),
            });
        }
        self.descriptions.insert(kind, Arc::new(description));
        self.connectors.insert(kind, connector);
        Ok(())
    }

    /// The same registry with `connector` added, for building one in an expression.
    pub fn with(mut self, connector: Arc<dyn Connector>) -> Result<Self, RegistryError> {
        self.register(connector)?;
        Ok(self)
    }

    /// The connector of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(kind)
    }

    /// What the connector of `kind` says about itself.
    pub fn description(&self, kind: &str) -> Option<&Description> {
        self.descriptions.get(kind).map(|d| &**d)
    }

    /// Every kind's description, sorted by kind.
    pub fn descriptions(&self) -> impl Iterator<Item = &Description> {
        self.descriptions.values().map(|d| &**d)
    }

    /// The platforms of the registered kinds with their kinds, grouped by category (in the
    /// order of [`Category::ALL`]) and sorted by name within one: Browse Available.
    pub fn platforms(&self) -> Vec<(Category, Platform, Vec<&Description>)> {
        let mut out: Vec<(Category, Platform, Vec<&Description>)> = Vec::new();
        for d in self.descriptions() {
            match out
                .iter_mut()
                .find(|(c, p, _)| *c == d.category && p.id == d.platform.id)
            {
                Some((_, _, kinds)) => kinds.push(d),
                None => out.push((d.category, d.platform.clone(), vec![d])),
            }
        }
        out.sort_by_key(|(c, p, _)| {
            (
                Category::ALL.iter().position(|x| x == c),
                p.name.to_lowercase(),
            )
        });
        out
    }

    /// The OAuth provider `id` (e.g. `hubspot`) of a registered kind.
    pub fn oauth_provider(&self, id: &str) -> Option<Arc<dyn crate::describe::OAuthProvider>> {
        self.connectors
            .values()
            .filter_map(|c| c.oauth_provider())
            .find(|p| p.id() == id)
    }

    /// The label of `kind` (the Type column of Recent Runs); the kind itself for a kind this
    /// build does not have.
    pub fn label(&self, kind: &str) -> String {
        self.description(kind)
            .map_or_else(|| kind.to_string(), |d| d.label.to_string())
    }

    /// The whole error dictionary: the core's codes and every registered kind's, sorted by code,
    /// each once.
    pub fn dictionary(&self) -> Vec<ErrorCode> {
        let mut all: BTreeMap<&'static str, ErrorCode> = ferry_core::errors::DICTIONARY
            .iter()
            .map(|e| (e.code, *e))
            .collect();
        for d in self.descriptions() {
            for e in &d.error_codes {
                all.entry(e.code).or_insert(*e);
            }
        }
        all.into_values().collect()
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }

    /// The registered connectors, sorted by kind (for listing kinds with their labels).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors.values()
    }

    /// How many connectors are registered.
    pub fn len(&self) -> usize {
        self.connectors.len()
    }

    /// Whether no connector is registered.
    pub fn is_empty(&self) -> bool {
        self.connectors.is_empty()
    }

    fn connector(&self, kind: &str) -> Result<&Arc<dyn Connector>, ValidateError> {
        self.get(kind).ok_or_else(|| ValidateError::UnknownKind {
            kind: kind.to_string(),
            known: self.kinds(),
        })
    }

    /// Checks a config for an integration of `kind`: the kind exists, the connector accepts the
    /// config, and the schedule it reads from the config is valid (field `schedule`).
    pub fn validate(&self, kind: &str, config: &Value) -> Result<(), ValidateError> {
        let connector = self.connector(kind)?;
        connector.validate_config(config)?;
        if let Some(schedule) = connector.schedule(config) {
            schedule
                .validate()
                .map_err(|e| ConfigError::new("schedule", e.to_string()))?;
        }
        Ok(())
    }

    /// Every problem of a config for `kind`, each on its field (see
    /// [`Connector::config_errors`]), then the schedule's, when the rest is valid.
    pub fn validate_all(
        &self,
        kind: &str,
        config: &Value,
    ) -> Result<Vec<ConfigError>, ValidateError> {
        let connector = self.connector(kind)?;
        let mut errors = connector.config_errors(config);
        if errors.is_empty()
            && let Some(schedule) = connector.schedule(config)
            && let Err(e) = schedule.validate()
        {
            errors.push(ConfigError::new("schedule", e.to_string()));
        }
        Ok(errors)
    }

    /// Checks the secrets as they will be after a save (see [`Connector::validate_secrets`]).
    pub fn validate_secrets_set(
        &self,
        kind: &str,
        config: &Value,
        secrets: &Secrets,
    ) -> Result<(), ValidateError> {
        Ok(self.connector(kind)?.validate_secrets(config, secrets)?)
    }

    /// Checks that every secret name is one the connector of `kind` accepts (field
    /// `secrets.<name>`).
    pub fn validate_secret_names<'a>(
        &self,
        kind: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ValidateError> {
        let connector = self.connector(kind)?;
        let accepted: Vec<&str> = self
            .description(kind)
            .map(|d| d.secret_names().collect())
            .unwrap_or_default();
        if let Some(name) = names.into_iter().find(|n| !accepted.contains(n)) {
            let message = if accepted.is_empty() {
                format!("{} integrations take no secrets", connector.label())
            } else {
                format!(
                    "not a secret of {} integrations; they take: {}",
                    connector.label(),
                    accepted.join(", ")
                )
            };
            return Err(ConfigError::new(format!("secrets.{name}"), message).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectionReport, ConnectorContext, RunContext, RunError, RunReport};
    use async_trait::async_trait;
    use ferry_core::schedule::Schedule;
    use serde_json::json;

    struct Export(&'static str);

    #[async_trait]
    impl Connector for Export {
        fn kind(&self) -> &'static str {
            self.0
        }
        fn label(&self) -> &'static str {
            "Test Export"
        }
        fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
            match config.get("path").and_then(Value::as_str) {
                Some(p) if p.starts_with('/') => Ok(()),
                _ => Err(ConfigError::new("path", "an absolute path is required")),
            }
        }
        fn schedule(&self, config: &Value) -> Option<Schedule> {
            let blocks = config.get("blocks")?.as_array()?;
            Some(Schedule::Blocks(
                blocks
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect(),
            ))
        }
        fn describe(&self) -> Description {
            let secret = |name| crate::describe::SecretField {
                name,
                label: "Secret",
                kind: crate::describe::SecretKind::Password,
                help: "",
            };
            Description {
                kind: self.0,
                label: "Test Export",
                title: "Test Export",
                summary: "A test.",
                category: Category::SftpOutbound,
                platform: Platform {
                    id: "test",
                    name: "Test",
                    summary: "A test.",
                    page: None,
                },
                config_schema: json!({"type": "object"}),
                secrets: vec![secret("password"), secret("private_key")],
                default_config: json!({"path": "/out"}),
                error_codes: Vec::new(),
                oauth_provider: None,
            }
        }
        async fn test_connection(
            &self,
            _ctx: &ConnectorContext,
        ) -> Result<ConnectionReport, RunError> {
            Ok(ConnectionReport::new("ok"))
        }
        async fn run(&self, _ctx: &RunContext) -> Result<RunReport, RunError> {
            Ok(RunReport::skipped())
        }
    }

    #[test]
    fn registers_by_kind_and_refuses_duplicates() {
        let mut r = Registry::empty();
        r.register(Arc::new(Export("b_export"))).unwrap();
        r.register(Arc::new(Export("a_export"))).unwrap();
        assert_eq!(r.kinds(), ["a_export", "b_export"]);
        assert_eq!(r.get("a_export").map(|c| c.label()), Some("Test Export"));
        assert!(r.get("c_export").is_none());
        assert_eq!(
            r.register(Arc::new(Export("a_export"))),
            Err(RegistryError::DuplicateKind("a_export".into()))
        );
        assert_eq!(
            Registry::empty().with(Arc::new(Export("Bad Kind"))).err(),
            Some(RegistryError::InvalidKind("Bad Kind".into()))
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn validation_names_kind_field_schedule_and_secret() {
        let r = Registry::empty()
            .with(Arc::new(Export("sftp_export")))
            .unwrap();
        let e = r.validate("hubspot", &json!({})).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown integration kind "hubspot"; the kinds are: sftp_export"#
        );
        let e = Registry::empty().validate("x", &json!({})).unwrap_err();
        assert!(
            e.to_string().ends_with("this build has no connectors"),
            "{e}"
        );
        assert_eq!(
            r.validate("sftp_export", &json!({"path": "rel"})),
            Err(ValidateError::Config(ConfigError::new(
                "path",
                "an absolute path is required"
            )))
        );
        let e = r
            .validate("sftp_export", &json!({"path": "/out", "blocks": [1, 9]}))
            .unwrap_err();
        assert!(
            matches!(&e, ValidateError::Config(c) if c.field == "schedule" && c.message.contains("block 9")),
            "{e:?}"
        );
        assert!(
            r.validate("sftp_export", &json!({"path": "/out", "blocks": [1, 7]}))
                .is_ok()
        );
        assert!(r.validate_secret_names("sftp_export", ["password"]).is_ok());
        let e = r
            .validate_secret_names("sftp_export", ["password", "token"])
            .unwrap_err();
        assert!(
            matches!(&e, ValidateError::Config(c) if c.field == "secrets.token" && c.message.contains("password, private_key")),
            "{e:?}"
        );
    }
}
