//! Two Ferry nodes behind one address, as behind a TCP load balancer: the same store, the same
//! S3-compatible bucket (`moto_server` in CI, through `FERRY_TEST_S3_URL` and the `AWS_*`
//! variables). A file OpenSSH's `sftp` uploads through one node is listed and downloaded,
//! decrypted, through the other; both present the same host keys; the bucket holds no plaintext.

use std::process::Stdio;
use std::time::Duration;

use ferry_sftp::testing::keys;
use ferry_sftpd::{HostKeyKind, ServerConfig, SftpServer};
use ferry_store::testing::fresh_store;
use ferry_store::{NewSftpKey, SftpEntry, SftpFileStatus};
use ferry_vault::testing::{raw_store, s3_url};
use ferry_vault::{Vault, VaultKey};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use russh::keys::PublicKey;

const USER: &str = "state-u.uploads";

async fn sftp(port: u16, work: &std::path::Path, batch: &str) -> (bool, String) {
    let key_path = work.join("id_ed25519");
    keys().ed25519.write_private(&key_path);
    let batch_path = work.join("batch");
    std::fs::write(&batch_path, batch).unwrap();
    let out = tokio::process::Command::new("sftp")
        .arg("-b")
        .arg(&batch_path)
        .arg("-i")
        .arg(&key_path)
        .args(["-P", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{USER}@127.0.0.1"))
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run sftp (openssh-client)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_bucket_and_one_set_of_host_keys() {
    let Some(url) = s3_url() else { return };
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State U", None)
        .await
        .unwrap()
        .id;
    let account = store.create_sftp_account(inst, USER).await.unwrap();
    let pair = &keys().ed25519;
    let public = PublicKey::from_openssh(&pair.public).unwrap();
    store
        .add_sftp_key(
            inst,
            account.id,
            &NewSftpKey {
                algorithm: public.algorithm().to_string(),
                public_key: public.to_openssh().unwrap(),
                fingerprint: pair.fingerprint.clone(),
                comment: String::new(),
            },
        )
        .await
        .unwrap();
    let key = VaultKey::generate();
    let config = || ServerConfig {
        host_keys: vec![HostKeyKind::Ed25519, HostKeyKind::EcdsaP256],
        auth_rejection_time: Duration::from_millis(10),
        defender: None,
        ..ServerConfig::default()
    };
    let node_a = SftpServer::start(
        store.store.clone(),
        Vault::from_url(&url, key.clone()).unwrap(),
        "127.0.0.1:0",
        config(),
    )
    .await
    .unwrap();
    let node_b = SftpServer::start(
        store.store.clone(),
        Vault::from_url(&url, key.clone()).unwrap(),
        "127.0.0.1:0",
        config(),
    )
    .await
    .unwrap();
    let fps = |s: &SftpServer| {
        s.host_keys()
            .iter()
            .map(|k| k.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(fps(&node_a), fps(&node_b), "one set of host keys");
    assert_eq!(fps(&node_a).len(), 2);

    let work = tempfile::tempdir().unwrap();
    let canary = format!("S3CANARY{}", url.rsplit('-').next().unwrap());
    let mut data = Vec::new();
    for i in 0..150_000 {
        data.extend_from_slice(format!("{i},{canary},555-0101\n").as_bytes());
    }
    assert!(data.len() > 5 * 1024 * 1024, "several multipart parts");
    std::fs::write(work.path().join("contacts.csv"), &data).unwrap();
    let (ok, out) = sftp(
        node_a.local_addr().port(),
        work.path(),
        "mkdir inbox\nput contacts.csv inbox/contacts.csv\n",
    )
    .await;
    assert!(ok, "upload through node A: {out}");
    let (ok, out) = sftp(
        node_b.local_addr().port(),
        work.path(),
        "ls -l inbox\nget inbox/contacts.csv back.csv\n",
    )
    .await;
    assert!(ok, "download through node B: {out}");
    assert!(out.contains("contacts.csv"), "{out}");
    assert_eq!(std::fs::read(work.path().join("back.csv")).unwrap(), data);

    let Some(SftpEntry::File(file)) = store
        .sftp_lookup(account.id, "/inbox/contacts.csv")
        .await
        .unwrap()
    else {
        panic!("the upload is recorded");
    };
    assert_eq!(file.status, SftpFileStatus::Complete);
    assert_eq!(file.size as usize, data.len());

    // The bucket holds the file, encrypted.
    let (raw, prefix) = raw_store(&url);
    let metas: Vec<_> = raw.list(Some(&prefix)).try_collect().await.unwrap();
    assert_eq!(metas.len(), 1, "{metas:?}");
    let stored = raw
        .get(&metas[0].location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        stored.len() as u64,
        ferry_vault::stored_size(data.len() as u64)
    );
    assert!(!stored.windows(canary.len()).any(|w| w == canary.as_bytes()));
    raw.delete(&metas[0].location).await.unwrap();
}
