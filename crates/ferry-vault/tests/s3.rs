//! The vault on an S3-compatible bucket (`moto_server` in CI, through `FERRY_TEST_S3_URL` and the
//! `AWS_*` variables): the multi-node storage path. Multipart uploads, ranged reads, no
//! plaintext in any object, tampering and wrong keys failing closed, rename and delete.

use bytes::Bytes;
use ferry_vault::testing::{raw_store, s3_url};
use ferry_vault::{CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, Vault, VaultError, VaultKey, stored_size};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

fn content(tag: &str, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(format!("{tag},{i}\n").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

fn corrupt(e: VaultError) -> bool {
    matches!(e, VaultError::Corrupt(_))
}

/// Every object under `prefix` with its bytes.
async fn objects(store: &dyn object_store::ObjectStore, prefix: &Path) -> Vec<(String, Bytes)> {
    let metas: Vec<_> = store.list(Some(prefix)).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location.to_string(), bytes));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_keeps_files_encrypted_and_reads_them_back() {
    let Some(url) = s3_url() else { return };
    let key = VaultKey::generate();
    let vault = Vault::from_url(&url, key.clone()).unwrap();
    assert_eq!(vault.describe(), url);
    let (raw, prefix) = raw_store(&url);

    // 12 MiB written out of order: several 5 MiB parts of a multipart upload.
    let canary = format!("CANARY-S3-{}", prefix.as_ref().rsplit('-').next().unwrap());
    let data = content(&canary, 12 * 1024 * 1024 + 123);
    let mut w = vault.create("uploads/big.csv").await.unwrap();
    let pieces: Vec<(usize, &[u8])> = data
        .chunks(32 * 1024)
        .enumerate()
        .map(|(i, p)| (i * 32 * 1024, p))
        .collect();
    for pair in pieces.chunks(2) {
        for (offset, piece) in pair.iter().rev() {
            w.write_at(*offset as u64, piece).await.unwrap();
        }
    }
    let written = w.finish().await.unwrap();
    assert_eq!(written.plaintext_size, data.len() as u64);
    let small = content("small", 1000);
    let mut w = vault.create("uploads/small.csv").await.unwrap();
    w.write(&small).await.unwrap();
    w.finish().await.unwrap();

    // What the bucket holds: ciphertext of the right sizes, no canary in any object.
    let stored = objects(raw.as_ref(), &prefix).await;
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(stored.len(), 2, "{names:?}");
    for (name, bytes) in &stored {
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "plaintext in {name}"
        );
        assert!(
            !bytes.windows(5).any(|w| w == b"small"),
            "plaintext in {name}"
        );
    }
    let big = stored
        .iter()
        .find(|(n, _)| n.ends_with("uploads/big.csv"))
        .unwrap();
    assert_eq!(big.1.len() as u64, stored_size(data.len() as u64));

    // Read back whole and by ranges, also by a second vault on the same URL (another node).
    assert_eq!(vault.read_all("uploads/big.csv").await.unwrap(), data);
    let other_node = Vault::from_url(&url, key).unwrap();
    let r = other_node.open("uploads/big.csv").await.unwrap();
    assert_eq!(r.len(), data.len() as u64);
    for (at, len) in [
        (0usize, 10usize),
        (CHUNK_SIZE - 3, 10),
        (5 * 1024 * 1024 + 7, 70_000),
    ] {
        assert_eq!(r.read_at(at as u64, len).await.unwrap(), data[at..at + len]);
    }
    assert_eq!(
        other_node.read_all("uploads/small.csv").await.unwrap(),
        small
    );

    // Rename and delete.
    vault
        .rename("uploads/small.csv", "done/small.csv")
        .await
        .unwrap();
    assert!(vault.open("uploads/small.csv").await.is_err());
    assert_eq!(vault.read_all("done/small.csv").await.unwrap(), small);
    vault.delete("done/small.csv").await.unwrap();
    vault.delete("done/small.csv").await.unwrap();
    assert!(vault.open("done/small.csv").await.is_err());
    vault.delete("uploads/big.csv").await.unwrap();
    assert!(objects(raw.as_ref(), &prefix).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_object_altered_or_read_with_another_key_fails_closed() {
    let Some(url) = s3_url() else { return };
    let vault = Vault::from_url(&url, VaultKey::generate()).unwrap();
    let (raw, prefix) = raw_store(&url);
    let data = content("tamper", 3 * CHUNK_SIZE + 10);
    let mut w = vault.create("good").await.unwrap();
    w.write(&data).await.unwrap();
    w.finish().await.unwrap();
    let good = raw
        .get(&prefix.clone().join("good"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();

    let put = |name: &'static str, bytes: Vec<u8>| {
        let raw = raw.clone();
        let loc = prefix.clone().join(name);
        async move { raw.put(&loc, bytes.into()).await.unwrap() }
    };
    let mut flipped = good.clone();
    flipped[HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 1] ^= 0x01;
    put("flipped", flipped).await;
    assert!(corrupt(vault.read_all("flipped").await.unwrap_err()));
    let boundary = HEADER_SIZE + 3 * (CHUNK_SIZE + TAG_SIZE);
    put("short", good[..boundary].to_vec()).await;
    assert!(corrupt(vault.read_all("short").await.unwrap_err()));

    let stranger = Vault::from_url(&url, VaultKey::generate()).unwrap();
    assert!(corrupt(stranger.read_all("good").await.unwrap_err()));
    assert_eq!(vault.read_all("good").await.unwrap(), data);
}

#[test]
fn storage_urls_are_checked() {
    let key = VaultKey::generate();
    for bad in ["s3://", "s3:///prefix", "gs://bucket", "ftp://host/dir"] {
        let e = Vault::from_url(bad, key.clone()).unwrap_err();
        assert!(matches!(e, VaultError::Url(_)), "{bad}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("v").display());
    let local = Vault::from_url(&url, key).unwrap();
    assert!(dir.path().join("v").is_dir(), "{}", local.describe());
}
