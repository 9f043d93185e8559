//! CRM accounts connected through OAuth, and the one-time states of OAuth flows in progress.
//! Tokens are sealed with the store's [`SecretBox`](crate::SecretBox) under the context
//! `crm_account:<id>`; they leave the store only through [`Store::crm_account_tokens`].

use jiff::Timestamp;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{get_ts, now};
use crate::{Result, Store, StoreError};

/// A connected account as people see it (no tokens).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CrmAccount {
    /// The ID.
    pub id: i64,
    /// The CRM (`hubspot`).
    pub provider: String,
    /// The account's ID at the provider (HubSpot: the hub ID).
    pub external_id: String,
    /// A name for people (HubSpot: the hub domain).
    pub label: String,
    /// When the account was first connected.
    pub created_at: Timestamp,
    /// When its tokens or label last changed.
    pub updated_at: Timestamp,
}

/// How long an OAuth state stays valid.
pub const OAUTH_STATE_TTL_SECS: i64 = 15 * 60;

fn context(id: i64) -> String {
    format!("crm_account:{id}")
}

fn account_from(row: &AnyRow) -> Result<CrmAccount> {
    Ok(CrmAccount {
        id: row.try_get("id")?,
        provider: row.try_get("provider")?,
        external_id: row.try_get("external_id")?,
        label: row.try_get("label")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn state_hash(state: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(state.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Records an account (or, connected again, replaces its tokens and label); returns it.
    pub async fn upsert_crm_account(
        &self,
        institution_id: i64,
        provider: &str,
        external_id: &str,
        label: &str,
        tokens: &Value,
    ) -> Result<CrmAccount> {
        let mut tx = self.begin_write().await?;
        let ts = now();
        let existing = sqlx::query("SELECT id FROM crm_accounts WHERE institution_id = $1 AND provider = $2 AND external_id = $3")
            .bind(institution_id)
            .bind(provider)
            .bind(external_id)
            .fetch_optional(&mut *tx)
            .await?;
        let existing_account = existing.is_some();
        let id: i64 = match existing {
            Some(r) => r.try_get(0)?,
            None => sqlx::query("INSERT INTO crm_accounts (institution_id, provider, external_id, label, tokens, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id")
                .bind(institution_id)
                .bind(provider)
                .bind(external_id)
                .bind(label)
                .bind(Vec::<u8>::new())
                .bind(ts)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?,
        };
        let sealed = self
            .secrets
            .seal(&context(id), tokens.to_string().as_bytes());
        sqlx::query(
            "UPDATE crm_accounts SET label = $1, tokens = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(label)
        .bind(sealed)
        .bind(ts)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        crate::audit::write(
            &mut *tx,
            &crate::audit::current_actor(),
            crate::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: if existing_account { "account.reconnected" } else { "account.connected" }.into(),
                target: format!("{provider} account {external_id} {label:?}"),
                detail: serde_json::json!({"provider": provider, "external_id": external_id, "label": label}),
            },
        )
        .await?;
        tx.commit().await?;
        self.crm_account(institution_id, id).await
    }

    /// One account of the institution.
    pub async fn crm_account(&self, institution_id: i64, id: i64) -> Result<CrmAccount> {
        let row = sqlx::query("SELECT id, provider, external_id, label, created_at, updated_at FROM crm_accounts WHERE institution_id = $1 AND id = $2")
            .bind(institution_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        account_from(&row.ok_or(StoreError::NotFound)?)
    }

    /// The institution's accounts of `provider`, oldest first.
    pub async fn crm_accounts(
        &self,
        institution_id: i64,
        provider: &str,
    ) -> Result<Vec<CrmAccount>> {
        let rows = sqlx::query("SELECT id, provider, external_id, label, created_at, updated_at FROM crm_accounts WHERE institution_id = $1 AND provider = $2 ORDER BY id")
            .bind(institution_id)
            .bind(provider)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(account_from).collect()
    }

    /// The decrypted tokens of an account. Never log the result.
    pub async fn crm_account_tokens(&self, institution_id: i64, id: i64) -> Result<Value> {
        let row =
            sqlx::query("SELECT tokens FROM crm_accounts WHERE institution_id = $1 AND id = $2")
                .bind(institution_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        let sealed: Vec<u8> = row.ok_or(StoreError::NotFound)?.try_get(0)?;
        serde_json::from_slice(&self.secrets.open(&context(id), &sealed)?)
            .map_err(|e| StoreError::Crypto(e.to_string()))
    }

    /// Replaces an account's tokens (after a refresh).
    pub async fn set_crm_account_tokens(
        &self,
        institution_id: i64,
        id: i64,
        tokens: &Value,
    ) -> Result<()> {
        let sealed = self
            .secrets
            .seal(&context(id), tokens.to_string().as_bytes());
        crate::util::found(
            sqlx::query("UPDATE crm_accounts SET tokens = $1, updated_at = $2 WHERE institution_id = $3 AND id = $4")
                .bind(sealed)
                .bind(now())
                .bind(institution_id)
                .bind(id)
                .execute(&self.write)
                .await?,
        )
    }

    /// Remembers the `state` of an OAuth flow an admin of the institution started.
    pub async fn create_oauth_state(
        &self,
        institution_id: i64,
        provider: &str,
        state: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO oauth_states (state_hash, institution_id, provider, created_at) VALUES ($1, $2, $3, $4)")
            .bind(state_hash(state))
            .bind(institution_id)
            .bind(provider)
            .bind(now())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Remembers the `state` of an OAuth flow with PKCE and its code verifier (sealed).
    pub async fn create_oauth_state_with_verifier(
        &self,
        institution_id: i64,
        provider: &str,
        state: &str,
        code_verifier: &str,
    ) -> Result<()> {
        let hash = state_hash(state);
        let sealed = self
            .secrets
            .seal(&format!("oauth_state:{hash}"), code_verifier.as_bytes());
        sqlx::query("INSERT INTO oauth_states (state_hash, institution_id, provider, created_at, code_verifier) VALUES ($1, $2, $3, $4, $5)")
            .bind(&hash)
            .bind(institution_id)
            .bind(provider)
            .bind(now())
            .bind(sealed)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Uses up an OAuth `state` of a flow with PKCE: its code verifier if the institution
    /// started it for `provider` within [`OAUTH_STATE_TTL_SECS`], else `None`. A state works
    /// once.
    pub async fn take_oauth_state_verifier(
        &self,
        institution_id: i64,
        provider: &str,
        state: &str,
    ) -> Result<Option<String>> {
        let hash = state_hash(state);
        let oldest = now() - OAUTH_STATE_TTL_SECS * 1_000_000;
        let row = sqlx::query("DELETE FROM oauth_states WHERE state_hash = $1 AND institution_id = $2 AND provider = $3 AND created_at >= $4 RETURNING code_verifier")
            .bind(&hash)
            .bind(institution_id)
            .bind(provider)
            .bind(oldest)
            .fetch_optional(&self.write)
            .await?;
        sqlx::query("DELETE FROM oauth_states WHERE created_at < $1")
            .bind(oldest)
            .execute(&self.write)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let Some(sealed) = row.try_get::<Option<Vec<u8>>, _>(0)? else {
            return Ok(None);
        };
        let verifier = self.secrets.open(&format!("oauth_state:{hash}"), &sealed)?;
        Ok(Some(
            String::from_utf8(verifier).map_err(|e| StoreError::Crypto(e.to_string()))?,
        ))
    }

    /// Uses up an OAuth `state`: `true` if the institution started it for `provider` within
    /// [`OAUTH_STATE_TTL_SECS`]. A state works once.
    pub async fn take_oauth_state(
        &self,
        institution_id: i64,
        provider: &str,
        state: &str,
    ) -> Result<bool> {
        let oldest = now() - OAUTH_STATE_TTL_SECS * 1_000_000;
        let done = sqlx::query("DELETE FROM oauth_states WHERE state_hash = $1 AND institution_id = $2 AND provider = $3 AND created_at >= $4")
            .bind(state_hash(state))
            .bind(institution_id)
            .bind(provider)
            .bind(oldest)
            .execute(&self.write)
            .await?;
        sqlx::query("DELETE FROM oauth_states WHERE created_at < $1")
            .bind(oldest)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
