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
}
