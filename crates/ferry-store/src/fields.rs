//! Custom field definitions.

use ferry_core::contact::{CustomFieldDef, FieldKind, FieldSchema, validate_custom_field_name};
use sqlx::Row;

use crate::util::now;
use crate::{Result, Store, StoreError};

impl Store {
    /// The institution's custom fields, by name.
    pub async fn custom_fields(&self, institution_id: i64) -> Result<Vec<CustomFieldDef>> {
        let rows = sqlx::query(
            "SELECT name, label, kind FROM custom_fields WHERE institution_id = $1 ORDER BY name",
        )
        .bind(institution_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(CustomFieldDef {
                    name: r.try_get("name")?,
                    label: r.try_get("label")?,
                    kind: kind
                        .parse::<FieldKind>()
                        .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?,
                })
            })
            .collect()
    }

    /// The fields of an institution, for parsing writes.
    pub async fn field_schema(&self, institution_id: i64) -> Result<FieldSchema> {
        Ok(FieldSchema::new(self.custom_fields(institution_id).await?))
    }

    /// Defines a custom field. The name is the key used in imports and the API.
    pub async fn create_custom_field(
        &self,
        institution_id: i64,
        def: &CustomFieldDef,
    ) -> Result<CustomFieldDef> {
        validate_custom_field_name(&def.name)
            .map_err(|m| StoreError::invalid("name", "invalid_value", m))?;
        let label = def.label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            return Err(StoreError::invalid(
                "label",
                "invalid_value",
                "the label must be 1-100 characters",
            ));
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO custom_fields (institution_id, name, label, kind, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(institution_id)
            .bind(&def.name)
            .bind(label)
            .bind(def.kind.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict(format!("a field named {:?} exists", def.name)) } else { e.into() })?;
        crate::audit::write(
            &mut *tx,
            &crate::audit::current_actor(),
            crate::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "field.created".into(),
                target: format!("field {}", def.name),
                detail: serde_json::json!({"name": def.name, "label": label, "kind": def.kind.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CustomFieldDef {
            name: def.name.clone(),
            label: label.to_string(),
            kind: def.kind,
        })
    }

    /// Gives a custom field a new label. Its name (the key in imports, the API and integration
    /// mappings) and every stored value stay as they are.
    pub async fn rename_custom_field(
        &self,
        institution_id: i64,
        name: &str,
        label: &str,
    ) -> Result<CustomFieldDef> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            return Err(StoreError::invalid(
                "label",
                "invalid_value",
                "the label must be 1-100 characters",
            ));
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT label, kind FROM custom_fields WHERE institution_id = $1 AND name = $2",
        )
        .bind(institution_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let old: String = row.try_get("label")?;
        let kind: String = row.try_get("kind")?;
        sqlx::query("UPDATE custom_fields SET label = $1 WHERE institution_id = $2 AND name = $3")
            .bind(label)
            .bind(institution_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        crate::audit::write(
            &mut *tx,
            &crate::audit::current_actor(),
            crate::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "field.renamed".into(),
                target: format!("field {name}"),
                detail: serde_json::json!({"name": name, "from": old, "to": label}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CustomFieldDef {
            name: name.to_string(),
            label: label.to_string(),
            kind: kind.parse().map_err(|e: ferry_core::UnknownValue| {
                StoreError::Db(sqlx::Error::Decode(e.into()))
            })?,
        })
    }

    /// How many contacts hold a value for a custom field.
    pub async fn custom_field_usage(&self, institution_id: i64, name: &str) -> Result<u64> {
        let rows =
            sqlx::query("SELECT custom FROM contacts WHERE institution_id = $1 AND custom LIKE $2")
                .bind(institution_id)
                .bind(format!("%\"{name}\":%"))
                .fetch_all(&self.read)
                .await?;
        let mut n = 0;
        for r in rows {
            let custom: String = r.try_get("custom")?;
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&custom).map_err(|e| sqlx::Error::Decode(e.into()))?;
            if map.get(name).is_some_and(|v| !v.is_null()) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes a custom field and, in the same transaction, its value from every contact (and
    /// from the fields an `UNSET` cleared). Returns how many contacts held a value. The values
    /// are gone for good; the contacts' other fields and change sequence are untouched.
    pub async fn delete_custom_field(&self, institution_id: i64, name: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM custom_fields WHERE institution_id = $1 AND name = $2")
            .bind(institution_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT id, custom, cleared FROM contacts WHERE institution_id = $1 AND (custom LIKE $2 OR cleared LIKE $3)",
        )
        .bind(institution_id)
        .bind(format!("%\"{name}\":%"))
        .bind(format!("%\"{name}\"%"))
        .fetch_all(&mut *tx)
        .await?;
        let mut held = 0u64;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let custom: String = r.try_get("custom")?;
            let cleared: String = r.try_get("cleared")?;
            let mut map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&custom).map_err(|e| sqlx::Error::Decode(e.into()))?;
            let mut list: Vec<String> =
                serde_json::from_str(&cleared).map_err(|e| sqlx::Error::Decode(e.into()))?;
            let had = map.remove(name);
            let before = list.len();
            list.retain(|f| f != name);
            if had.as_ref().is_some_and(|v| !v.is_null()) {
                held += 1;
            }
            if had.is_none() && list.len() == before {
                continue;
            }
            sqlx::query("UPDATE contacts SET custom = $1, cleared = $2 WHERE institution_id = $3 AND id = $4")
                .bind(serde_json::Value::Object(map).to_string())
                .bind(serde_json::to_string(&list).expect("a list of names serialises"))
                .bind(institution_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        crate::audit::write(
            &mut *tx,
            &crate::audit::current_actor(),
            crate::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "field.deleted".into(),
                target: format!("field {name}"),
                detail: serde_json::json!({"name": name, "values_removed": held}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(held)
    }
}
