//! Institutions, users and their roles, API tokens and UI sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ferry_core::tenancy::{Role, validate_slug, validate_time_zone};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit;
use crate::util::{get_opt_ts, get_ts, micros, now};
use crate::{Result, Store, StoreError};
use serde_json::json;

/// A tenant: a school or organisation. Nothing crosses institutions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Institution {
    /// The ID.
    pub id: i64,
    /// The institution's name in URLs: lower-case letters, digits and hyphens.
    pub slug: String,
    /// The name people see.
    pub name: String,
    /// An IANA zone name (`America/New_York`); dates in exports and notes are written in it.
    pub time_zone: String,
    /// When the institution was created.
    pub created_at: Timestamp,
}

/// A person who signs in to the dashboard, by email and password.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct User {
    /// The ID.
    pub id: i64,
    /// The login, trimmed and lower-cased (see `normalize_login`).
    pub email: String,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A user's role in one institution.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The institution.
    pub institution: Institution,
    /// What the user may do there.
    pub role: Role,
}

/// An API token of one institution (without its secret, which is shown once, when created).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApiToken {
    /// The ID.
    pub id: i64,
    /// The institution it acts in.
    pub institution_id: i64,
    /// A name for people, to tell tokens apart.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// When the token was created.
    pub created_at: Timestamp,
    /// When the token last authenticated a request; `None` if never. Coarse: written at most
    /// once per [`LAST_USED_GRANULARITY_SECS`], so a token's requests cost no write each.
    pub last_used_at: Option<Timestamp>,
    /// When the token stops being accepted; `None` for never.
    pub expires_at: Option<Timestamp>,
    /// When the token was revoked; `None` while it is not.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether the token authenticates requests now: neither revoked nor expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// How stale a token's `last_used_at` or a session's `last_seen_at` may get before a request
/// writes it again, in seconds.
pub const LAST_USED_GRANULARITY_SECS: i64 = 300;

/// A UI session as listed to people (never its cookie).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionInfo {
    /// A public handle for the session (a prefix of its stored hash; not the cookie).
    pub id: String,
    /// Whose session.
    pub user_id: i64,
    /// The user's email.
    pub email: String,
    /// The institution it acts in.
    pub institution_id: i64,
    /// When the user signed in.
    pub created_at: Timestamp,
    /// When it last made a request (coarse, like a token's `last_used_at`).
    pub last_seen_at: Option<Timestamp>,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// The client address it signed in from.
    pub client: String,
    /// The browser it signed in with (its `User-Agent`).
    pub user_agent: String,
}

/// Who is acting, in which institution, with which role.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The institution acted in.
    pub institution: Institution,
    /// What the principal may do there.
    pub role: Role,
    /// The user, for sessions; `None` for API tokens.
    pub user: Option<User>,
    /// The API token, for API tokens; `None` for sessions.
    pub token_id: Option<i64>,
    /// The API token's name, for API tokens; `None` for sessions.
    pub token_name: Option<String>,
    /// The session's public handle ([`SessionInfo::id`]), for sessions; `None` for tokens.
    pub session_id: Option<String>,
}

/// A UI session with its CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who the session acts as.
    pub principal: Principal,
    /// The token a form or unsafe request must echo back.
    pub csrf_token: String,
    /// When the session stops being accepted.
    pub expires_at: Timestamp,
}

/// How long a UI session lasts.
pub const SESSION_HOURS: i64 = 12;
const TOKEN_PREFIX: &str = "fry_";

fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    B64URL.encode(b)
}

/// Tokens and session ids have 256 bits of entropy, so a fast hash is enough to keep the
/// stored value useless to a reader of the database.
fn hash_secret(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn institution_from(row: &AnyRow) -> Result<Institution, sqlx::Error> {
    Ok(Institution {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
        created_at: get_ts(row, "created_at")?,
    })
}

fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        created_at: get_ts(row, "user_created_at")?,
    })
}

fn role_from(row: &AnyRow) -> Result<Role, sqlx::Error> {
    let s: String = row.try_get("role")?;
    s.parse()
        .map_err(|e: ferry_core::UnknownValue| sqlx::Error::Decode(e.into()))
}

const INSTITUTION_COLS: &str = "i.id, i.slug, i.name, i.time_zone, i.created_at";

/// Normalises an email used as a login: trimmed and lower-cased.
pub fn normalize_login(email: &str) -> Result<String> {
    let parsed = ferry_core::email::Email::parse(email)
        .map_err(|e| StoreError::invalid("email", "invalid_email", e.to_string()))?;
    Ok(parsed.as_str().to_lowercase())
}

impl Store {
    /// Creates an institution; the slug must be free (else `Conflict`) and the time zone defaults to
    /// [`ferry_core::tenancy::DEFAULT_TIME_ZONE`].
    pub async fn create_institution(
        &self,
        slug: &str,
        name: &str,
        time_zone: Option<&str>,
    ) -> Result<Institution> {
        validate_slug(slug).map_err(|m| StoreError::invalid("slug", "invalid_value", m))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::invalid(
                "name",
                "invalid_value",
                "the name must be 1-200 characters",
            ));
        }
        let tz = time_zone.unwrap_or(ferry_core::tenancy::DEFAULT_TIME_ZONE);
        validate_time_zone(tz).map_err(|m| StoreError::invalid("time_zone", "invalid_value", m))?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("INSERT INTO institutions (slug, name, time_zone, created_at) VALUES ($1, $2, $3, $4) RETURNING id, slug, name, time_zone, created_at")
            .bind(slug)
            .bind(name)
            .bind(tz)
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict(format!("an institution with slug {slug:?} exists")) } else { e.into() })?;
        let inst = institution_from(&row)?;
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            audit::NewAuditEvent {
                institution_id: Some(inst.id),
                kind: "institution.created".into(),
                target: format!("institution {}", inst.slug),
                detail: json!({"slug": inst.slug, "name": inst.name, "time_zone": inst.time_zone}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(inst)
    }

    /// The institution with this slug, if there is one.
    pub async fn institution_by_slug(&self, slug: &str) -> Result<Option<Institution>> {
        let row = sqlx::query(
            "SELECT id, slug, name, time_zone, created_at FROM institutions WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(institution_from).transpose()?)
    }

    /// The institution with this ID; `NotFound` if there is none.
    pub async fn institution(&self, id: i64) -> Result<Institution> {
        let row = sqlx::query(
            "SELECT id, slug, name, time_zone, created_at FROM institutions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref()
            .map(institution_from)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Every institution, by slug.
    pub async fn institutions(&self) -> Result<Vec<Institution>> {
        let rows = sqlx::query(
            "SELECT id, slug, name, time_zone, created_at FROM institutions ORDER BY slug",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(institution_from)
            .collect::<Result<_, _>>()?)
    }

    /// Creates a user with an argon2id password hash.
    pub async fn create_user(&self, email: &str, password: &str) -> Result<User> {
        let email = normalize_login(email)?;
        let hash = hash_password(password).await?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id AS user_id, email, created_at AS user_created_at")
            .bind(&email)
            .bind(hash)
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict(format!("a user with email {email} exists")) } else { e.into() })?;
        let user = user_from(&row)?;
        // A new user belongs to no institution yet; granting a role is recorded there.
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            audit::NewAuditEvent {
                institution_id: None,
                kind: "user.created".into(),
                target: format!("user {email}"),
                detail: json!({"email": email}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this login (normalised first), if there is one.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = normalize_login(email)?;
        let row = sqlx::query("SELECT id AS user_id, email, created_at AS user_created_at FROM users WHERE email = $1").bind(email).fetch_optional(&self.read).await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    /// Replaces a user's password (hashed with argon2id).
    pub async fn set_password(&self, user_id: i64, password: &str) -> Result<()> {
        let hash = hash_password(password).await?;
        let mut tx = self.begin_write().await?;
        crate::util::found(
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?,
        )?;
        let email = user_email(&mut tx, user_id).await?;
        for institution_id in user_institutions(&mut tx, user_id).await? {
            audit::write(
                &mut *tx,
                &audit::current_actor(),
                audit::NewAuditEvent {
                    institution_id,
                    kind: "user.password_changed".into(),
                    target: format!("user {email}"),
                    detail: json!({"email": email}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives a user a role in an institution (replacing any role there).
    pub async fn grant_role(&self, user_id: i64, institution_id: i64, role: Role) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query("SELECT role FROM memberships WHERE user_id = $1 AND institution_id = $2")
                .bind(user_id)
                .bind(institution_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        sqlx::query("INSERT INTO memberships (user_id, institution_id, role) VALUES ($1, $2, $3) ON CONFLICT (user_id, institution_id) DO UPDATE SET role = excluded.role")
            .bind(user_id)
            .bind(institution_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        if before.as_deref() != Some(role.as_str()) {
            let email = user_email(&mut tx, user_id).await?;
            audit::write(
                &mut *tx,
                &audit::current_actor(),
                audit::NewAuditEvent {
                    institution_id: Some(institution_id),
                    kind: "user.role_granted".into(),
                    target: format!("user {email}"),
                    detail: json!({"email": email, "role": {"from": before, "to": role.as_str()}}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The institutions a user belongs to, by name.
    pub async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {INSTITUTION_COLS}, m.role FROM memberships m JOIN institutions i ON i.id = m.institution_id WHERE m.user_id = $1 ORDER BY i.name")))
            .bind(user_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    institution: institution_from(r)?,
                    role: role_from(r)?,
                })
            })
            .collect()
    }

    /// Checks an email and password. `None` when either is wrong (the caller cannot tell which).
    pub async fn verify_login(&self, email: &str, password: &str) -> Result<Option<User>> {
        let Ok(email) = normalize_login(email) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT id AS user_id, email, created_at AS user_created_at, password_hash FROM users WHERE email = $1").bind(email).fetch_optional(&self.read).await?;
        // Verify against a fixed hash when the user does not exist, so timing does not tell.
        let (user, hash) = match &row {
            Some(r) => (
                Some(user_from(r)?),
                r.try_get::<String, _>("password_hash")?,
            ),
            None => (None, DUMMY_HASH.to_string()),
        };
        let ok = verify_password(password.to_string(), hash).await;
        Ok(user.filter(|_| ok))
    }

    /// Creates an API token that does not expire; see [`Store::create_api_token_with`].
    pub async fn create_api_token(
        &self,
        institution_id: i64,
        role: Role,
        name: &str,
    ) -> Result<(ApiToken, String)> {
        self.create_api_token_with(institution_id, role, name, None)
            .await
    }

    /// Creates an API token (its name 1-100 characters; its expiry, if any, in the future);
    /// returns the record and the secret, which is not stored and cannot be shown again.
    pub async fn create_api_token_with(
        &self,
        institution_id: i64,
        role: Role,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(ApiToken, String)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid(
                "name",
                "invalid_value",
                "the name must be 1-100 characters",
            ));
        }
        if expires_at.is_some_and(|e| e <= Timestamp::now()) {
            return Err(StoreError::invalid(
                "expires_at",
                "invalid_value",
                "the expiry must be in the future",
            ));
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_token());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("INSERT INTO api_tokens (institution_id, name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, institution_id, name, role, created_at, last_used_at, expires_at, revoked_at")
            .bind(institution_id)
            .bind(name)
            .bind(role.as_str())
            .bind(hash_secret(&secret))
            .bind(now())
            .bind(expires_at.map(micros))
            .fetch_one(&mut *tx)
            .await?;
        let token = token_from(&row)?;
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            audit::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "token.created".into(),
                target: format!("token #{} {:?}", token.id, token.name),
                detail: json!({"name": token.name, "role": role.as_str(), "expires_at": token.expires_at}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((token, secret))
    }

    /// The institution's API tokens, revoked and expired ones included, newest first.
    pub async fn api_tokens(&self, institution_id: i64) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT id, institution_id, name, role, created_at, last_used_at, expires_at, revoked_at FROM api_tokens WHERE institution_id = $1 ORDER BY id DESC")
            .bind(institution_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(token_from).collect()
    }

    /// Revokes a token of the institution: it stops authenticating at once. Revoking a
    /// revoked token changes nothing. `NotFound` for a token of another institution.
    pub async fn revoke_api_token(&self, institution_id: i64, id: i64) -> Result<ApiToken> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE institution_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(now())
            .bind(institution_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT id, institution_id, name, role, created_at, last_used_at, expires_at, revoked_at FROM api_tokens WHERE institution_id = $1 AND id = $2")
            .bind(institution_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let token = token_from(&row)?;
        if done.rows_affected() > 0 {
            audit::write(
                &mut *tx,
                &audit::current_actor(),
                audit::NewAuditEvent {
                    institution_id: Some(institution_id),
                    kind: "token.revoked".into(),
                    target: format!("token #{} {:?}", token.id, token.name),
                    detail: json!({"name": token.name, "role": token.role.as_str()}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(token)
    }

    /// Resolves a bearer token to its institution and role; revoked and expired tokens
    /// resolve to `None`. Records the use when the last record is older than
    /// [`LAST_USED_GRANULARITY_SECS`].
    pub async fn authenticate_token(&self, secret: &str) -> Result<Option<Principal>> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 100 {
            return Ok(None);
        }
        let ts = now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {INSTITUTION_COLS}, t.role, t.id AS token_id, t.name AS token_name, t.last_used_at FROM api_tokens t JOIN institutions i ON i.id = t.institution_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)")))
            .bind(hash_secret(secret))
            .bind(ts)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token_id: i64 = row.try_get("token_id")?;
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        let stale = ts - LAST_USED_GRANULARITY_SECS * 1_000_000;
        if last_used.is_none_or(|t| t < stale) {
            // The condition keeps concurrent requests of one token to one write.
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
                .bind(ts)
                .bind(token_id)
                .bind(stale)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(Principal {
            institution: institution_from(&row)?,
            role: role_from(&row)?,
            user: None,
            token_id: Some(token_id),
            token_name: Some(row.try_get("token_name")?),
            session_id: None,
        }))
    }

    /// Starts a UI session for a user in one of their institutions; returns the cookie value.
    pub async fn create_session(&self, user_id: i64, institution_id: i64) -> Result<String> {
        self.create_session_from(user_id, institution_id, "", "")
            .await
    }

    /// Starts a UI session, remembering the client address and browser it came from (for the
    /// session list); returns the cookie value.
    pub async fn create_session_from(
        &self,
        user_id: i64,
        institution_id: i64,
        client: &str,
        user_agent: &str,
    ) -> Result<String> {
        let id = random_token();
        let created = now();
        let expires = created + SESSION_HOURS * 3_600_000_000;
        let user_agent: String = user_agent.chars().take(300).collect();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(created)
            .execute(&self.write)
            .await?;
        sqlx::query("INSERT INTO sessions (id_hash, user_id, institution_id, csrf_token, created_at, expires_at, last_seen_at, client, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $5, $7, $8)")
            .bind(hash_secret(&id))
            .bind(user_id)
            .bind(institution_id)
            .bind(random_token())
            .bind(created)
            .bind(expires)
            .bind(client)
            .bind(user_agent)
            .execute(&self.write)
            .await?;
        Ok(id)
    }

    /// Resolves a session cookie; expired sessions and lost memberships resolve to `None`.
    /// Records the request's time when the last record is older than
    /// [`LAST_USED_GRANULARITY_SECS`].
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>> {
        if cookie.len() > 100 {
            return Ok(None);
        }
        let ts = now();
        let id_hash = hash_secret(cookie);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTITUTION_COLS}, m.role, s.csrf_token, s.expires_at, s.last_seen_at, u.id AS user_id, u.email, u.created_at AS user_created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN memberships m ON m.user_id = s.user_id AND m.institution_id = s.institution_id \
             JOIN institutions i ON i.id = s.institution_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2"
        )))
        .bind(&id_hash)
        .bind(ts)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_seen: Option<i64> = row.try_get("last_seen_at")?;
        let stale = ts - LAST_USED_GRANULARITY_SECS * 1_000_000;
        if last_seen.is_none_or(|t| t < stale) {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND (last_seen_at IS NULL OR last_seen_at < $3)")
                .bind(ts)
                .bind(&id_hash)
                .bind(stale)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(Session {
            principal: Principal {
                institution: institution_from(&row)?,
                role: role_from(&row)?,
                user: Some(user_from(&row)?),
                token_id: None,
                token_name: None,
                session_id: Some(public_session_id(&id_hash)),
            },
            csrf_token: row.try_get("csrf_token")?,
            expires_at: get_ts(&row, "expires_at")?,
        }))
    }

    /// Ends a session; an unknown cookie is not an error.
    pub async fn delete_session(&self, cookie: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(hash_secret(cookie))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The sessions that are open in an institution, most recently started first.
    pub async fn institution_sessions(&self, institution_id: i64) -> Result<Vec<SessionInfo>> {
        let rows = sqlx::query("SELECT s.id_hash, s.user_id, u.email, s.institution_id, s.created_at, s.last_seen_at, s.expires_at, s.client, s.user_agent FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.institution_id = $1 AND s.expires_at > $2 ORDER BY s.created_at DESC")
            .bind(institution_id)
            .bind(now())
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionInfo {
                    id: public_session_id(&r.try_get::<String, _>("id_hash")?),
                    user_id: r.try_get("user_id")?,
                    email: r.try_get("email")?,
                    institution_id: r.try_get("institution_id")?,
                    created_at: get_ts(r, "created_at")?,
                    last_seen_at: get_opt_ts(r, "last_seen_at")?,
                    expires_at: get_ts(r, "expires_at")?,
                    client: r.try_get("client")?,
                    user_agent: r.try_get("user_agent")?,
                })
            })
            .collect()
    }

    /// Ends one session of the institution by its public handle; `NotFound` when there is
    /// no such session there.
    pub async fn end_session(&self, institution_id: i64, id: &str) -> Result<()> {
        if id.len() != PUBLIC_SESSION_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM sessions WHERE institution_id = $1 AND id_hash LIKE $2 RETURNING user_id",
        )
        .bind(institution_id)
        .bind(format!("{id}%"))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let user_id: i64 = row.try_get(0)?;
        let email = user_email(&mut tx, user_id).await?;
        audit::write(
            &mut *tx,
            &audit::current_actor(),
            audit::NewAuditEvent {
                institution_id: Some(institution_id),
                kind: "session.ended".into(),
                target: format!("user {email}"),
                detail: json!({"session": id}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user, in every institution ("sign out everywhere"); returns
    /// how many ended.
    pub async fn end_user_sessions(&self, user_id: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let institutions: Vec<i64> = sqlx::query(
            "SELECT DISTINCT institution_id FROM sessions WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id)
        .bind(now())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let email = user_email(&mut tx, user_id).await?;
        for institution_id in institutions {
            audit::write(
                &mut *tx,
                &audit::current_actor(),
                audit::NewAuditEvent {
                    institution_id: Some(institution_id),
                    kind: "session.signed_out_everywhere".into(),
                    target: format!("user {email}"),
                    detail: json!({"sessions_ended": done.rows_affected()}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

async fn user_email(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<String> {
    Ok(sqlx::query("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .unwrap_or_default())
}

/// The institutions a user belongs to, or `[None]` for none (so that an event about the
/// user is still recorded).
async fn user_institutions(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<Vec<Option<i64>>> {
    let ids: Vec<Option<i64>> = sqlx::query(
        "SELECT institution_id FROM memberships WHERE user_id = $1 ORDER BY institution_id",
    )
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get::<i64, _>(0).map(Some))
    .collect::<Result<_, _>>()?;
    Ok(if ids.is_empty() { vec![None] } else { ids })
}

const PUBLIC_SESSION_ID_LEN: usize = 16;

/// A session's public handle: the first 64 bits of the hash of its cookie, which tell nothing
/// about the cookie.
fn public_session_id(id_hash: &str) -> String {
    id_hash.chars().take(PUBLIC_SESSION_ID_LEN).collect()
}

fn token_from(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        institution_id: row.try_get("institution_id")?,
        name: row.try_get("name")?,
        role: role_from(row)?,
        created_at: get_ts(row, "created_at")?,
        last_used_at: get_opt_ts(row, "last_used_at")?,
        expires_at: get_opt_ts(row, "expires_at")?,
        revoked_at: get_opt_ts(row, "revoked_at")?,
    })
}

/// An argon2id hash of a random password, verified when the email is unknown.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0N0o3sPjZ2bqk9yJq5C9bT8o0l8bHq7c4gqS3m0vJfQ";

/// The smallest password Ferry accepts.
pub const MIN_PASSWORD_LEN: usize = 10;

pub(crate) async fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return Err(StoreError::invalid(
            "password",
            "invalid_value",
            format!("a password needs at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .expect("hashing does not panic")
    .map_err(|e| StoreError::invalid("password", "invalid_value", e.to_string()))
}

pub(crate) async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::PasswordVerifier;
        use argon2::password_hash::phc::PasswordHash;
        PasswordHash::new(&hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}
