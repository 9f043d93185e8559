//! The audit log: who changed what, when (secrets redacted), and every failed sign-in.
//!
//! Who acts is ambient: the web layer runs each authenticated request inside
//! [`acting_as`], the CLI runs its commands as [`Actor::cli`], and anything else (the
//! worker) is [`Actor::system`]. The store's changing methods (integrations, CRM accounts,
//! tokens, users, roles, custom fields) write their audit row in the same transaction as the
//! change, so there is never a change without its row nor a row without its change.

use std::future::Future;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{Filter, get_ts, like_pattern, now};
use crate::{Result, Store, StoreError};

pub use ferry_core::audit::ActorKind;

/// Who acts, and from where.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// What kind of party.
    pub kind: ActorKind,
    /// Its name for people (see [`ActorKind`]).
    pub name: String,
    /// The client address, for web requests; empty otherwise.
    pub client: String,
}

impl Actor {
    /// A signed-in user.
    pub fn user(email: &str, client: &str) -> Actor {
        Actor {
            kind: ActorKind::User,
            name: email.to_string(),
            client: client.to_string(),
        }
    }

    /// An API token.
    pub fn token(id: i64, name: &str, client: &str) -> Actor {
        Actor {
            kind: ActorKind::Token,
            name: format!("#{id} {name}"),
            client: client.to_string(),
        }
    }

    /// The command line, as the operating-system user running it.
    pub fn cli() -> Actor {
        Actor {
            kind: ActorKind::Cli,
            name: std::env::var("USER").unwrap_or_default(),
            client: String::new(),
        }
    }

    /// Ferry itself.
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            name: String::new(),
            client: String::new(),
        }
    }

    /// Someone not signed in, at a client address.
    pub fn anonymous(client: &str) -> Actor {
        Actor {
            kind: ActorKind::Anonymous,
            name: String::new(),
            client: client.to_string(),
        }
    }
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `f` with `actor` as the one who acts for every change it makes through the store.
pub async fn acting_as<F: Future>(actor: Actor, f: F) -> F::Output {
    ACTOR.scope(actor, f).await
}

/// Who acts now: the actor of the enclosing [`acting_as`], else [`Actor::system`].
pub fn current_actor() -> Actor {
    ACTOR
        .try_with(Actor::clone)
        .unwrap_or_else(|_| Actor::system())
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// The institution it concerns; `None` for none.
    pub institution_id: Option<i64>,
    /// What happened: `integration.updated`, `token.revoked`, `signin.failed`, …
    pub kind: String,
    /// What it happened to, for people: `integration 7 "EAB notes"`.
    pub target: String,
    /// The details: what changed, from what to what. Never a secret's value.
    pub detail: Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// The ID; later events have larger IDs.
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// What kind of party acted.
    pub actor_kind: ActorKind,
    /// Who acted (see [`ActorKind`]).
    pub actor: String,
    /// From which client address, when known.
    pub client: String,
    /// What happened.
    pub kind: String,
    /// What it happened to.
    pub target: String,
    /// The details.
    pub detail: Value,
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// Only events by this actor (its name, case-insensitive, or `kind:name`, e.g. `token:#3 ci`).
    pub actor: Option<String>,
    /// Only events of this kind: exact (`token.revoked`) or a family (`token`).
    pub kind: Option<String>,
    /// Only events with an ID below this (the next page's cursor).
    pub before: Option<i64>,
    /// At most this many (1-500).
    pub limit: u32,
}

/// One page of events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    /// The events, newest first.
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next page, when there may be one.
    pub next_before: Option<i64>,
}

/// Keys whose values are never written to the audit log, wherever they appear in a detail.
const SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "secrets",
    "token",
    "tokens",
    "access_token",
    "refresh_token",
    "private_key",
    "api_key",
    "client_secret",
];

/// Replaces the value of every key that names a secret with `"[redacted]"`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                // Change paths (`sftp.private_key`) are judged by their last part.
                let lower = k.to_lowercase();
                let last = lower.rsplit('.').next().unwrap_or_default();
                if SECRET_KEYS.contains(&last) || last.ends_with("_secret") {
                    *v = Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The differences between two JSON values as `{"path": {"from": …, "to": …}}`, descending
/// into objects (paths like `sftp.directory`); arrays and scalars compare whole.
pub fn json_changes(old: &Value, new: &Value) -> Map<String, Value> {
    fn walk(path: &str, old: &Value, new: &Value, out: &mut Map<String, Value>) {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        a.get(k).unwrap_or(&Value::Null),
                        b.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (a, b) if a != b => {
                out.insert(path.to_string(), json!({"from": a, "to": b}));
            }
            _ => {}
        }
    }
    let mut out = Map::new();
    walk("", old, new, &mut out);
    out
}

fn entry_from(row: &AnyRow) -> Result<AuditEntry> {
    let kind: String = row.try_get("actor_kind")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: get_ts(row, "at")?,
        actor_kind: kind.parse().unwrap_or(ActorKind::System),
        actor: row.try_get("actor")?,
        client: row.try_get("client")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        detail: serde_json::from_str(&row.try_get::<String, _>("detail")?)
            .map_err(|e| StoreError::Db(sqlx::Error::Decode(e.into())))?,
    })
}

/// Writes one event by `actor` inside `ex` (a transaction of the change it records).
pub(crate) async fn write<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    actor: &Actor,
    event: NewAuditEvent,
) -> Result<()> {
    let mut detail = event.detail;
    redact(&mut detail);
    sqlx::query("INSERT INTO audit_log (institution_id, at, actor_kind, actor, client, kind, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(event.institution_id)
        .bind(now())
        .bind(actor.kind.as_str())
        .bind(&actor.name)
        .bind(&actor.client)
        .bind(event.kind)
        .bind(event.target)
        .bind(detail.to_string())
        .execute(ex)
        .await?;
    Ok(())
}

impl Store {
    /// Records an event by the [current actor](current_actor) (for changes that are not made
    /// through the store, such as signing out everywhere).
    pub async fn record_audit(&self, event: NewAuditEvent) -> Result<()> {
        write(&self.write, &current_actor(), event).await
    }

    /// Records an event by `actor`.
    pub async fn record_audit_as(&self, actor: &Actor, event: NewAuditEvent) -> Result<()> {
        write(&self.write, actor, event).await
    }

    /// One page of an institution's events, newest first.
    pub async fn audit_log(&self, institution_id: i64, q: &AuditQuery) -> Result<AuditPage> {
        let limit = q.limit.clamp(1, 500);
        let mut f = Filter::new(
            self.backend,
            "SELECT id, at, actor_kind, actor, client, kind, target, detail FROM audit_log WHERE institution_id =",
            institution_id,
        )?;
        if let Some(t) = q.since {
            f.and(" AND at >= $?", crate::util::micros(t))?;
        }
        if let Some(t) = q.until {
            f.and(" AND at < $?", crate::util::micros(t))?;
        }
        if let Some(b) = q.before {
            f.and(" AND id < $?", b)?;
        }
        if let Some(a) = q.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            match a
                .split_once(':')
                .and_then(|(k, n)| Some((k.parse::<ActorKind>().ok()?, n)))
            {
                Some((kind, name)) => {
                    f.and(" AND actor_kind = $?", kind.as_str())?;
                    f.and(" AND LOWER(actor) = $?", name.trim().to_lowercase())?;
                }
                None => f.and(" AND LOWER(actor) = $?", a.to_lowercase())?,
            }
        }
        if let Some(k) = q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            if k.contains('.') {
                f.and(" AND kind = $?", k.to_string())?;
            } else {
                // A family: `token` matches `token.created`, `token.revoked`, …
                let mut pattern = like_pattern(&format!("{k}."));
                pattern.remove(0);
                f.and(" AND kind LIKE $? ESCAPE '\\'", pattern)?;
            }
        }
        f.push(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let rows = f.fetch_all(&self.read).await?;
        let mut entries = rows.iter().map(entry_from).collect::<Result<Vec<_>>>()?;
        let next_before = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_keys_anywhere() {
        let mut v = json!({"name": "x", "secrets": {"password": "p"}, "nested": [{"client_secret": "s", "ok": 1}], "PRIVATE_KEY": "k", "sftp.password": {"from": "a", "to": "b"}});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"name": "x", "secrets": "[redacted]", "nested": [{"client_secret": "[redacted]", "ok": 1}], "PRIVATE_KEY": "[redacted]", "sftp.password": "[redacted]"})
        );
    }

    #[test]
    fn changes_by_path() {
        let old = json!({"sftp": {"host": "a", "port": 22}, "schedule": "daily"});
        let new = json!({"sftp": {"host": "b", "port": 22}, "extra": true, "schedule": "daily"});
        let c = json_changes(&old, &new);
        assert_eq!(
            Value::Object(c),
            json!({"extra": {"from": null, "to": true}, "sftp.host": {"from": "a", "to": "b"}})
        );
    }
}
