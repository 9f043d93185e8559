//! Institutions, roles and slugs.

crate::string_enum! {
    /// What a user or token may do inside one institution.
    pub enum Role {
        /// Everything, including settings and integrations.
        Admin = "admin",
        /// Read contacts, messages, runs and logs; change nothing in settings.
        Viewer = "viewer",
    }
}

impl Role {
    /// Whether this role may do what `needed` requires.
    pub fn allows(self, needed: Role) -> bool {
        matches!(
            (self, needed),
            (Role::Admin, _) | (Role::Viewer, Role::Viewer)
        )
    }
}

/// The default time zone of a new institution.
pub const DEFAULT_TIME_ZONE: &str = "America/New_York";

/// Checks an institution slug: 2–63 characters of lower-case letters, digits and single hyphens.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    let ok_chars = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !(2..=63).contains(&slug.len())
        || !ok_chars
        || slug.starts_with('-')
        || slug.ends_with('-')
        || slug.contains("--")
    {
        return Err(format!(
            "{slug:?} is not a valid slug: use 2-63 lower-case letters, digits and single hyphens"
        ));
    }
    Ok(())
}

/// Checks that a time zone name is known (IANA names such as `America/Chicago`).
pub fn validate_time_zone(tz: &str) -> Result<(), String> {
    jiff::tz::TimeZone::get(tz).map(|_| ()).map_err(|_| {
        format!("{tz:?} is not a known time zone (use an IANA name such as America/Chicago)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Viewer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Admin));
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn slugs_and_zones() {
        assert!(validate_slug("demo-university").is_ok());
        for bad in ["D", "Demo", "a--b", "-a", "a_b", ""] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
        assert!(validate_time_zone("America/Chicago").is_ok());
        assert!(validate_time_zone("Mars/Olympus").is_err());
    }
}
