//! The SFTP server's store: accounts, keys, passwords, host keys, the defender and the namespace,
//! on SQLite and (with `FERRY_TEST_DATABASE_URL`) on PostgreSQL.

use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::*;
use secrecy::{ExposeSecret, SecretString};

async fn setup() -> (TestStore, i64, i64) {
    let s = fresh_store().await;
    let a = s
        .create_institution("state-u", "State U", None)
        .await
        .unwrap();
    let b = s
        .create_institution("other-u", "Other U", None)
        .await
        .unwrap();
    (s, a.id, b.id)
}

fn key(fp: &str) -> NewSftpKey {
    NewSftpKey {
        algorithm: "ssh-ed25519".into(),
        public_key: format!("ssh-ed25519 AAAA{fp}"),
        fingerprint: format!("SHA256:{fp}"),
        comment: "ops@state.edu".into(),
    }
}

#[tokio::test]
async fn accounts_keys_passwords_and_tenancy() {
    let (s, inst, other) = setup().await;
    let acc = s
        .create_sftp_account(inst, "state-u.uploads")
        .await
        .unwrap();
    assert!(acc.enabled && !acc.password_set && acc.keys.is_empty());
    assert!(acc.last_login_at.is_none());
    // Usernames are unique across institutions, checked, and some are reserved.
    assert!(matches!(
        s.create_sftp_account(other, "state-u.uploads").await,
        Err(StoreError::Conflict(_))
    ));
    for bad in ["root", "ab", "../../etc", "Upper"] {
        assert!(
            matches!(
                s.create_sftp_account(inst, bad).await,
                Err(StoreError::Invalid { .. })
            ),
            "{bad}"
        );
    }
    // Another institution does not see it.
    assert!(matches!(
        s.sftp_account(other, acc.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.sftp_accounts(other).await.unwrap().is_empty());
    assert!(matches!(
        s.add_sftp_key(other, acc.id, &key("x")).await,
        Err(StoreError::NotFound)
    ));

    let k1 = s.add_sftp_key(inst, acc.id, &key("one")).await.unwrap();
    s.add_sftp_key(inst, acc.id, &key("two")).await.unwrap();
    assert!(matches!(
        s.add_sftp_key(inst, acc.id, &key("one")).await,
        Err(StoreError::Conflict(_))
    ));
    let got = s
        .sftp_account_by_username("state-u.uploads")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.keys.len(), 2);
    s.delete_sftp_key(inst, acc.id, k1.id).await.unwrap();
    assert_eq!(s.sftp_account(inst, acc.id).await.unwrap().keys.len(), 1);

    // Passwords: off by default, argon2 when set, never matched for disabled accounts.
    assert!(
        s.verify_sftp_password("state-u.uploads", "")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        s.set_sftp_password(inst, acc.id, Some("short")).await,
        Err(StoreError::Invalid { .. })
    ));
    let acc2 = s
        .set_sftp_password(inst, acc.id, Some("correct horse battery"))
        .await
        .unwrap();
    assert!(acc2.password_set);
    assert!(
        s.verify_sftp_password("state-u.uploads", "correct horse battery")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.verify_sftp_password("state-u.uploads", "wrong horse battery")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.verify_sftp_password("nobody-here", "correct horse battery")
            .await
            .unwrap()
            .is_none()
    );
    s.set_sftp_account_enabled(inst, acc.id, false)
        .await
        .unwrap();
    assert!(
        s.verify_sftp_password("state-u.uploads", "correct horse battery")
            .await
            .unwrap()
            .is_none()
    );
    s.set_sftp_account_enabled(inst, acc.id, true)
        .await
        .unwrap();
    s.set_sftp_password(inst, acc.id, None).await.unwrap();
    assert!(
        s.verify_sftp_password("state-u.uploads", "correct horse battery")
            .await
            .unwrap()
            .is_none()
    );

    s.record_sftp_login(acc.id, "192.0.2.7").await.unwrap();
    let seen = s.sftp_account(inst, acc.id).await.unwrap();
    assert!(seen.last_login_at.is_some());
    assert_eq!(seen.last_login_ip.as_deref(), Some("192.0.2.7"));

    assert!(matches!(
        s.delete_sftp_account(other, acc.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_sftp_account(inst, acc.id).await.unwrap();
    assert!(
        s.sftp_account_by_username("state-u.uploads")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn host_keys_are_created_once_and_sealed() {
    let (s, _, _) = setup().await;
    assert!(s.sftp_host_keys().await.unwrap().is_empty());
    let make = |private: &str, fp: &str| SftpHostKey {
        algorithm: "ssh-ed25519".into(),
        private_key: SecretString::from(private.to_string()),
        public_key: "ssh-ed25519 AAAA".into(),
        fingerprint: fp.into(),
        created_at: jiff::Timestamp::now(),
    };
    let first = s
        .add_sftp_host_key_if_absent(&make(
            "-----BEGIN OPENSSH PRIVATE KEY----- first",
            "SHA256:first",
        ))
        .await
        .unwrap();
    // A second node starting later keeps the first node's key.
    let second = s
        .add_sftp_host_key_if_absent(&make(
            "-----BEGIN OPENSSH PRIVATE KEY----- second",
            "SHA256:second",
        ))
        .await
        .unwrap();
    assert_eq!(second.fingerprint, "SHA256:first");
    assert_eq!(
        second.private_key.expose_secret(),
        first.private_key.expose_secret()
    );
    let all = s.sftp_host_keys().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        s.sftp_host_fingerprints().await.unwrap(),
        [("ssh-ed25519".to_string(), "SHA256:first".to_string())]
    );
}

#[tokio::test]
async fn the_defender_bans_and_bans_grow() {
    let (s, _, _) = setup().await;
    let policy = DefenderPolicy {
        threshold: 5,
        observation_secs: 3600,
        ban_secs: 60,
        max_ban_secs: 1000,
    };
    let ip = "198.51.100.9";
    assert!(s.sftp_banned_until(ip).await.unwrap().is_none());
    for expected in [2, 4] {
        let v = s.sftp_defender_event(ip, 2, &policy).await.unwrap();
        assert_eq!(v.score, expected);
        assert!(v.banned_until.is_none());
    }
    let v = s.sftp_defender_event(ip, 2, &policy).await.unwrap();
    let first_ban = v.banned_until.expect("6 > 5 bans");
    assert_eq!(s.sftp_banned_until(ip).await.unwrap(), Some(first_ban));
    let secs = (first_ban - jiff::Timestamp::now()).get_seconds();
    assert!((55..=60).contains(&secs), "{secs}");
    // Another address is not affected.
    assert!(
        s.sftp_banned_until("198.51.100.10")
            .await
            .unwrap()
            .is_none()
    );
    // Lifted, then banned again: twice as long.
    s.sftp_unban(ip).await.unwrap();
    assert!(s.sftp_banned_until(ip).await.unwrap().is_none());
    for _ in 0..3 {
        s.sftp_defender_event(ip, 2, &policy).await.unwrap();
    }
    // The ban count was forgotten with the unban: the first ban again.
    let again = s.sftp_banned_until(ip).await.unwrap().unwrap();
    let secs = (again - jiff::Timestamp::now()).get_seconds();
    assert!((55..=60).contains(&secs), "{secs}");
    // Events while banned keep the ban as it is.
    let v = s.sftp_defender_event(ip, 10, &policy).await.unwrap();
    assert_eq!(v.banned_until, Some(again));
}

#[tokio::test]
async fn bans_double_up_to_the_cap() {
    let (s, _, _) = setup().await;
    // A ban of zero seconds ends at once, so the next events start the next (longer) ban.
    let policy = DefenderPolicy {
        threshold: 0,
        observation_secs: 3600,
        ban_secs: 0,
        max_ban_secs: 0,
    };
    let ip = "203.0.113.1";
    for _ in 0..3 {
        let v = s.sftp_defender_event(ip, 1, &policy).await.unwrap();
        assert!(v.banned_until.is_none(), "a zero ban is over at once");
    }
    let long = DefenderPolicy {
        threshold: 0,
        observation_secs: 3600,
        ban_secs: 10,
        max_ban_secs: 50,
    };
    // Three bans so far: the fourth is 10 × 2³ = 80 s, capped at 50.
    let v = s.sftp_defender_event(ip, 1, &long).await.unwrap();
    let secs = (v.banned_until.unwrap() - jiff::Timestamp::now()).get_seconds();
    assert!((45..=50).contains(&secs), "{secs}");
}

#[tokio::test]
async fn the_namespace_and_upload_lifecycle() {
    let (s, inst, _) = setup().await;
    let acc = s.create_sftp_account(inst, "uploader").await.unwrap();
    let other = s.create_sftp_account(inst, "uploader-2").await.unwrap();
    let a = acc.id;
    assert!(matches!(
        s.sftp_lookup(a, "/").await.unwrap(),
        Some(SftpEntry::Dir { .. })
    ));
    s.sftp_mkdir(a, "/inbox").await.unwrap();
    s.sftp_mkdir(a, "/inbox_evil").await.unwrap();
    assert!(matches!(
        s.sftp_mkdir(a, "/inbox").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.sftp_mkdir(a, "/missing/x").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.sftp_mkdir(a, "/a/../b").await,
        Err(StoreError::Invalid { .. })
    ));
    // Upload into a missing folder: refused.
    assert!(matches!(
        s.sftp_begin_upload(a, "/nope/x.csv", "k0").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.sftp_begin_upload(a, "/inbox", "k0").await,
        Err(StoreError::Conflict(_))
    ));

    // A clean close under an accepted name: complete, visible, ready.
    let f = s
        .sftp_begin_upload(a, "/inbox/calls.csv", "k1")
        .await
        .unwrap();
    assert_eq!(f.status, SftpFileStatus::Uploading);
    assert!(!f.visible, "not visible while uploading");
    assert!(
        s.sftp_lookup(a, "/inbox/calls.csv")
            .await
            .unwrap()
            .is_none()
    );
    let f = s.sftp_finish_upload(f.id, 10, "aaa", true).await.unwrap();
    assert_eq!(f.status, SftpFileStatus::Complete);
    assert!(f.visible && f.ready_at.is_some());
    assert!(matches!(
        s.sftp_finish_upload(f.id, 10, "aaa", true).await,
        Err(StoreError::Conflict(_))
    ));
    // Listing is by exact parent: the sibling sharing a prefix is not inside.
    s.sftp_begin_upload(a, "/inbox_evil/x.csv", "k2")
        .await
        .map(|x| x.id)
        .unwrap();
    let listed: Vec<String> = s
        .sftp_list(a, "/inbox")
        .await
        .unwrap()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    assert_eq!(listed, ["/inbox/calls.csv"]);
    let root: Vec<String> = s
        .sftp_list(a, "/")
        .await
        .unwrap()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    assert_eq!(root, ["/inbox", "/inbox_evil"]);
    // Another account sees nothing of it.
    assert!(
        s.sftp_lookup(other.id, "/inbox/calls.csv")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.sftp_list(other.id, "/").await.unwrap().is_empty());

    // The same content again: duplicate, not ready twice.
    let g = s
        .sftp_begin_upload(a, "/inbox/calls-again.csv", "k3")
        .await
        .unwrap();
    let g = s.sftp_finish_upload(g.id, 10, "aaa", true).await.unwrap();
    assert_eq!(g.status, SftpFileStatus::Duplicate);
    // An empty file: reported, not ready.
    let e = s
        .sftp_begin_upload(a, "/inbox/empty.csv", "k4")
        .await
        .unwrap();
    let e = s.sftp_finish_upload(e.id, 0, "e3b0", true).await.unwrap();
    assert_eq!(e.status, SftpFileStatus::Empty);
    assert!(e.ready_at.is_none());
    // A temporary name, then a rename into an accepted one: ready then.
    let t = s
        .sftp_begin_upload(a, "/inbox/big.csv.filepart", "k5")
        .await
        .unwrap();
    let t = s.sftp_finish_upload(t.id, 5, "bbb", false).await.unwrap();
    assert!(t.ready_at.is_none());
    assert!(matches!(
        s.sftp_rename(a, "/inbox/big.csv.filepart", "/inbox/calls.csv", true)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let t = s
        .sftp_rename(a, "/inbox/big.csv.filepart", "/inbox/big.csv", true)
        .await
        .unwrap();
    assert_eq!(t.path, "/inbox/big.csv");
    assert_eq!(t.status, SftpFileStatus::Complete);
    assert!(t.ready_at.is_some());
    // Dropped mid-upload: partial, never visible, never ready.
    let p = s
        .sftp_begin_upload(a, "/inbox/cut.csv", "k6")
        .await
        .unwrap();
    let p = s.sftp_mark_partial(p.id, 3).await.unwrap();
    assert_eq!(p.status, SftpFileStatus::Partial);
    assert!(!p.visible && p.ready_at.is_none());
    assert!(matches!(
        s.sftp_finish_upload(p.id, 3, "ccc", true).await,
        Err(StoreError::Conflict(_))
    ));
    // Two uploads of one name: the one that finishes last is visible, both are recorded.
    let one = s
        .sftp_begin_upload(a, "/inbox/twice.csv", "k7")
        .await
        .unwrap();
    let two = s
        .sftp_begin_upload(a, "/inbox/twice.csv", "k8")
        .await
        .unwrap();
    s.sftp_finish_upload(two.id, 4, "two", true).await.unwrap();
    s.sftp_finish_upload(one.id, 3, "one", true).await.unwrap();
    match s.sftp_lookup(a, "/inbox/twice.csv").await.unwrap() {
        Some(SftpEntry::File(f)) => assert_eq!(f.id, one.id),
        other => panic!("{other:?}"),
    }
    assert!(!s.sftp_file(two.id).await.unwrap().visible);

    // Ready files, in order; ingestion takes each once.
    let ready: Vec<i64> = s
        .sftp_ready_files(100)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ready, [f.id, t.id, two.id, one.id]);
    s.sftp_mark_ingested(f.id).await.unwrap();
    assert!(matches!(
        s.sftp_mark_ingested(f.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.sftp_mark_ingested(g.id).await,
        Err(StoreError::Conflict(_))
    ));

    // Remove hides; rmdir only when empty; folders are not renamed.
    assert!(matches!(
        s.sftp_rmdir(a, "/inbox").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.sftp_rename(a, "/inbox", "/outbox", true).await,
        Err(StoreError::Invalid { .. })
    ));
    for path in [
        "/inbox/calls.csv",
        "/inbox/calls-again.csv",
        "/inbox/empty.csv",
        "/inbox/big.csv",
        "/inbox/twice.csv",
    ] {
        s.sftp_remove(a, path).await.unwrap();
    }
    assert!(matches!(
        s.sftp_remove(a, "/inbox/calls.csv").await,
        Err(StoreError::NotFound)
    ));
    s.sftp_rmdir(a, "/inbox").await.unwrap();
    assert!(s.sftp_lookup(a, "/inbox").await.unwrap().is_none());
    let files = s.sftp_files(inst, 100).await.unwrap();
    assert_eq!(files.len(), 8, "every upload stays on record");
}

#[tokio::test]
async fn abandoned_uploads_are_swept_to_partial() {
    let (s, inst, _) = setup().await;
    let a = s.create_sftp_account(inst, "sweeper").await.unwrap().id;
    let old = s.sftp_begin_upload(a, "/old.csv", "s1").await.unwrap();
    let cutoff = jiff::Timestamp::now();
    let fresh = s.sftp_begin_upload(a, "/fresh.csv", "s2").await.unwrap();
    let done = s.sftp_begin_upload(a, "/done.csv", "s3").await.unwrap();
    s.sftp_finish_upload(done.id, 3, "d", true).await.unwrap();
    let swept = s.sftp_sweep_abandoned_uploads(cutoff).await.unwrap();
    assert_eq!(swept.iter().map(|f| f.id).collect::<Vec<_>>(), [old.id]);
    assert_eq!(swept[0].status, SftpFileStatus::Partial);
    // Touched after the cutoff: left alone; touching a swept upload does nothing.
    s.sftp_touch_upload(fresh.id, 100).await.unwrap();
    s.sftp_touch_upload(old.id, 100).await.unwrap();
    assert!(
        s.sftp_sweep_abandoned_uploads(cutoff)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.sftp_file(fresh.id).await.unwrap().size, 100);
    assert_eq!(
        s.sftp_file(old.id).await.unwrap().status,
        SftpFileStatus::Partial
    );
    assert_eq!(
        s.sftp_file(done.id).await.unwrap().status,
        SftpFileStatus::Complete
    );
    // Its connection, if it ever comes back, cannot complete it.
    assert!(matches!(
        s.sftp_finish_upload(old.id, 3, "x", true).await,
        Err(StoreError::Conflict(_))
    ));
}
