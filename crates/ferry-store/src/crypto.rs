//! Secrets at rest: envelope encryption with AES-256-GCM.
//!
//! Each secret gets its own random data key; the data key is encrypted ("wrapped") with the
//! master key and stored beside the ciphertext. The master key comes from `FERRY_MASTER_KEY`
//! or a key file (mode 0600) that Ferry creates in the data directory on first start.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::StoreError;

const FORMAT_V1: &[u8; 2] = b"F1";
const NONCE_LEN: usize = 12;
const WRAPPED_KEY_LEN: usize = 32 + 16;

/// A 256-bit master key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Parses a key given as base64 (44 characters) or hex (64 characters).
    pub fn parse(s: &str) -> Result<MasterKey, String> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            B64.decode(s).map_err(|_| {
                "the master key must be 32 bytes as base64 or 64 hex digits".to_string()
            })?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the master key must be exactly 32 bytes".to_string())?;
        Ok(MasterKey(key))
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        MasterKey(random_bytes())
    }

    /// A 32-byte key for another purpose (`purpose` names it, e.g. `"vault"`), derived from this
    /// one with HKDF-SHA256: one configured key serves every part of Ferry, and no part learns it.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"ferry master key derivation"), &self.0);
        let mut out = [0u8; 32];
        hk.expand(purpose.as_bytes(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// Base64 form, for writing the key file.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Reads `path`, or creates it with a new key and mode 0600 if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, String> {
        match std::fs::read_to_string(path) {
            Ok(s) => MasterKey::parse(&s).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts
                    .open(path)
                    .map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
                writeln!(f, "{}", key.to_base64())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
                Ok(key)
            }
            Err(e) => Err(format!("cannot read key file {}: {e}", path.display())),
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    b
}

/// Encrypts and decrypts secrets with a master key. `context` binds a ciphertext to where it
/// is stored (e.g. `integration:42`), so a ciphertext copied elsewhere does not decrypt.
#[derive(Clone, Debug)]
pub struct SecretBox {
    master: MasterKey,
}

impl SecretBox {
    /// A box that seals and opens under this master key.
    pub fn new(master: MasterKey) -> SecretBox {
        SecretBox { master }
    }

    /// Encrypts `plaintext` for `context` under a fresh data key, itself wrapped by the master key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let dek: [u8; 32] = random_bytes();
        let wrap_nonce: [u8; NONCE_LEN] = random_bytes();
        let data_nonce: [u8; NONCE_LEN] = random_bytes();
        let kek = Aes256Gcm::new((&self.master.0).into());
        let wrapped = kek
            .encrypt(
                &Nonce::from(wrap_nonce),
                Payload {
                    msg: &dek,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let cipher = Aes256Gcm::new((&dek).into());
        let ct = cipher
            .encrypt(
                &Nonce::from(data_nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory data");
        let mut out = Vec::with_capacity(2 + 2 * NONCE_LEN + WRAPPED_KEY_LEN + ct.len());
        out.extend_from_slice(FORMAT_V1);
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&data_nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`SecretBox::seal`] made for the same `context`; `StoreError::Crypto` when the
    /// format is unknown, or the key or context differ.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let bad = |why: &str| StoreError::Crypto(why.to_string());
        let nonce = |b: &[u8]| Nonce::try_from(b).map_err(|_| bad("bad nonce"));
        let rest = sealed
            .strip_prefix(FORMAT_V1.as_slice())
            .ok_or_else(|| bad("unknown format"))?;
        if rest.len() < 2 * NONCE_LEN + WRAPPED_KEY_LEN + 16 {
            return Err(bad("truncated"));
        }
        let (wrap_nonce, rest) = rest.split_at(NONCE_LEN);
        let (wrapped, rest) = rest.split_at(WRAPPED_KEY_LEN);
        let (data_nonce, ct) = rest.split_at(NONCE_LEN);
        let kek = Aes256Gcm::new((&self.master.0).into());
        let dek = kek
            .decrypt(
                &nonce(wrap_nonce)?,
                Payload {
                    msg: wrapped,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad("wrong master key or context"))?;
        let dek: [u8; 32] = dek.try_into().map_err(|_| bad("bad data key"))?;
        let cipher = Aes256Gcm::new((&dek).into());
        cipher
            .decrypt(
                &nonce(data_nonce)?,
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad("ciphertext was altered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let b = SecretBox::new(MasterKey::generate());
        let sealed = b.seal("integration:1", b"{\"password\":\"hunter2\"}");
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "plaintext must not appear in the ciphertext"
        );
        assert_eq!(
            b.open("integration:1", &sealed).unwrap(),
            b"{\"password\":\"hunter2\"}"
        );
        assert!(
            b.open("integration:2", &sealed).is_err(),
            "context is bound"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(b.open("integration:1", &altered).is_err());
        let other = SecretBox::new(MasterKey::generate());
        assert!(other.open("integration:1", &sealed).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(k1.0, k2.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(format!("{k1:?}"), "MasterKey(***)");
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_master() {
        let k = MasterKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(k.derive_key("vault"), k.derive_key("vault"));
        assert_ne!(k.derive_key("vault"), k.derive_key("other"));
        assert_ne!(k.derive_key("vault"), k.0);
        assert_ne!(
            k.derive_key("vault"),
            MasterKey::generate().derive_key("vault")
        );
    }
}
