//! Private keys: parse, decrypt, and classify what went wrong.

use russh::keys::{Algorithm, HashAlg, PrivateKey};

use crate::SftpError;

/// Parses a private key given as text, decrypting it with `passphrase` if it is encrypted.
pub(crate) fn load_private_key(
    text: &str,
    passphrase: Option<&str>,
) -> Result<PrivateKey, SftpError> {
    // Keys pasted into a form come with stray spaces and CRLF line ends.
    let text: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        return Err(SftpError::KeyUnreadable {
            reason: "the private key is empty".into(),
        });
    }
    if text.contains("BEGIN SSH2 ENCRYPTED PRIVATE KEY") || text.contains("BEGIN DSA PRIVATE KEY") {
        return Err(SftpError::UnsupportedKeyType {
            detail: "this key format (SSH2/DSA)".into(),
        });
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        // Legacy OpenSSL PEM encryption: russh reads only some of it (not EC keys), and a wrong
        // passphrase cannot be told apart from a corrupt key.
        return Err(SftpError::UnsupportedKeyType {
            detail: "legacy encrypted PEM (\"Proc-Type: 4,ENCRYPTED\"); convert it with \
                     `ssh-keygen -p -f KEYFILE`, which writes the OpenSSH format"
                .into(),
        });
    }
    if text.starts_with("ssh-") || text.starts_with("ecdsa-") {
        return Err(SftpError::KeyUnreadable {
            reason: "this is a public key; the private key is needed".into(),
        });
    }
    if !text.contains("-----BEGIN ") && !text.starts_with("PuTTY-User-Key-File-") {
        return Err(SftpError::KeyUnreadable {
            reason: "this is not a PEM private key (no \"-----BEGIN … PRIVATE KEY-----\" line)"
                .into(),
        });
    }

    let encrypted = if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        match PrivateKey::from_openssh(&text) {
            Ok(k) => k.is_encrypted(),
            Err(e) => return Err(classify_parse_error(&e.to_string())),
        }
    } else {
        text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.starts_with("PuTTY-User-Key-File-") && !text.contains("Encryption: none")
    };
    let passphrase = match (encrypted, passphrase) {
        (true, None) => return Err(SftpError::KeyPassphraseRequired),
        (true, Some(p)) => Some(p),
        // A passphrase for an unencrypted key is not an error: there is nothing to decrypt.
        (false, _) => None,
    };

    let key = russh::keys::decode_secret_key(&text, passphrase).map_err(|e| {
        use russh::keys::Error as E;
        match e {
            E::UnsupportedKeyType {
                key_type_string, ..
            } => SftpError::UnsupportedKeyType {
                detail: format!("key type {key_type_string}"),
            },
            E::UnknownAlgorithm(oid) => SftpError::UnsupportedKeyType {
                detail: format!("algorithm OID {oid}"),
            },
            _ if encrypted => SftpError::WrongPassphrase,
            other => classify_parse_error(&other.to_string()),
        }
    })?;

    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Rsa { .. } | Algorithm::Ecdsa { .. } => Ok(key),
        other => Err(SftpError::UnsupportedKeyType {
            detail: format!("key type {}", other.as_str()),
        }),
    }
}

/// Checks that `text` is a private key Ferry can log in with, decrypting it with `passphrase`
/// as a connection would, without connecting (so that a bad key is refused when it is saved).
pub fn check_private_key(text: &str, passphrase: Option<&str>) -> Result<(), SftpError> {
    load_private_key(text, passphrase).map(|_| ())
}

fn classify_parse_error(message: &str) -> SftpError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("algorithm") && (lower.contains("unknown") || lower.contains("unsupported")) {
        SftpError::UnsupportedKeyType {
            detail: message.to_string(),
        }
    } else {
        SftpError::KeyUnreadable {
            reason: message.to_string(),
        }
    }
}

/// `SHA256:…` fingerprint of a key's public half, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Normalises a pinned fingerprint: accepts it with or without the `SHA256:` prefix and padding.
pub(crate) fn normalize_fingerprint(pinned: &str) -> String {
    let trimmed = pinned.trim();
    let body = trimmed.strip_prefix("SHA256:").unwrap_or(trimmed);
    format!("SHA256:{}", body.trim_end_matches('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_are_unreadable() {
        assert_eq!(
            load_private_key("", None).unwrap_err().code(),
            "sftp_key_unreadable"
        );
        assert_eq!(
            load_private_key("hello", None).unwrap_err().code(),
            "sftp_key_unreadable"
        );
        let garbled =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(
            load_private_key(garbled, None).unwrap_err().code(),
            "sftp_key_unreadable"
        );
    }

    #[test]
    fn legacy_encrypted_pem_is_refused_with_advice() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----";
        let err = load_private_key(pem, Some("x")).unwrap_err();
        assert_eq!(err.code(), "sftp_key_unsupported");
        assert!(err.to_string().contains("ssh-keygen -p"));
    }

    #[test]
    fn fingerprints_normalise() {
        assert_eq!(normalize_fingerprint(" SHA256:abc= "), "SHA256:abc");
        assert_eq!(normalize_fingerprint("abc"), "SHA256:abc");
    }
}
