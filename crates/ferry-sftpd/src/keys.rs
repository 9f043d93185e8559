//! Client keys of SFTP accounts: checking uploaded OpenSSH public keys, and generating key pairs
//! whose private half is shown once and never stored.

use ferry_store::NewSftpKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use secrecy::SecretString;

/// The longest public key line accepted.
const MAX_LINE: usize = 16 * 1024;
/// The smallest RSA key accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// Which key pair to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Ed25519 (the default).
    Ed25519,
    /// RSA with 4096 bits, for systems that take nothing else.
    Rsa4096,
}

/// A generated key pair.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The private key in OpenSSH format, to show once.
    pub private_key: SecretString,
    /// The public half, ready for the account.
    pub public: NewSftpKey,
}

/// Checks an OpenSSH public key line (`ssh-ed25519 AAAA… comment`): Ed25519, ECDSA or RSA of at
/// least 2048 bits. Returns it without its comment, with the comment apart.
pub fn parse_public_key(line: &str) -> Result<NewSftpKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("paste a public key in OpenSSH format (ssh-ed25519 AAAA…)".into());
    }
    if line.len() > MAX_LINE {
        return Err("the public key is too long".into());
    }
    if line.contains("PRIVATE KEY") {
        return Err("that is a private key: upload the public key (the .pub file)".into());
    }
    let mut key = PublicKey::from_openssh(line)
        .map_err(|e| format!("not an OpenSSH public key line: {e}"))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        Algorithm::Rsa { .. } => {
            let bits = key.key_data().rsa().map_or(0, |r| r.key_size());
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA keys need at least {MIN_RSA_BITS} bits (this one has {bits})"
                ));
            }
        }
        other => {
            return Err(format!(
                "{other} keys are not accepted: use Ed25519, ECDSA or RSA"
            ));
        }
    }
    let comment = key.comment().to_string();
    key.set_comment("");
    Ok(NewSftpKey {
        algorithm: key.algorithm().to_string(),
        public_key: key
            .to_openssh()
            .map_err(|e| format!("cannot encode the key: {e}"))?
            .trim()
            .to_string(),
        fingerprint: crate::fingerprint(&key),
        comment,
    })
}

/// Generates a key pair; the caller shows the private half once and keeps only the public.
pub fn generate_key(kind: KeyType, comment: &str) -> Result<GeneratedKey, String> {
    let mut rng = russh::keys::key::safe_rng();
    let mut key = match kind {
        KeyType::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
        KeyType::Rsa4096 => RsaKeypair::random(&mut rng, 4096)
            .and_then(|k| PrivateKey::new(KeypairData::from(k), "")),
    }
    .map_err(|e| format!("cannot generate a key: {e}"))?;
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let mut public = key.public_key().clone();
    public.set_comment("");
    Ok(GeneratedKey {
        private_key: SecretString::from(private.to_string()),
        public: NewSftpKey {
            algorithm: public.algorithm().to_string(),
            public_key: public
                .to_openssh()
                .map_err(|e| format!("cannot encode the key: {e}"))?,
            fingerprint: crate::fingerprint(&public),
            comment: comment.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_keys_parse_back_and_checks_refuse_bad_input() {
        let g = generate_key(KeyType::Ed25519, "ops@state.edu").unwrap();
        assert!(
            g.private_key
                .expose_secret()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        let back = parse_public_key(&format!("{} ops@state.edu", g.public.public_key)).unwrap();
        assert_eq!(back.fingerprint, g.public.fingerprint);
        assert_eq!(back.comment, "ops@state.edu");
        assert_eq!(back.algorithm, "ssh-ed25519");
        let private = PrivateKey::from_openssh(g.private_key.expose_secret()).unwrap();
        assert_eq!(
            crate::fingerprint(private.public_key()),
            g.public.fingerprint
        );
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAAnotbase64!",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            assert!(parse_public_key(bad).is_err(), "{bad:?}");
        }
    }
}
