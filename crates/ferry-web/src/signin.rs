//! Throttled sign-in: progressive waits per account at one client and a failure budget per
//! client address ([`ferry_core::signin`]), kept in the store so that every process shares
//! them; failed sign-ins go to the audit log.

use std::net::IpAddr;

use ferry_core::signin as policy;
use ferry_store::audit::{Actor, NewAuditEvent};
use ferry_store::{Store, StoreError};
use jiff::Timestamp;
use serde_json::json;

/// One sign-in attempt: an email as typed, from one client.
pub(crate) struct Attempt {
    email: String,
    client: IpAddr,
    account_key: String,
    address_key: String,
}

impl Attempt {
    pub(crate) fn new(email: &str, client: IpAddr) -> Attempt {
        Attempt {
            email: email.to_string(),
            client,
            account_key: policy::account_key(email, client),
            address_key: policy::address_key(client),
        }
    }

    /// Counts the attempt; `Some(until)` when this client must wait (the password is then
    /// not checked and nothing is counted).
    pub(crate) async fn start(
        &self,
        store: &Store,
        rules: &policy::Policy,
    ) -> Result<Option<Timestamp>, StoreError> {
        store
            .signin_attempt(
                &[self.account_key.clone(), self.address_key.clone()],
                rules.quiet_reset_secs,
                |i, n| {
                    if i == 0 {
                        rules.account_delay_secs(n)
                    } else {
                        rules.client_delay_secs(n)
                    }
                },
            )
            .await
    }

    /// The password was right: the account starts over at this client.
    pub(crate) async fn succeeded(
        &self,
        store: &Store,
        rules: &policy::Policy,
    ) -> Result<(), StoreError> {
        store
            .signin_succeeded(&self.account_key, &self.address_key, rules.client_budget)
            .await
    }

    /// The password (or email) was wrong: records it in the audit log of each institution
    /// the account belongs to (or of none, for an unknown email). What was typed in the
    /// email field is kept only when it is an email: people type passwords there too.
    pub(crate) async fn failed(&self, store: &Store) -> Result<(), StoreError> {
        let client = self.client.to_string();
        let actor = Actor::anonymous(&client);
        let login = ferry_store::normalize_login(&self.email).ok();
        let user = match &login {
            Some(l) => store.user_by_email(l).await?,
            None => None,
        };
        let Some(user) = user else {
            let event = NewAuditEvent {
                institution_id: None,
                kind: "signin.failed".into(),
                target: "unknown account".into(),
                detail: json!({"email": login, "reason": "unknown_email", "client": client}),
            };
            return store.record_audit_as(&actor, event).await;
        };
        let memberships = store.memberships(user.id).await?;
        let institutions: Vec<Option<i64>> = if memberships.is_empty() {
            vec![None]
        } else {
            memberships.iter().map(|m| Some(m.institution.id)).collect()
        };
        for institution_id in institutions {
            let event = NewAuditEvent {
                institution_id,
                kind: "signin.failed".into(),
                target: format!("user {}", user.email),
                detail: json!({"email": user.email, "reason": "wrong_password", "client": client}),
            };
            store.record_audit_as(&actor, event).await?;
        }
        Ok(())
    }
}
