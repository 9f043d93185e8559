//! Integration instances. Config is JSON validated by the connector of its kind before it gets
//! here; secrets are sealed with the store's [`SecretBox`](crate::SecretBox) and only ever
//! leave the store decrypted through [`Store::integration_secrets`].

use jiff::Timestamp;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, NewAuditEvent};
use crate::util::{get_bool, get_ts, now};
use crate::{Result, Store, StoreError};
use serde_json::json;

/// An integration instance as shown to people: secrets appear only as the names that are set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Integration {
    /// The ID.
    pub id: i64,
    /// The institution it belongs to.
    pub institution_id: i64,
    /// Which connector runs it (`hubspot`, `sftp_export`, …).
    pub kind: String,
    /// The name people see.
    pub name: String,
    /// A note for people; may be empty.
    pub description: String,
    /// Whether the scheduler runs it (see [`Store::enabled_integrations`]).
    pub enabled: bool,
    /// The connector's settings, as its schema describes them.
    pub config: Value,
    /// Names of the secrets that are set (never their values).
    pub secrets_set: Vec<String>,
    /// Connector-owned state such as watermarks; advanced only after the remote confirmed.
    pub state: Value,
    /// When it was created.
    pub created_at: Timestamp,
    /// When [`Store::update_integration`] last changed it; connector state does not count.
    pub updated_at: Timestamp,
}

/// What creating an integration takes.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// Which connector runs it; fixed once created.
    pub kind: String,
    /// The name people see.
    pub name: String,
    /// A note for people; may be empty.
    pub description: String,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// The connector's settings, already validated by the connector.
    pub config: Value,
    /// A JSON object of secret values; `None` for none.
    pub secrets: Option<serde_json::Map<String, Value>>,
}

/// A partial update; `None` leaves a part as it is. Secrets merge: a key with a value replaces
/// that secret, a key with `null` removes it, keys not named stay.
#[derive(Debug, Clone, Default)]
pub struct IntegrationUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new note.
    pub description: Option<String>,
    /// Turns scheduled runs on or off.
    pub enabled: Option<bool>,
    /// New settings, already validated by the connector; replace the old ones whole.
    pub config: Option<Value>,
    /// Secrets to set (a value) or remove (`null`).
    pub secrets: Option<serde_json::Map<String, Value>>,
}

const COLS: &str = "id, institution_id, kind, name, description, enabled, config, secrets, state, created_at, updated_at";

/// How the audit log names an integration.
fn target(id: i64, name: &str) -> String {
    format!("integration {id} {name:?}")
}

fn context(id: i64) -> String {
    format!("integration:{id}")
}

impl Store {
    fn integration_from(&self, row: &AnyRow) -> Result<Integration> {
        let id: i64 = row.try_get("id")?;
        let sealed: Option<Vec<u8>> = row.try_get("secrets")?;
        let secrets_set = match sealed {
            Some(s) => {
                let map: serde_json::Map<String, Value> =
                    serde_json::from_slice(&self.secrets.open(&context(id), &s)?)
                        .map_err(|e| StoreError::Crypto(e.to_string()))?;
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k)
                    .collect()
            }
            None => Vec::new(),
        };
        let json = |col: &str| -> Result<Value> {
            serde_json::from_str(&row.try_get::<String, _>(col)?)
                .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))
        };
        Ok(Integration {
            id,
            institution_id: row.try_get("institution_id")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            enabled: get_bool(row, "enabled")?,
            config: json("config")?,
            secrets_set,
            state: json("state")?,
            created_at: get_ts(row, "created_at")?,
            updated_at: get_ts(row, "updated_at")?,
        })
    }

    /// Seals and stores an instance's secrets (none: the column is cleared).
    async fn store_secrets(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: i64,
        secrets: serde_json::Map<String, Value>,
    ) -> Result<()> {
        let sealed = (!secrets.is_empty()).then(|| {
            self.secrets
                .seal(&context(id), Value::Object(secrets).to_string().as_bytes())
        });
        sqlx::query("UPDATE integrations SET secrets = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Creates an integration, sealing its secrets under its own ID.
    pub async fn create_integration(
        &self,
        institution_id: i64,
        new: NewIntegration,
    ) -> Result<Integration> {
        let mut tx = self.begin_write().await?;
        let ts = now();
        let row = sqlx::query("INSERT INTO integrations (institution_id, kind, name, description, enabled, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id")
            .bind(institution_id)
            .bind(&new.kind)
            .bind(&new.name)
            .bind(&new.description)
            .bind(new.enabled)
            .bind(new.config.to_string())
            .bind(ts)
            .fetch_one(&mut *tx)
            .await?;
        let id: i64 = row.try_get(0)?;
        let secret_names: Vec<String> = new
            .secrets
            .as_ref()
            .map(|s| {
                s.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(secrets) = new.secrets.filter(|s| !s.is_empty()) {
            self.store_secrets(&mut tx, id, secrets).await?;
        }
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "integration.created".into(),
                target: target(id, &new.name),
                detail: json!({
                    "kind": new.kind,
                    "name": new.name,
                    "description": new.description,
                    "enabled": new.enabled,
                    "config": new.config,
                    "secrets_set": secret_names,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        self.integration(institution_id, id).await
    }

    /// The integration with this ID in this institution; `NotFound` otherwise.
    pub async fn integration(&self, institution_id: i64, id: i64) -> Result<Integration> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM integrations WHERE institution_id = $1 AND id = $2"
        )))
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        self.integration_from(&row.ok_or(StoreError::NotFound)?)
    }

    /// The institution's integrations, by name.
    pub async fn list_integrations(&self, institution_id: i64) -> Result<Vec<Integration>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM integrations WHERE institution_id = $1 ORDER BY name, id"
        )))
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| self.integration_from(r)).collect()
    }

    /// Every enabled integration of every institution, for the scheduler.
    pub async fn enabled_integrations(&self) -> Result<Vec<Integration>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM integrations WHERE enabled = TRUE ORDER BY id"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| self.integration_from(r)).collect()
    }

    /// The decrypted secrets, for a connector that is about to use them. Never log the result.
    pub async fn integration_secrets(
        &self,
        institution_id: i64,
        id: i64,
    ) -> Result<serde_json::Map<String, Value>> {
        let row =
            sqlx::query("SELECT secrets FROM integrations WHERE institution_id = $1 AND id = $2")
                .bind(institution_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        let sealed: Option<Vec<u8>> = row.ok_or(StoreError::NotFound)?.try_get(0)?;
        match sealed {
            None => Ok(serde_json::Map::new()),
            Some(s) => serde_json::from_slice(&self.secrets.open(&context(id), &s)?)
                .map_err(|e| StoreError::Crypto(e.to_string())),
        }
    }

    /// Applies a partial update in one transaction.
    pub async fn update_integration(
        &self,
        institution_id: i64,
        id: i64,
        u: IntegrationUpdate,
    ) -> Result<Integration> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT name, description, enabled, config, secrets FROM integrations WHERE institution_id = $1 AND id = $2",
        )
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let sealed: Option<Vec<u8>> = row.try_get("secrets")?;
        let old_name: String = row.try_get("name")?;
        let before = json!({
            "name": old_name,
            "description": row.try_get::<String, _>("description")?,
            "enabled": get_bool(&row, "enabled")?,
            "config": serde_json::from_str::<Value>(&row.try_get::<String, _>("config")?)
                .unwrap_or(Value::Null),
        });
        let mut after = before.clone();
        if let Some(n) = &u.name {
            after["name"] = json!(n);
        }
        if let Some(d) = &u.description {
            after["description"] = json!(d);
        }
        if let Some(e) = u.enabled {
            after["enabled"] = json!(e);
        }
        if let Some(c) = &u.config {
            after["config"] = c.clone();
        }
        let changes = audit::json_changes(&before, &after);
        let (mut secrets_set, mut secrets_removed) = (Vec::new(), Vec::new());
        for (k, v) in u.secrets.iter().flatten() {
            if v.is_null() {
                secrets_removed.push(k.clone());
            } else {
                secrets_set.push(k.clone());
            }
        }
        let ts = now();
        sqlx::query(
            "UPDATE integrations SET name = COALESCE($1, name), description = COALESCE($2, description), enabled = COALESCE($3, enabled), \
             config = COALESCE($4, config), updated_at = $5 WHERE id = $6",
        )
        .bind(u.name)
        .bind(u.description)
        .bind(u.enabled)
        .bind(u.config.map(|c| c.to_string()))
        .bind(ts)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(changes) = u.secrets {
            let mut current: serde_json::Map<String, Value> = match sealed {
                Some(s) => serde_json::from_slice(&self.secrets.open(&context(id), &s)?)
                    .map_err(|e| StoreError::Crypto(e.to_string()))?,
                None => serde_json::Map::new(),
            };
            for (k, v) in changes {
                if v.is_null() {
                    current.remove(&k);
                } else {
                    current.insert(k, v);
                }
            }
            self.store_secrets(&mut tx, id, current).await?;
        }
        if !changes.is_empty() || !secrets_set.is_empty() || !secrets_removed.is_empty() {
            let only_enabled = changes.len() == 1 && changes.contains_key("enabled");
            let kind = match (only_enabled, u.enabled) {
                (true, Some(true)) => "integration.enabled",
                (true, Some(false)) => "integration.disabled",
                _ => "integration.updated",
            };
            let mut detail = json!({ "changes": changes });
            if !secrets_set.is_empty() {
                detail["secrets_set"] = json!(secrets_set);
            }
            if !secrets_removed.is_empty() {
                detail["secrets_removed"] = json!(secrets_removed);
            }
            audit::write(
                &mut *tx,
                &audit::current_actor(),
                NewAuditEvent {
                    institution_id: Some(institution_id),
                    kind: kind.into(),
                    target: target(id, after["name"].as_str().unwrap_or(&old_name)),
                    detail,
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.integration(institution_id, id).await
    }

    /// Replaces the connector-owned state (watermarks). Call only after the remote confirmed.
    pub async fn set_integration_state(
        &self,
        institution_id: i64,
        id: i64,
        state: &Value,
    ) -> Result<()> {
        let done =
            sqlx::query("UPDATE integrations SET state = $1 WHERE institution_id = $2 AND id = $3")
                .bind(state.to_string())
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Deletes an instance with its runs; its Sync Log rows stay, without the link.
    pub async fn delete_integration(&self, institution_id: i64, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM integrations WHERE institution_id = $1 AND id = $2 RETURNING kind, name",
        )
        .bind(institution_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let name: String = row.try_get("name")?;
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "integration.deleted".into(),
                target: target(id, &name),
                detail: json!({"kind": row.try_get::<String, _>("kind")?, "name": name}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
