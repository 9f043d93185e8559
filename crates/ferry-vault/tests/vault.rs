//! The vault against a real local folder: round trips, the canary, tampering, out-of-order writes.

use std::path::Path;

use ferry_vault::{CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, Vault, VaultError, VaultKey, stored_size};

fn canary() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).unwrap();
    format!(
        "CANARY-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Plaintext of `len` bytes with the canary repeated through it.
fn content(canary: &str, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + canary.len());
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(canary.as_bytes());
        v.extend_from_slice(format!(",{i}\n").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// Every file under `dir` (recursively, not following links) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if ft.is_file()
            && entry.metadata().is_ok_and(|m| m.len() < 256 * 1024 * 1024)
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn round_trip_sizes_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::local(dir.path(), VaultKey::generate()).unwrap();
    for len in [
        0usize,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE + 77,
    ] {
        let data = content("x", len);
        let name = format!("f/{len}.bin");
        let mut w = vault.create(&name).await.unwrap();
        for piece in data.chunks(10_000) {
            w.write(piece).await.unwrap();
        }
        let written = w.finish().await.unwrap();
        assert_eq!(written.plaintext_size, len as u64);
        assert_eq!(written.stored_size, stored_size(len as u64));
        let on_disk = std::fs::metadata(dir.path().join(&name)).unwrap().len();
        assert_eq!(on_disk, stored_size(len as u64), "{len}");
        let r = vault.open(&name).await.unwrap();
        assert_eq!(r.len(), len as u64, "the reader reports the plaintext size");
        assert_eq!(vault.read_all(&name).await.unwrap(), data, "{len}");
        if len > 100 {
            let mid = r.read_at(len as u64 / 2 - 50, 100).await.unwrap();
            assert_eq!(mid, &data[len / 2 - 50..len / 2 + 50]);
            assert_eq!(
                r.read_at(len as u64 - 10, 1000).await.unwrap(),
                &data[len - 10..]
            );
            assert!(r.read_at(len as u64, 10).await.unwrap().is_empty());
        }
    }
    // Identical content, identical hash; the hash is of the plaintext.
    let mut a = vault.create("a").await.unwrap();
    a.write(b"same").await.unwrap();
    let mut b = vault.create("b").await.unwrap();
    b.write(b"same").await.unwrap();
    let (a, b) = (a.finish().await.unwrap(), b.finish().await.unwrap());
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(
        a.sha256,
        "0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"
    );
}

#[tokio::test]
async fn the_canary_never_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::local(&dir.path().join("vault"), VaultKey::generate()).unwrap();
    let canary = canary();
    // 12 MiB, so whole 5 MiB parts are handed to the store while the writer is still open.
    let data = content(&canary, 12 * 1024 * 1024);
    let mut w = vault.create("uploads/canary.csv").await.unwrap();
    // Out of order, as SFTP clients pipeline: each pair of 32 KiB pieces arrives swapped.
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
    // Mid-upload: parts are on disk (staged), no plaintext anywhere.
    let tmp = std::env::temp_dir();
    assert!(files_containing(dir.path(), canary.as_bytes()).is_empty());
    assert!(files_containing(&tmp, canary.as_bytes()).is_empty());
    w.finish().await.unwrap();
    assert!(files_containing(dir.path(), canary.as_bytes()).is_empty());
    assert!(files_containing(&tmp, canary.as_bytes()).is_empty());
    let stored = std::fs::read(dir.path().join("vault/uploads/canary.csv")).unwrap();
    assert_eq!(stored.len() as u64, stored_size(data.len() as u64));
    assert_eq!(vault.read_all("uploads/canary.csv").await.unwrap(), data);
}

async fn stored_file(vault: &Vault, name: &str, data: &[u8]) {
    let mut w = vault.create(name).await.unwrap();
    w.write(data).await.unwrap();
    w.finish().await.unwrap();
}

fn corrupt(e: VaultError) -> bool {
    matches!(e, VaultError::Corrupt(_))
}

#[tokio::test]
async fn tampering_and_wrong_keys_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let key = VaultKey::generate();
    let vault = Vault::local(dir.path(), key.clone()).unwrap();
    let data = content("tamper", 3 * CHUNK_SIZE + 10);
    stored_file(&vault, "good", &data).await;
    let good = std::fs::read(dir.path().join("good")).unwrap();

    // A flipped byte anywhere in the body.
    for at in [
        HEADER_SIZE + 5,
        HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 1,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(dir.path().join("flipped"), &bad).unwrap();
        let e = vault.read_all("flipped").await.unwrap_err();
        assert!(corrupt(e), "flip at {at}");
    }
    // A flipped salt: another key.
    let mut bad = good.clone();
    bad[6] ^= 0x80;
    std::fs::write(dir.path().join("salt"), &bad).unwrap();
    assert!(corrupt(vault.read_all("salt").await.unwrap_err()));
    // Not a vault file.
    std::fs::write(dir.path().join("plain"), content("plain", 100_000)).unwrap();
    assert!(corrupt(vault.read_all("plain").await.unwrap_err()));

    // Cut short: at a chunk boundary (the last chunk is gone), mid-chunk, down to the header.
    let boundary = HEADER_SIZE + 3 * (CHUNK_SIZE + TAG_SIZE);
    for cut in [
        boundary,
        boundary - 100,
        good.len() - 1,
        HEADER_SIZE + 10,
        HEADER_SIZE,
    ] {
        std::fs::write(dir.path().join("short"), &good[..cut]).unwrap();
        let e = vault.read_all("short").await.unwrap_err();
        assert!(corrupt(e), "cut at {cut}");
    }
    // Chunks swapped within the file.
    let mut swapped = good.clone();
    let c = CHUNK_SIZE + TAG_SIZE;
    let (first, second) = (
        HEADER_SIZE..HEADER_SIZE + c,
        HEADER_SIZE + c..HEADER_SIZE + 2 * c,
    );
    let a = good[first.clone()].to_vec();
    swapped[first].copy_from_slice(&good[second.clone()]);
    swapped[second].copy_from_slice(&a);
    std::fs::write(dir.path().join("swapped"), &swapped).unwrap();
    assert!(corrupt(vault.read_all("swapped").await.unwrap_err()));
    // Another file's header on this body.
    stored_file(&vault, "other", &data).await;
    let other = std::fs::read(dir.path().join("other")).unwrap();
    let mut mixed = good.clone();
    mixed[..HEADER_SIZE].copy_from_slice(&other[..HEADER_SIZE]);
    std::fs::write(dir.path().join("mixed"), &mixed).unwrap();
    assert!(corrupt(vault.read_all("mixed").await.unwrap_err()));

    // A wrong key, on the same bytes.
    let wrong = Vault::local(dir.path(), VaultKey::generate()).unwrap();
    assert!(corrupt(wrong.read_all("good").await.unwrap_err()));
    let empty_name = "empty";
    stored_file(&vault, empty_name, b"").await;
    assert!(corrupt(wrong.read_all(empty_name).await.unwrap_err()));
    assert_eq!(vault.read_all(empty_name).await.unwrap(), b"");
    // And the right key still reads it.
    assert_eq!(vault.read_all("good").await.unwrap(), data);
}

#[tokio::test]
async fn out_of_order_writes_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::local(dir.path(), VaultKey::generate())
        .unwrap()
        .with_window(256 * 1024);
    let data = content("order", 200 * 1024);
    // Reverse order within 64 KiB groups of 4 KiB pieces.
    let mut w = vault.create("ooo").await.unwrap();
    for group in (0..data.len()).step_by(64 * 1024) {
        let end = (group + 64 * 1024).min(data.len());
        let mut offsets: Vec<usize> = (group..end).step_by(4096).collect();
        offsets.reverse();
        for o in offsets {
            let stop = (o + 4096).min(end);
            w.write_at(o as u64, &data[o..stop]).await.unwrap();
        }
        assert_eq!(w.len(), end as u64, "the group fills its gap");
        assert_eq!(w.held(), 0);
    }
    w.finish().await.unwrap();
    assert_eq!(vault.read_all("ooo").await.unwrap(), data);

    // Beyond the window: refused, nothing held.
    let mut w = vault.create("far").await.unwrap();
    w.write(b"abc").await.unwrap();
    let e = w.write_at(1 << 63, b"x").await.unwrap_err();
    assert!(matches!(e, VaultError::Window { .. }), "{e}");
    let e = w.write_at(3 + 256 * 1024, b"x").await.unwrap_err();
    assert!(matches!(e, VaultError::Window { .. }), "{e}");
    assert_eq!(w.held(), 0);
    let e = w.write_at(u64::MAX, b"xy").await.unwrap_err();
    assert!(matches!(e, VaultError::Overlap { .. }), "{e}");
    // Rewrites and overlaps: refused.
    assert!(matches!(
        w.write_at(1, b"z").await.unwrap_err(),
        VaultError::Overlap { .. }
    ));
    w.write_at(100, b"0123456789").await.unwrap();
    assert_eq!(w.end(), 110);
    assert!(matches!(
        w.write_at(95, b"0123456789").await.unwrap_err(),
        VaultError::Overlap { .. }
    ));
    assert!(matches!(
        w.write_at(105, b"0123456789").await.unwrap_err(),
        VaultError::Overlap { .. }
    ));
    // A gap left open: finishing fails and stores nothing.
    assert!(matches!(w.finish().await.unwrap_err(), VaultError::Gap(3)));
    assert!(vault.open("far").await.is_err());
    assert!(!dir.path().join("far").exists());
}

#[tokio::test]
async fn abort_and_delete_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::local(dir.path(), VaultKey::generate()).unwrap();
    let mut w = vault.create("d/x").await.unwrap();
    w.write(&content("abort", 6 * 1024 * 1024)).await.unwrap();
    w.abort().await.unwrap();
    assert!(vault.open("d/x").await.is_err());
    stored_file(&vault, "d/y", b"hello").await;
    vault.rename("d/y", "d/z").await.unwrap();
    assert_eq!(vault.read_all("d/z").await.unwrap(), b"hello");
    vault.delete("d/z").await.unwrap();
    vault.delete("d/z").await.unwrap();
    assert!(vault.open("d/z").await.is_err());
    assert!(matches!(
        vault.create("../escape").await.unwrap_err(),
        VaultError::Location(_)
    ));
    // Empty folders are cleaned up too.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn writers_and_readers_can_live_in_shared_handlers() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ferry_vault::VaultWriter>();
    send_sync::<ferry_vault::VaultReader>();
    send_sync::<Vault>();
}
