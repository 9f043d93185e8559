//! The integration service on a fresh store, with a test connector whose remote can be made to
//! refuse or never answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ferry_connectors::describe::{Category, Description, Platform, SecretField, SecretKind};
use ferry_connectors::service::{
    ConnectionTest, IntegrationChange, NewIntegrationInput, REMOTE_TIMEOUT,
};
use ferry_connectors::{
    ConfigError, ConnectionReport, Connector, ConnectorContext, IntegrationService, Registry,
    RunContext, RunError, RunReport, ServiceError,
};
use ferry_store::testing::{TestStore, fresh_store};
use serde_json::{Map, Value, json};

const KIND: &str = "remote_checked";
/// Short, so that the never-answering remote is given up on soon.
const BOUND: Duration = Duration::from_millis(200);
/// A guard: a test that has not finished by then has hung (the bound was not applied).
const HUNG: Duration = Duration::from_secs(60);

/// `{"path": "…"}`; `"remote": "hang"` never answers, `"remote": "refuse"` refuses the path.
struct Checked {
    hooks: Arc<AtomicUsize>,
}

#[async_trait]
impl Connector for Checked {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn label(&self) -> &'static str {
        "Remote checked"
    }
    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        match config.get("path").and_then(Value::as_str) {
            Some(p) if !p.is_empty() => Ok(()),
            _ => Err(ConfigError::new("path", "a path is required")),
        }
    }
    fn describe(&self) -> Description {
        let secret = |name| SecretField {
            name,
            label: "Secret",
            kind: SecretKind::Password,
            help: "",
        };
        Description {
            secrets: vec![secret("password"), secret("token")],
            ..Description::new(
                KIND,
                "Remote checked",
                Category::SftpOutbound,
                Platform {
                    id: "test",
                    name: "Test",
                    summary: "A test.",
                    page: None,
                },
            )
        }
    }
    async fn check_with_remote(
        &self,
        ctx: &ConnectorContext,
        _schema: &ferry_core::contact::FieldSchema,
    ) -> Result<(), ConfigError> {
        match ctx.config.get("remote").and_then(Value::as_str) {
            Some("hang") => std::future::pending().await,
            Some("refuse") => Err(ConfigError::new("path", "the remote has no such path")),
            _ => Ok(()),
        }
    }
    async fn test_connection(&self, ctx: &ConnectorContext) -> Result<ConnectionReport, RunError> {
        match ctx.config.get("remote").and_then(Value::as_str) {
            Some("hang") => std::future::pending().await,
            _ => Ok(ConnectionReport::new("connected")),
        }
    }
    async fn after_connection_test(
        &self,
        _ctx: &ConnectorContext,
        _report: &ConnectionReport,
    ) -> Result<(), RunError> {
        self.hooks.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn run(&self, _ctx: &RunContext) -> Result<RunReport, RunError> {
        Ok(RunReport::skipped())
    }
}

struct Setup {
    store: TestStore,
    inst: i64,
    service: IntegrationService,
    hooks: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State University", None)
        .await
        .unwrap()
        .id;
    let hooks = Arc::new(AtomicUsize::new(0));
    let registry = Registry::empty()
        .with(Arc::new(Checked {
            hooks: hooks.clone(),
        }))
        .unwrap();
    let service = IntegrationService::new(store.store.clone(), registry).with_remote_timeout(BOUND);
    Setup {
        store,
        inst,
        service,
        hooks,
    }
}

fn secrets(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn new_input(config: Value) -> NewIntegrationInput {
    NewIntegrationInput {
        kind: KIND.into(),
        name: "Checked".into(),
        description: String::new(),
        enabled: true,
        config,
        secrets: secrets(&[("password", json!("pw"))]),
    }
}

async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HUNG, f)
        .await
        .expect("the call was not bounded by the service's remote timeout")
}

#[tokio::test]
async fn a_remote_that_does_not_answer_refuses_the_save_and_nothing_is_stored() {
    let s = setup().await;
    let e = guarded(
        s.service
            .create(s.inst, new_input(json!({"path": "/a", "remote": "hang"}))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ServiceError::RemoteTimedOut { waited } if waited == BOUND),
        "{e:?}"
    );
    assert_eq!(e.code(), REMOTE_TIMEOUT);
    let message = e.to_string();
    assert!(
        message.contains("0.2 s") && message.contains("nothing was saved"),
        "{message}"
    );
    assert!(s.store.list_integrations(s.inst).await.unwrap().is_empty());

    // A change that makes the remote hang leaves the saved integration as it was.
    let saved = s
        .service
        .create(s.inst, new_input(json!({"path": "/a"})))
        .await
        .unwrap();
    let e = guarded(s.service.update(
        s.inst,
        saved.id,
        IntegrationChange {
            name: Some("Renamed".into()),
            config: Some(json!({"remote": "hang"})),
            ..Default::default()
        },
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, ServiceError::RemoteTimedOut { .. }), "{e:?}");
    let after = s.store.integration(s.inst, saved.id).await.unwrap();
    assert_eq!(after.name, "Checked");
    assert_eq!(after.config, json!({"path": "/a"}));

    // Test Connection answers in place too: a failed test naming the wait.
    let test = s
        .service
        .saved_test(s.inst, saved.id, Some(json!({"remote": "hang"})), None)
        .await
        .unwrap();
    let outcome = guarded(s.service.test_connection(s.inst, test))
        .await
        .unwrap();
    assert!(!outcome.ok);
    assert!(outcome.message.contains("0.2 s"), "{}", outcome.message);
}

#[tokio::test]
async fn an_invalid_change_stores_nothing() {
    let s = setup().await;
    let e = s
        .service
        .create(s.inst, new_input(json!({"path": ""})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Invalid { field, code: "invalid_value", .. } if field == "config.path"),
        "{e:?}"
    );
    let mut bad_secret = new_input(json!({"path": "/a"}));
    bad_secret.secrets.insert("pin".into(), json!("1234"));
    let e = s.service.create(s.inst, bad_secret).await.unwrap_err();
    assert!(
        matches!(&e, ServiceError::Invalid { field, .. } if field == "secrets.pin"),
        "{e:?}"
    );
    let e = s
        .service
        .create(s.inst, new_input(json!({"path": "/a", "remote": "refuse"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Invalid { field, .. } if field == "config.path"),
        "{e:?}"
    );
    assert!(s.store.list_integrations(s.inst).await.unwrap().is_empty());

    // One bad part (the name) keeps the good parts (config, secrets) from being stored.
    let saved = s
        .service
        .create(s.inst, new_input(json!({"path": "/a"})))
        .await
        .unwrap();
    let e = s
        .service
        .update(
            s.inst,
            saved.id,
            IntegrationChange {
                name: Some("  ".into()),
                config: Some(json!({"path": "/b"})),
                secrets: Some(secrets(&[("password", json!("other"))])),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Invalid { field, code: "missing_required_field", .. } if field == "name"),
        "{e:?}"
    );
    let after = s.store.integration(s.inst, saved.id).await.unwrap();
    assert_eq!(after.config, json!({"path": "/a"}));
    assert_eq!(
        s.store.integration_secrets(s.inst, saved.id).await.unwrap(),
        secrets(&[("password", json!("pw"))])
    );
    let e = s
        .service
        .update(s.inst, saved.id + 1000, IntegrationChange::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::NotFound), "{e:?}");
}

#[tokio::test]
async fn secrets_are_set_kept_and_removed() {
    let s = setup().await;
    let mut input = new_input(json!({"path": "/a"}));
    input.secrets.insert("token".into(), json!("t1"));
    let saved = s.service.create(s.inst, input).await.unwrap();
    let stored = || async { s.store.integration_secrets(s.inst, saved.id).await.unwrap() };
    assert_eq!(
        stored().await,
        secrets(&[("password", json!("pw")), ("token", json!("t1"))])
    );

    // An empty value is a form's untouched field: the saved secret stays.
    s.service
        .update(
            s.inst,
            saved.id,
            IntegrationChange {
                secrets: Some(secrets(&[("password", json!("pw2")), ("token", json!(""))])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        stored().await,
        secrets(&[("password", json!("pw2")), ("token", json!("t1"))])
    );

    // A change without secrets keeps them; null removes one.
    s.service
        .update(
            s.inst,
            saved.id,
            IntegrationChange {
                config: Some(json!({"path": "/b"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.service
        .update(
            s.inst,
            saved.id,
            IntegrationChange {
                secrets: Some(secrets(&[("token", Value::Null)])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored().await, secrets(&[("password", json!("pw2"))]));
}

#[tokio::test]
async fn only_a_test_of_the_saved_settings_runs_the_connector_hook() {
    let s = setup().await;
    let saved = s
        .service
        .create(s.inst, new_input(json!({"path": "/a"})))
        .await
        .unwrap();
    let unsaved = s
        .service
        .saved_test(s.inst, saved.id, Some(json!({"path": "/b"})), None)
        .await
        .unwrap();
    assert!(s.service.test_connection(s.inst, unsaved).await.unwrap().ok);
    let new = ConnectionTest {
        kind: KIND.into(),
        integration_id: None,
        config: json!({"path": "/c"}),
        secrets: Map::new(),
        saved_settings: false,
    };
    assert!(s.service.test_connection(s.inst, new).await.unwrap().ok);
    assert_eq!(s.hooks.load(Ordering::SeqCst), 0);

    let as_saved = s
        .service
        .saved_test(s.inst, saved.id, None, None)
        .await
        .unwrap();
    assert!(as_saved.saved_settings);
    assert!(
        s.service
            .test_connection(s.inst, as_saved)
            .await
            .unwrap()
            .ok
    );
    assert_eq!(s.hooks.load(Ordering::SeqCst), 1);
}
