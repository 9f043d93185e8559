//! Institutions, users and their roles, API tokens and UI sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ferry_core::tenancy::{Role, validate_slug, validate_time_zone};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::{get_opt_ts, get_ts, now};
use crate::{Result, Store, StoreError};

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
    /// When the token last authenticated a request; `None` if never. Nothing records a use
    /// yet, so it is always `None`.
    pub last_used_at: Option<Timestamp>,
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
        let row = sqlx::query("INSERT INTO institutions (slug, name, time_zone, created_at) VALUES ($1, $2, $3, $4) RETURNING id, slug, name, time_zone, created_at")
            .bind(slug)
            .bind(name)
            .bind(tz)
            .bind(now())
            .fetch_one(&self.write)
            .await
            .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict(format!("an institution with slug {slug:?} exists")) } else { e.into() })?;
        Ok(institution_from(&row)?)
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
        let row = sqlx::query("INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id AS user_id, email, created_at AS user_created_at")
            .bind(&email)
            .bind(hash)
            .bind(now())
            .fetch_one(&self.write)
            .await
            .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict(format!("a user with email {email} exists")) } else { e.into() })?;
        Ok(user_from(&row)?)
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
        crate::util::found(
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(user_id)
                .execute(&self.write)
                .await?,
        )
    }

    /// Gives a user a role in an institution (replacing any role there).
    pub async fn grant_role(&self, user_id: i64, institution_id: i64, role: Role) -> Result<()> {
        sqlx::query("INSERT INTO memberships (user_id, institution_id, role) VALUES ($1, $2, $3) ON CONFLICT (user_id, institution_id) DO UPDATE SET role = excluded.role")
            .bind(user_id)
            .bind(institution_id)
            .bind(role.as_str())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The institutions a user belongs to, by name.
    pub async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sqlx::query(&*format!("SELECT {INSTITUTION_COLS}, m.role FROM memberships m JOIN institutions i ON i.id = m.institution_id WHERE m.user_id = $1 ORDER BY i.name").leak())
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

    /// Creates an API token; returns the record and the secret, which is not stored and cannot be shown again.
    pub async fn create_api_token(
        &self,
        institution_id: i64,
        role: Role,
        name: &str,
    ) -> Result<(ApiToken, String)> {
        let secret = format!("{TOKEN_PREFIX}{}", random_token());
        let row = sqlx::query("INSERT INTO api_tokens (institution_id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id, institution_id, name, role, created_at, last_used_at")
            .bind(institution_id)
            .bind(name)
            .bind(role.as_str())
            .bind(hash_secret(&secret))
            .bind(now())
            .fetch_one(&self.write)
            .await?;
        let token = ApiToken {
            id: row.try_get("id")?,
            institution_id: row.try_get("institution_id")?,
            name: row.try_get("name")?,
            role: role_from(&row)?,
            created_at: get_ts(&row, "created_at")?,
            last_used_at: get_opt_ts(&row, "last_used_at")?,
        };
        Ok((token, secret))
    }

    /// Resolves a bearer token to its institution and role.
    pub async fn authenticate_token(&self, secret: &str) -> Result<Option<Principal>> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 100 {
            return Ok(None);
        }
        let row = sqlx::query(&*format!("SELECT {INSTITUTION_COLS}, t.role, t.id AS token_id FROM api_tokens t JOIN institutions i ON i.id = t.institution_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL").leak())
            .bind(hash_secret(secret))
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token_id: i64 = row.try_get("token_id")?;
        Ok(Some(Principal {
            institution: institution_from(&row)?,
            role: role_from(&row)?,
            user: None,
            token_id: Some(token_id),
        }))
    }

    /// Starts a UI session for a user in one of their institutions; returns the cookie value.
    pub async fn create_session(&self, user_id: i64, institution_id: i64) -> Result<String> {
        let id = random_token();
        let created = now();
        let expires = created + SESSION_HOURS * 3_600_000_000;
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(created)
            .execute(&self.write)
            .await?;
        sqlx::query("INSERT INTO sessions (id_hash, user_id, institution_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(hash_secret(&id))
            .bind(user_id)
            .bind(institution_id)
            .bind(random_token())
            .bind(created)
            .bind(expires)
            .execute(&self.write)
            .await?;
        Ok(id)
    }

    /// Resolves a session cookie; expired sessions and lost memberships resolve to `None`.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>> {
        if cookie.len() > 100 {
            return Ok(None);
        }
        let row = sqlx::query(
            &*format!(
                "SELECT {INSTITUTION_COLS}, m.role, s.csrf_token, s.expires_at, u.id AS user_id, u.email, u.created_at AS user_created_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 JOIN memberships m ON m.user_id = s.user_id AND m.institution_id = s.institution_id \
                 JOIN institutions i ON i.id = s.institution_id \
                 WHERE s.id_hash = $1 AND s.expires_at > $2"
            )
            .leak(),
        )
        .bind(hash_secret(cookie))
        .bind(now())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Session {
            principal: Principal {
                institution: institution_from(&row)?,
                role: role_from(&row)?,
                user: Some(user_from(&row)?),
                token_id: None,
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
