//! Files encrypted at rest, for uploads that land on Ferry's SFTP server.
//!
//! # Format
//!
//! A stored file is a 36-byte header — the magic `FVT1` and a random 32-byte salt — followed by
//! chunks of at most 64 KiB of plaintext, each sealed with AES-256-GCM (16-byte tag). The key of
//! a file is HKDF-SHA256 of the vault key with the file's salt, so no two files share a key and
//! the key is never stored. A chunk's nonce is its index; its associated data is the header, the
//! index and a last-chunk flag, so a chunk moved within a file or to another file, a header swapped
//! between files, and a file cut short (even at a chunk boundary) all fail to decrypt. Every file,
//! even an empty one, ends with exactly one chunk flagged last.
//!
//! # Writing and reading
//!
//! [`VaultWriter`] takes writes at offsets (SFTP clients send several WRITEs at once and they may
//! arrive out of order): writes ahead of the contiguous end are held in memory up to a bounded
//! window, so plaintext never touches disk. [`VaultReader`] decrypts ranges on the fly and
//! reports the plaintext size. Storage goes through [`object_store`]: a local folder by default
//! ([`Vault::local`]), an S3-compatible bucket shared by several nodes ([`Vault::from_url`] with
//! `s3://bucket/prefix`), any other [`ObjectStore`] through [`Vault::new`].

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, PoisonError};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Bytes of authentication tag per chunk.
pub const TAG_SIZE: usize = 16;
/// Bytes of the file header (magic and salt).
pub const HEADER_SIZE: usize = MAGIC.len() + SALT_SIZE;
/// The default reorder window of a writer: how far ahead of the contiguous end a write may reach.
pub const DEFAULT_WINDOW: usize = 8 * 1024 * 1024;

const MAGIC: &[u8; 4] = b"FVT1";
const SALT_SIZE: usize = 32;
const SEALED_CHUNK: u64 = (CHUNK_SIZE + TAG_SIZE) as u64;
const HKDF_INFO: &[u8] = b"ferry-vault file key v1";
/// Parts handed to the object store (S3 requires at least 5 MiB for all but the last).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight per writer.
const PARTS_IN_FLIGHT: usize = 2;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The object store failed (missing object, I/O, network).
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    /// The object is not a vault file, was altered or cut short, or the key is wrong.
    /// Nothing of it is returned.
    #[error("the stored file does not decrypt: {0}")]
    Corrupt(&'static str),
    /// A write reaches further ahead of the contiguous end than the reorder window allows.
    #[error(
        "write at offset {offset} is more than {window} bytes ahead of the contiguous end ({contiguous})"
    )]
    Window {
        /// The write's offset.
        offset: u64,
        /// The contiguous end when it came.
        contiguous: u64,
        /// The window.
        window: usize,
    },
    /// A write overlaps bytes already written (files are written once, front to back).
    #[error("write at offset {offset} overlaps bytes already written")]
    Overlap {
        /// The write's offset.
        offset: u64,
    },
    /// The writer was finished while bytes before some held write never came.
    #[error("the file has a gap at offset {0}")]
    Gap(u64),
    /// The storage URL is not one Ferry knows.
    #[error("storage URL: {0}")]
    Url(String),
    /// The location is not a valid object path.
    #[error("invalid location {0:?}")]
    Location(String),
}

/// The vault's result.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

/// The 256-bit key every file key derives from. Its `Debug` never shows it; it is wiped on drop.
#[derive(Clone)]
pub struct VaultKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(***)")
    }
}

impl VaultKey {
    /// A key from 32 bytes (for Ferry: derived from the master key).
    pub fn from_bytes(bytes: [u8; 32]) -> VaultKey {
        VaultKey(Zeroizing::new(bytes))
    }

    /// A new random key.
    pub fn generate() -> VaultKey {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the operating system's random source works");
        VaultKey::from_bytes(b)
    }

    fn file_cipher(&self, salt: &[u8]) -> Aes256Gcm {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), self.0.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(HKDF_INFO, okm.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Aes256Gcm::new((&*okm).into())
    }
}

fn nonce(index: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    Nonce::from(n)
}

fn aad(header: &[u8; HEADER_SIZE], index: u64, last: bool) -> [u8; HEADER_SIZE + 9] {
    let mut a = [0u8; HEADER_SIZE + 9];
    a[..HEADER_SIZE].copy_from_slice(header);
    a[HEADER_SIZE..HEADER_SIZE + 8].copy_from_slice(&index.to_be_bytes());
    a[HEADER_SIZE + 8] = u8::from(last);
    a
}

/// The stored size of a file of `plaintext` bytes.
pub fn stored_size(plaintext: u64) -> u64 {
    let chunks = plaintext.div_ceil(CHUNK_SIZE as u64).max(1);
    HEADER_SIZE as u64 + chunks * TAG_SIZE as u64 + plaintext
}

/// The plaintext size and chunk count of a stored file of `stored` bytes, if the size is possible.
fn layout(stored: u64) -> Option<(u64, u64)> {
    let body = stored.checked_sub(HEADER_SIZE as u64)?;
    let chunks = body.div_ceil(SEALED_CHUNK);
    let last = body.checked_sub((chunks.checked_sub(1)?) * SEALED_CHUNK)?;
    if last < TAG_SIZE as u64 {
        return None;
    }
    Some((body - chunks * TAG_SIZE as u64, chunks))
}

/// Encrypted files in an object store.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn ObjectStore>,
    key: VaultKey,
    window: usize,
    /// Where the files are, for messages (a folder, `s3://bucket/prefix`).
    place: String,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("store", &self.place)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

fn location(s: &str) -> Result<Path> {
    let p = Path::parse(s).map_err(|_| VaultError::Location(s.to_string()))?;
    if p.as_ref().is_empty() {
        return Err(VaultError::Location(s.to_string()));
    }
    Ok(p)
}

impl Vault {
    /// A vault over any object store.
    pub fn new(store: Arc<dyn ObjectStore>, key: VaultKey) -> Vault {
        Vault {
            place: store.to_string(),
            store,
            key,
            window: DEFAULT_WINDOW,
        }
    }

    /// A vault in a local folder, created if missing.
    pub fn local(dir: &FsPath, key: VaultKey) -> Result<Vault> {
        std::fs::create_dir_all(dir).map_err(|e| {
            VaultError::Store(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Vault::new(Arc::new(fs), key).placed(dir.display().to_string()))
    }

    /// A vault at a storage URL: `s3://BUCKET[/PREFIX]` for an S3-compatible bucket (credentials,
    /// region and endpoint from the usual `AWS_*` variables: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for a server that is not AWS,
    /// `AWS_ALLOW_HTTP=true` for one without TLS), `file:///DIR` or a plain path for a local folder.
    pub fn from_url(url: &str, key: VaultKey) -> Result<Vault> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(VaultError::Url(format!(
                    "{url:?} names no bucket (expected s3://BUCKET or s3://BUCKET/PREFIX)"
                )));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                return Ok(Vault::new(Arc::new(s3), key).placed(format!("s3://{bucket}")));
            }
            let path = Path::parse(prefix).map_err(|_| VaultError::Location(prefix.to_string()))?;
            return Ok(Vault::new(
                Arc::new(object_store::prefix::PrefixStore::new(s3, path)),
                key,
            )
            .placed(format!("s3://{bucket}/{prefix}")));
        }
        if let Some(dir) = url.strip_prefix("file://") {
            return Vault::local(FsPath::new(dir), key);
        }
        if url.contains("://") {
            return Err(VaultError::Url(format!(
                "{url:?} is not a storage URL Ferry knows (use s3://BUCKET[/PREFIX], file:///DIR or a path)"
            )));
        }
        Vault::local(FsPath::new(url), key)
    }

    /// Where the files are kept, for messages: a folder, or `s3://bucket/prefix`.
    pub fn describe(&self) -> &str {
        &self.place
    }

    fn placed(mut self, place: String) -> Vault {
        self.place = place;
        self
    }

    /// Sets how far ahead of the contiguous end a writer accepts writes (memory held per upload).
    pub fn with_window(mut self, bytes: usize) -> Vault {
        self.window = bytes;
        self
    }

    /// The reorder window of new writers.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Starts writing a new file at `location` (slash-separated, no `..`). The object appears
    /// only when [`VaultWriter::finish`] succeeds; it replaces an object of that name.
    pub async fn create(&self, location_str: &str) -> Result<VaultWriter> {
        let loc = location(location_str)?;
        let mut salt = [0u8; SALT_SIZE];
        getrandom::fill(&mut salt).expect("the operating system's random source works");
        let mut header = [0u8; HEADER_SIZE];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()..].copy_from_slice(&salt);
        let upload = self.store.put_multipart(&loc).await?;
        let mut out = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        out.write(&header);
        Ok(VaultWriter {
            out: Mutex::new(Some(out)),
            cipher: self.key.file_cipher(&salt),
            header,
            chunk: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE)),
            index: 0,
            contiguous: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            window: self.window,
            hasher: Sha256::new(),
        })
    }

    /// Opens a stored file for reading; checks its header and size.
    pub async fn open(&self, location_str: &str) -> Result<VaultReader> {
        let loc = location(location_str)?;
        let meta = self.store.head(&loc).await?;
        let (plaintext, chunks) = layout(meta.size).ok_or(VaultError::Corrupt("truncated"))?;
        let head = self.store.get_range(&loc, 0..HEADER_SIZE as u64).await?;
        if head.len() != HEADER_SIZE || &head[..MAGIC.len()] != MAGIC {
            return Err(VaultError::Corrupt("not a vault file"));
        }
        let mut header = [0u8; HEADER_SIZE];
        header.copy_from_slice(&head);
        Ok(VaultReader {
            store: self.store.clone(),
            location: loc,
            cipher: self.key.file_cipher(&header[MAGIC.len()..]),
            header,
            stored: meta.size,
            chunks,
            plaintext,
        })
    }

    /// The whole plaintext of a stored file (for small files and tests).
    pub async fn read_all(&self, location_str: &str) -> Result<Vec<u8>> {
        let r = self.open(location_str).await?;
        r.read_at(0, usize::try_from(r.len()).unwrap_or(usize::MAX))
            .await
    }

    /// Deletes a stored file (no error if it is already gone).
    pub async fn delete(&self, location_str: &str) -> Result<()> {
        match self.store.delete(&location(location_str)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a stored file to a new location (the name is not bound into the ciphertext).
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.store.rename(&location(from)?, &location(to)?).await?;
        Ok(())
    }
}

/// What a finished write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes of plaintext.
    pub plaintext_size: u64,
    /// Bytes stored (header, chunks and tags).
    pub stored_size: u64,
    /// SHA-256 of the plaintext, lowercase hex: tells the same content uploaded twice.
    pub sha256: String,
}

/// A file being written; see [`Vault::create`]. Dropping it without [`VaultWriter::finish`]
/// leaves no object (the store's staged parts are cleaned up or abandoned).
pub struct VaultWriter {
    /// The upload in progress. Only reached through `&mut self` (`Mutex::get_mut`, never locked):
    /// the mutex only makes the writer `Sync`, as object_store's uploads are not, so that
    /// handlers borrowed across awaits (russh-sftp's) stay `Send`.
    out: Mutex<Option<WriteMultipart>>,
    cipher: Aes256Gcm,
    header: [u8; HEADER_SIZE],
    chunk: Zeroizing<Vec<u8>>,
    index: u64,
    contiguous: u64,
    pending: BTreeMap<u64, Zeroizing<Vec<u8>>>,
    pending_bytes: usize,
    window: usize,
    hasher: Sha256,
}

impl fmt::Debug for VaultWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultWriter")
            .field("contiguous", &self.contiguous)
            .field("pending_bytes", &self.pending_bytes)
            .finish_non_exhaustive()
    }
}

impl VaultWriter {
    /// Bytes received front to back without a gap.
    pub fn len(&self) -> u64 {
        self.contiguous
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.contiguous == 0 && self.pending.is_empty()
    }

    /// Bytes held in memory ahead of a gap.
    pub fn held(&self) -> usize {
        self.pending_bytes
    }

    /// The end of the furthest write so far (the size a client would see).
    pub fn end(&self) -> u64 {
        self.pending
            .last_key_value()
            .map_or(self.contiguous, |(o, d)| o + d.len() as u64)
    }

    /// Writes `data` at `offset`. Writes ahead of the contiguous end are held in memory, up to the
    /// window; bytes are never written twice.
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(VaultError::Overlap { offset })?;
        if offset < self.contiguous {
            return Err(VaultError::Overlap { offset });
        }
        // Held writes must not overlap the new one.
        if let Some((&o, d)) = self.pending.range(..end).next_back()
            && o + d.len() as u64 > offset
        {
            return Err(VaultError::Overlap { offset });
        }
        if offset > self.contiguous {
            if end - self.contiguous > self.window as u64 {
                return Err(VaultError::Window {
                    offset,
                    contiguous: self.contiguous,
                    window: self.window,
                });
            }
            self.pending_bytes += data.len();
            self.pending.insert(offset, Zeroizing::new(data.to_vec()));
            return Ok(());
        }
        self.append(data);
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.contiguous {
                break;
            }
            let held = entry.remove();
            self.pending_bytes -= held.len();
            self.append(&held);
        }
        self.out_mut().wait_for_capacity(PARTS_IN_FLIGHT).await?;
        Ok(())
    }

    /// Appends at the contiguous end.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_at(self.contiguous, data).await
    }

    fn append(&mut self, mut data: &[u8]) {
        self.hasher.update(data);
        self.contiguous += data.len() as u64;
        while !data.is_empty() {
            if self.chunk.len() == CHUNK_SIZE {
                // More data follows, so the full chunk is not the last one.
                self.seal(false);
            }
            let n = (CHUNK_SIZE - self.chunk.len()).min(data.len());
            self.chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
    }

    fn seal(&mut self, last: bool) {
        let aad = aad(&self.header, self.index, last);
        let sealed = self
            .cipher
            .encrypt(
                &nonce(self.index),
                Payload {
                    msg: &self.chunk,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a 64 KiB chunk cannot fail");
        self.chunk.clear();
        self.index += 1;
        self.out_mut().put(Bytes::from(sealed));
    }

    /// Seals the last chunk and stores the file. Fails with [`VaultError::Gap`] (and stores
    /// nothing) if some held write still waits for bytes before it.
    pub async fn finish(mut self) -> Result<Written> {
        if !self.pending.is_empty() {
            let gap = self.contiguous;
            let _ = self.abort_inner().await;
            return Err(VaultError::Gap(gap));
        }
        self.seal(true);
        let out = self.take_out().expect("writer is open");
        out.finish().await?;
        let sha = self.hasher.clone().finalize();
        Ok(Written {
            plaintext_size: self.contiguous,
            stored_size: stored_size(self.contiguous),
            sha256: sha.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    fn out_mut(&mut self) -> &mut WriteMultipart {
        self.out
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .expect("writer is open")
    }

    fn take_out(&mut self) -> Option<WriteMultipart> {
        self.out
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    async fn abort_inner(&mut self) -> Result<()> {
        if let Some(out) = self.take_out() {
            out.abort().await?;
        }
        Ok(())
    }

    /// Gives the file up: nothing is stored.
    pub async fn abort(mut self) -> Result<()> {
        self.abort_inner().await
    }
}

/// A stored file open for reading; see [`Vault::open`].
#[derive(Clone)]
pub struct VaultReader {
    store: Arc<dyn ObjectStore>,
    location: Path,
    cipher: Aes256Gcm,
    header: [u8; HEADER_SIZE],
    stored: u64,
    chunks: u64,
    plaintext: u64,
}

impl fmt::Debug for VaultReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultReader")
            .field("location", &self.location.as_ref())
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl VaultReader {
    /// The plaintext size.
    pub fn len(&self) -> u64 {
        self.plaintext
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.plaintext == 0
    }

    /// Up to `len` bytes of plaintext from `offset` (fewer at the end, none past it). Every chunk
    /// touched is authenticated; reading the end also proves the file was not cut short.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset >= self.plaintext || len == 0 {
            if self.plaintext == 0 && offset == 0 {
                // An empty file is one empty last chunk: check it.
                self.decrypt_range(0, 0).await?;
            }
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64).min(self.plaintext);
        let first = offset / CHUNK_SIZE as u64;
        let last = (end - 1) / CHUNK_SIZE as u64;
        let plain = self.decrypt_range(first, last).await?;
        let skip = (offset - first * CHUNK_SIZE as u64) as usize;
        let take = (end - offset) as usize;
        Ok(plain[skip..skip + take].to_vec())
    }

    async fn decrypt_range(&self, first: u64, last: u64) -> Result<Zeroizing<Vec<u8>>> {
        let start = HEADER_SIZE as u64 + first * SEALED_CHUNK;
        let stop = (HEADER_SIZE as u64 + (last + 1) * SEALED_CHUNK).min(self.stored);
        let sealed = self.store.get_range(&self.location, start..stop).await?;
        if sealed.len() as u64 != stop - start {
            return Err(VaultError::Corrupt("truncated"));
        }
        let mut plain = Zeroizing::new(Vec::with_capacity(sealed.len()));
        for (i, piece) in sealed.chunks(SEALED_CHUNK as usize).enumerate() {
            let index = first + i as u64;
            let is_last = index + 1 == self.chunks;
            let aad = aad(&self.header, index, is_last);
            let p = self
                .cipher
                .decrypt(
                    &nonce(index),
                    Payload {
                        msg: piece,
                        aad: &aad,
                    },
                )
                .map_err(|_| VaultError::Corrupt("a chunk failed authentication"))?;
            plain.extend_from_slice(&p);
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_stored_size() {
        for n in [
            0u64,
            1,
            CHUNK_SIZE as u64 - 1,
            CHUNK_SIZE as u64,
            CHUNK_SIZE as u64 + 1,
            3 * CHUNK_SIZE as u64,
            10_000_000,
        ] {
            let (p, chunks) = layout(stored_size(n)).unwrap();
            assert_eq!(p, n);
            assert_eq!(chunks, n.div_ceil(CHUNK_SIZE as u64).max(1));
        }
        assert!(layout(HEADER_SIZE as u64).is_none());
        assert!(layout(HEADER_SIZE as u64 + 15).is_none());
        assert!(layout(HEADER_SIZE as u64 + SEALED_CHUNK + 3).is_none());
    }
}

/// Test support: the S3-compatible server of the S3 tests (`moto[server]` in CI).
#[cfg(feature = "testing")]
pub mod testing {
    use std::sync::Arc;

    use object_store::ObjectStore;
    use object_store::path::Path;

    /// A storage URL under a fresh prefix of the bucket `FERRY_TEST_S3_URL` names
    /// (`s3://BUCKET`; endpoint and credentials from the `AWS_*` variables), or `None` when the
    /// variable is not set. In CI (`CI` set) a missing variable panics, so the S3 path is never
    /// skipped there without a failure.
    pub fn s3_url() -> Option<String> {
        match std::env::var("FERRY_TEST_S3_URL") {
            Ok(u) if !u.trim().is_empty() => {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).expect("random source");
                let tag: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Some(format!("{}/test-{tag}", u.trim().trim_end_matches('/')))
            }
            _ if std::env::var_os("CI").is_some() => {
                panic!(
                    "CI must set FERRY_TEST_S3_URL (and AWS_ENDPOINT…): .ci/run starts moto_server"
                )
            }
            _ => {
                eprintln!("FERRY_TEST_S3_URL is not set: the S3 test does not run here");
                None
            }
        }
    }

    /// The bucket under `url` (`s3://BUCKET/PREFIX`) as a raw object store, and the prefix: to
    /// look at (and tamper with) what a vault wrote.
    pub fn raw_store(url: &str) -> (Arc<dyn ObjectStore>, Path) {
        let rest = url.strip_prefix("s3://").expect("an s3:// URL");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .expect("the test bucket's settings");
        (Arc::new(s3), Path::from(prefix))
    }
}
