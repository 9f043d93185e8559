//! `ferry institution`, `ferry user` and `ferry token`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use ferry_core::tenancy::Role;

use super::institution;
use crate::settings::Settings;

pub async fn institution_create(
    settings: &Settings,
    slug: &str,
    name: &str,
    time_zone: Option<&str>,
) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let inst = store
        .create_institution(slug, name, time_zone)
        .await
        .context("cannot create the institution")?;
    store.close().await;
    println!(
        "created institution id={} slug={} name={:?} time_zone={}",
        inst.id, inst.slug, inst.name, inst.time_zone
    );
    Ok(())
}

pub async fn institution_list(settings: &Settings) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let all = store.institutions().await?;
    if all.is_empty() {
        println!("no institutions yet; create one with `ferry institution create`");
    } else {
        println!(
            "{:>5}  {:<24}  {:>9}  {:<20}  NAME",
            "ID", "SLUG", "CONTACTS", "TIME ZONE"
        );
        for i in all {
            let contacts = store.count_contacts(i.id).await?;
            println!(
                "{:>5}  {:<24}  {:>9}  {:<20}  {}",
                i.id, i.slug, contacts, i.time_zone, i.name
            );
        }
    }
    store.close().await;
    Ok(())
}

pub async fn user_create(settings: &Settings, slug: &str, email: &str, role: Role) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let inst = institution(&store, slug).await?;
    let existing = store
        .user_by_email(email)
        .await
        .context("cannot create the user")?;
    if let Some(user) = existing {
        store.grant_role(user.id, inst.id, role).await?;
        store.close().await;
        println!(
            "user {} (id {}) already exists: granted role {role} in {} (password unchanged)",
            user.email, user.id, inst.slug
        );
        return Ok(());
    }
    let (password, generated) = match password_from_stdin()? {
        Some(p) => (p, false),
        None => (generate_password(), true),
    };
    let user = store
        .create_user(email, &password)
        .await
        .context("cannot create the user")?;
    store.grant_role(user.id, inst.id, role).await?;
    store.close().await;
    println!(
        "created user {} (id {}) with role {role} in {}",
        user.email, user.id, inst.slug
    );
    if generated {
        println!("password (shown once, store it now): {password}");
    }
    Ok(())
}

/// The first line of stdin when stdin is not a terminal; `None` for a terminal or an empty
/// stdin (then a password is generated).
fn password_from_stdin() -> Result<Option<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut line = String::new();
    let n = stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    if n == 0 {
        return Ok(None);
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!(
            "the first line of stdin is empty; give the password there, or run from a terminal to generate one"
        );
    }
    Ok(Some(password.to_string()))
}

/// A random password of 24 characters from an alphabet without look-alikes (about 140 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).expect("the operating system's random source works");
        for b in buf {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b) < limit && out.len() < 24 {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

pub async fn token_create(
    settings: &Settings,
    slug: &str,
    role: Role,
    name: &str,
    expires_in_days: Option<u16>,
) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let inst = institution(&store, slug).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("--name must be 1-100 characters");
    }
    let expires_at = expires_in_days
        .map(|d| jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * i64::from(d)));
    let (token, secret) = store
        .create_api_token_with(inst.id, role, name, expires_at)
        .await
        .context("cannot create the token")?;
    store.close().await;
    let expiry = token
        .expires_at
        .map_or_else(|| "never".to_string(), |t| t.to_string());
    eprintln!(
        "created API token id={} name={:?} role={role} expires={expiry} in {}; it is shown once, store it now",
        token.id, token.name, inst.slug
    );
    println!("{secret}");
    Ok(())
}

pub async fn token_list(settings: &Settings, slug: &str) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let inst = institution(&store, slug).await?;
    let tokens = store.api_tokens(inst.id).await?;
    store.close().await;
    if tokens.is_empty() {
        println!("no API tokens yet; create one with `ferry token create`");
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let when = |t: Option<jiff::Timestamp>, none: &str| {
        t.map_or_else(
            || none.to_string(),
            |t| t.strftime("%Y-%m-%dT%H:%MZ").to_string(),
        )
    };
    println!(
        "{:>5}  {:<7}  {:<8}  {:<17}  {:<17}  {:<17}  NAME",
        "ID", "ROLE", "STATUS", "CREATED", "LAST USED", "EXPIRES"
    );
    for t in tokens {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.is_active(now) {
            "active"
        } else {
            "expired"
        };
        println!(
            "{:>5}  {:<7}  {:<8}  {:<17}  {:<17}  {:<17}  {}",
            t.id,
            t.role.as_str(),
            status,
            when(Some(t.created_at), ""),
            when(t.last_used_at, "never"),
            when(t.expires_at, "never"),
            t.name
        );
    }
    Ok(())
}

pub async fn token_revoke(settings: &Settings, slug: &str, id: i64) -> Result<()> {
    let store = settings.connect_and_migrate().await?;
    let inst = institution(&store, slug).await?;
    let result = store.revoke_api_token(inst.id, id).await;
    store.close().await;
    match result {
        Ok(t) => {
            println!(
                "revoked API token id={} name={:?} in {}",
                t.id, t.name, inst.slug
            );
            Ok(())
        }
        Err(ferry_store::StoreError::NotFound) => {
            bail!(
                "no API token with id {id} in {slug}; see `ferry token list --institution {slug}`"
            )
        }
        Err(e) => Err(e).context("cannot revoke the token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.chars().count(), 24);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
