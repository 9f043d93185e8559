//! The client against the in-crate test server (runs everywhere, no system sshd needed).

use std::fs;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_sftp::server::TestServer;
use ferry_sftp::testing::{PASSPHRASE, closed_port, keys, listing, test_data, wait_until};
use ferry_sftp::{Auth, HostKeyPolicy, SftpError, SftpTarget, connect};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

const PASSWORD: &str = "wonderland-42";

struct Fixture {
    server: TestServer,
    root: TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("inbox")).expect("mkdir");
        let mut builder = TestServer::builder(root.path()).password("alice", PASSWORD);
        for key in keys().authorized() {
            builder = builder.authorized_key("bob", key.public.clone());
        }
        let server = builder.start().await.expect("start test server");
        Fixture { server, root }
    }

    fn target(&self, user: &str, auth: Auth) -> SftpTarget {
        SftpTarget::new("127.0.0.1", user, auth).with_port(self.server.port())
    }

    fn alice(&self) -> SftpTarget {
        self.target("alice", Auth::Password(SecretString::from(PASSWORD)))
    }

    fn inbox(&self) -> std::path::PathBuf {
        self.root.path().join("inbox")
    }
}

#[tokio::test]
async fn password_login_pins_the_host_key_and_uploads_byte_identical() {
    let fx = Fixture::start().await;
    let session = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .expect("connect");
    assert_eq!(
        session.host_key_fingerprint(),
        fx.server.host_key_fingerprint()
    );
    assert!(session.host_key_fingerprint().starts_with("SHA256:"));

    session.test(None).await.expect("test login directory");
    session.test(Some("/inbox")).await.expect("test /inbox");
    session.test(Some("inbox/")).await.expect("test inbox/");
    assert!(
        listing(&fx.inbox()).is_empty(),
        "test() leaves nothing behind"
    );

    let data = test_data(3 * 1024 * 1024 + 17, 1);
    let report = session
        .upload(Some("/inbox"), "contacts.csv", &data[..])
        .await
        .expect("upload");
    assert_eq!(report.bytes, data.len() as u64);
    assert_eq!(report.remote_path, "/inbox/contacts.csv");
    assert_eq!(fs::read(fx.inbox().join("contacts.csv")).unwrap(), data);
    assert_eq!(listing(&fx.inbox()), ["contacts.csv"], "no .part left");

    // The login directory is the root; an empty file works too.
    let report = session.upload(None, "empty.csv", &b""[..]).await.unwrap();
    assert_eq!(
        (report.bytes, report.remote_path.as_str()),
        (0, "empty.csv")
    );
    assert_eq!(fs::read(fx.root.path().join("empty.csv")).unwrap(), b"");
    session.close().await.expect("close");
}

#[tokio::test]
async fn key_login_with_every_key_type_and_format() {
    let fx = Fixture::start().await;
    let k = keys();
    for (i, (name, key)) in [
        ("ed25519 (OpenSSH)", &k.ed25519),
        ("RSA 3072 (PKCS#8)", &k.rsa_pkcs8),
        ("RSA 2048 (OpenSSH)", &k.rsa_openssh),
        ("ECDSA P-256 (OpenSSH)", &k.ecdsa),
        ("ed25519 with passphrase (OpenSSH)", &k.ed25519_protected),
        (
            "ECDSA P-384 with passphrase (encrypted PKCS#8)",
            &k.ecdsa_pkcs8_protected,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let session = connect(&fx.target("bob", key.auth()), &HostKeyPolicy::AcceptNew)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = format!("key{i}.txt");
        session
            .upload(Some("/inbox"), &file, name.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fs::read(fx.inbox().join(&file)).unwrap(), name.as_bytes());
    }
}

#[tokio::test]
async fn wrong_password_is_an_auth_failure_that_does_not_show_the_password() {
    let fx = Fixture::start().await;
    let err = connect(
        &fx.target("alice", Auth::Password(SecretString::from("not-it-123"))),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sftp_auth_failed", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"alice\"") && text.contains("password"),
        "{text}"
    );
    assert!(!text.contains("not-it-123") && !format!("{err:?}").contains("not-it-123"));

    // A key the server does not know, and a user it does not know.
    let stranger = connect(
        &fx.target("bob", keys().stranger.auth()),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(stranger.code(), "sftp_auth_failed");
    assert!(
        stranger.to_string().contains(&keys().stranger.fingerprint),
        "{stranger}"
    );
    let nobody = connect(
        &fx.target("nobody", Auth::Password(SecretString::from(PASSWORD))),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(nobody.code(), "sftp_auth_failed");
}

#[tokio::test]
async fn key_problems_are_named() {
    let fx = Fixture::start().await;
    let k = keys();
    let cases: Vec<(Auth, &str)> = vec![
        (
            k.ed25519_protected.auth_with(Some("wrong passphrase")),
            "sftp_key_wrong_passphrase",
        ),
        (
            k.ecdsa_pkcs8_protected.auth_with(Some("wrong passphrase")),
            "sftp_key_wrong_passphrase",
        ),
        (
            k.ed25519_protected.auth_with(None),
            "sftp_key_passphrase_required",
        ),
        (
            k.ecdsa_pkcs8_protected.auth_with(None),
            "sftp_key_passphrase_required",
        ),
        (
            k.ecdsa_legacy_pem_protected.auth_with(Some(PASSPHRASE)),
            "sftp_key_unsupported",
        ),
        (
            Auth::PrivateKey {
                pem: SecretString::from(k.ed25519.public.clone()),
                passphrase: None,
            },
            "sftp_key_unreadable",
        ),
        (
            Auth::PrivateKey {
                pem: SecretString::from(k.ed25519.private.replace('A', "B")),
                passphrase: None,
            },
            "sftp_key_unreadable",
        ),
    ];
    for (auth, code) in cases {
        let err = connect(&fx.target("bob", auth), &HostKeyPolicy::AcceptNew)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(!err.to_string().contains(PASSPHRASE));
    }
    // A passphrase given for an unencrypted key is harmless.
    connect(
        &fx.target("bob", k.ed25519.auth_with(Some("unused"))),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .expect("unencrypted key with a passphrase");
}

#[tokio::test]
async fn changed_host_key_is_refused_naming_both_fingerprints_until_re_pinned() {
    let fx = Fixture::start().await;
    let first = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap()
        .host_key_fingerprint()
        .to_string();
    let pinned = HostKeyPolicy::Pinned(first.clone());
    connect(&fx.alice(), &pinned)
        .await
        .expect("pinned key matches");

    let second = fx.server.rotate_host_key().expect("rotate");
    assert_ne!(first, second);
    let err = connect(&fx.alice(), &pinned).await.unwrap_err();
    match &err {
        SftpError::HostKeyChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, &first);
            assert_eq!(actual, &second);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(err.code(), "sftp_host_key_changed");
    let text = err.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");

    // Re-pin: accept the new key once, then pin it.
    let repinned = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap()
        .host_key_fingerprint()
        .to_string();
    assert_eq!(repinned, second);
    connect(
        &fx.alice(),
        &HostKeyPolicy::Pinned(second.trim_start_matches("SHA256:").to_string()),
    )
    .await
    .expect("new pin matches (prefix optional)");
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let port = closed_port();
    let target = SftpTarget::new(
        "127.0.0.1",
        "alice",
        Auth::Password(SecretString::from("x")),
    )
    .with_port(port);
    let err = connect(&target, &HostKeyPolicy::AcceptNew)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_connection_refused", "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_non_ssh_server_fails_the_handshake() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    // Accepts and says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut options = ferry_sftp::ClientOptions::default();
    options.connect_timeout = Duration::from_millis(500);
    let target = SftpTarget::new(
        "127.0.0.1",
        "alice",
        Auth::Password(SecretString::from("x")),
    );
    let err = ferry_sftp::connect_with(
        &target.clone().with_port(silent_port),
        &HostKeyPolicy::AcceptNew,
        &options,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sftp_timeout", "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{silent_port}")), "{text}");
    assert!(text.contains("handshake"), "{text}");
    hold.abort();

    // Answers like a web server.
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = http.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = http.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let err = connect(&target.with_port(http_port), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_handshake_failed", "{err}");
}

#[tokio::test]
async fn missing_directory_and_other_path_problems() {
    let fx = Fixture::start().await;
    fs::write(fx.root.path().join("file.txt"), b"x").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.root.path().join("escape")).unwrap();
    let session = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();

    let err = session.test(Some("/no/such/dir")).await.unwrap_err();
    assert_eq!(err.code(), "sftp_directory_missing", "{err}");
    assert!(err.to_string().contains("/no/such/dir"));
    let err = session
        .upload(Some("/no/such/dir"), "a.csv", &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_directory_missing", "{err}");

    let err = session.test(Some("/file.txt")).await.unwrap_err();
    assert_eq!(err.code(), "sftp_not_a_directory", "{err}");

    // The chroot: neither `..` nor a symlink leads out of the root.
    for dir in ["/..", "/inbox/../../etc", "/escape"] {
        let err = session.test(Some(dir)).await.unwrap_err();
        assert_eq!(err.code(), "sftp_permission_denied", "{dir}: {err}");
    }
    let err = session
        .upload(Some("/escape"), "a.csv", &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_permission_denied", "{err}");
    assert!(listing(outside.path()).is_empty());

    for bad in ["../a.csv", "a/b.csv", "", "x.csv.part"] {
        let err = session.upload(None, bad, &b"x"[..]).await.unwrap_err();
        assert_eq!(err.code(), "sftp_invalid_file_name", "{bad:?}");
    }
}

#[tokio::test]
async fn an_existing_file_is_never_overwritten() {
    let fx = Fixture::start().await;
    let session = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    session
        .upload(Some("/inbox"), "notes.csv", &b"first"[..])
        .await
        .unwrap();
    let err = session
        .upload(Some("/inbox"), "notes.csv", &b"second"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_file_exists", "{err}");
    assert_eq!(fs::read(fx.inbox().join("notes.csv")).unwrap(), b"first");
    assert_eq!(listing(&fx.inbox()), ["notes.csv"]);
}

/// Yields `data`, then signals and never finishes (or fails, if `fail` is set).
struct StallingReader {
    data: Vec<u8>,
    pos: usize,
    sent_all: Arc<Notify>,
    fail: bool,
}

impl AsyncRead for StallingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.data.len() {
            let n = buf.remaining().min(self.data.len() - self.pos);
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        self.sent_all.notify_one();
        if self.fail {
            Poll::Ready(Err(io::Error::other("the export query failed")))
        } else {
            Poll::Pending
        }
    }
}

#[tokio::test]
async fn an_aborted_upload_leaves_only_the_part_file_and_can_be_redone() {
    let fx = Fixture::start().await;
    let session = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    let sent_all = Arc::new(Notify::new());
    let reader = StallingReader {
        data: test_data(1024 * 1024, 2),
        pos: 0,
        sent_all: sent_all.clone(),
        fail: false,
    };
    let upload = session.upload(Some("/inbox"), "eab.csv", reader);
    tokio::select! {
        result = upload => panic!("the upload cannot finish: {result:?}"),
        _ = sent_all.notified() => {}
    }
    // The upload future is dropped here, like a worker killed mid-upload.
    let inbox = fx.inbox();
    wait_until(Duration::from_secs(10), "the .part file", || {
        inbox.join("eab.csv.part").exists()
    })
    .await;
    assert_eq!(listing(&inbox), ["eab.csv.part"]);

    // The next run re-sends the whole file under the same name.
    let data = test_data(200_000, 3);
    session
        .upload(Some("/inbox"), "eab.csv", &data[..])
        .await
        .unwrap();
    assert_eq!(fs::read(inbox.join("eab.csv")).unwrap(), data);
    assert_eq!(listing(&inbox), ["eab.csv"]);
}

#[tokio::test]
async fn a_failing_source_is_reported_and_cleaned_up() {
    let fx = Fixture::start().await;
    let session = connect(&fx.alice(), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    let reader = StallingReader {
        data: test_data(100_000, 4),
        pos: 0,
        sent_all: Arc::new(Notify::new()),
        fail: true,
    };
    let err = session
        .upload(Some("/inbox"), "contacts.csv", reader)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_source_read_failed", "{err}");
    assert!(
        listing(&fx.inbox()).is_empty(),
        "{:?}",
        listing(&fx.inbox())
    );
}

#[tokio::test]
async fn a_full_disk_is_a_write_failure_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::builder(root.path())
        .password("alice", PASSWORD)
        .max_file_size(1024 * 1024)
        .start()
        .await
        .unwrap();
    let target = SftpTarget::new(
        "127.0.0.1",
        "alice",
        Auth::Password(SecretString::from(PASSWORD)),
    )
    .with_port(server.port());
    let session = connect(&target, &HostKeyPolicy::AcceptNew).await.unwrap();
    let data = test_data(3 * 1024 * 1024, 6);
    let err = session
        .upload(None, "big.csv", &data[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_write_failed", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("big.csv.part") && text.contains("disk"),
        "{text}"
    );
    assert!(
        listing(root.path()).is_empty(),
        "{:?}",
        listing(root.path())
    );
    // The session is still usable.
    session
        .upload(None, "small.csv", &data[..1000])
        .await
        .unwrap();
}

/// Sessions are shared across tasks by the worker.
#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ferry_sftp::Session>();
    check::<SftpError>();
    check::<TestServer>();
    check::<SftpTarget>();
}

#[tokio::test]
async fn concurrent_sessions_upload_independently() {
    let fx = Fixture::start().await;
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let target = fx.alice();
        tasks.push(tokio::spawn(async move {
            let session = connect(&target, &HostKeyPolicy::AcceptNew).await?;
            let data = test_data(500_000, 10 + i);
            session
                .upload(Some("/inbox"), &format!("f{i}.csv"), &data[..])
                .await?;
            Ok::<_, SftpError>(data)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let data = task.await.unwrap().unwrap();
        assert_eq!(
            fs::read(fx.inbox().join(format!("f{i}.csv"))).unwrap(),
            data
        );
    }
}

/// OpenSSH's own `sftp` client can use the test server too (as `ferry demo` users will).
#[tokio::test]
async fn openssh_sftp_client_can_use_the_test_server() {
    if std::process::Command::new("sftp")
        .arg("-V")
        .output()
        .is_err()
    {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the OpenSSH sftp client is missing, and CI=true");
        }
        eprintln!("SKIPPED: no OpenSSH sftp client");
        return;
    }
    let fx = Fixture::start().await;
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("id");
    keys().ed25519.write_private(&key);
    let data = test_data(700_000, 5);
    fs::write(work.path().join("local.bin"), &data).unwrap();
    let batch = format!(
        "put {} /inbox/remote.bin\nrename /inbox/remote.bin /inbox/renamed.bin\nls -l /inbox\nget /inbox/renamed.bin {}\n",
        work.path().join("local.bin").display(),
        work.path().join("back.bin").display()
    );
    fs::write(work.path().join("batch"), batch).unwrap();
    let port = fx.server.port().to_string();
    let out = tokio::process::Command::new("sftp")
        .args(["-b"])
        .arg(work.path().join("batch"))
        .arg("-i")
        .arg(&key)
        .args([
            "-P",
            &port,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "bob@127.0.0.1",
        ])
        .output()
        .await
        .expect("run sftp");
    assert!(
        out.status.success(),
        "sftp failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(fx.inbox().join("renamed.bin")).unwrap(), data);
    assert_eq!(fs::read(work.path().join("back.bin")).unwrap(), data);
}
