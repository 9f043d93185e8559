//! Email addresses.

use std::fmt;

/// An email address that passed Ferry's checks; the domain is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid email address")]
pub struct EmailError {
    /// The text as given.
    pub input: String,
}

impl Email {
    /// Accepts `local@domain.tld` with a dotted domain of letters, digits and hyphens, no
    /// spaces, at most 254 characters: what mail systems deliver to, not every RFC 5322 form.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let err = || EmailError {
            input: input.to_string(),
        };
        let s = input.trim();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(err)?;
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(err());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2
            || !labels.iter().all(label_ok)
            || labels.last().is_some_and(|tld| tld.len() < 2)
        {
            return Err(err());
        }
        Ok(Email(format!("{local}@{}", domain.to_lowercase())))
    }

    /// Wraps a value stored by Ferry, which was parsed before it was stored.
    pub fn from_trusted(s: String) -> Email {
        Email(s)
    }

    /// The address, with its domain lower-cased.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        assert_eq!(
            Email::parse(" Ana.Diaz+x@Example.EDU ").unwrap().as_str(),
            "Ana.Diaz+x@example.edu"
        );
        assert!(Email::parse("a@b.co").is_ok());
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.com",
            "a@@b.com",
            "a@b..com",
            "a@-b.com",
            "a@b.c",
            ".a@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
