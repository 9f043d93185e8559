//! The client against OpenSSH's `sshd` on loopback (`Subsystem sftp internal-sftp`).
//!
//! Each test starts its own sshd with a generated host key and config. Without
//! `/usr/sbin/sshd` the tests print SKIPPED and pass, except under `CI=true`, where they fail.
//!
//! Password login needs a known password, which no system account may be given for a test:
//! [`Sshd::start_with_password`] runs sshd with a private `/etc/shadow` instead (root only).

use std::fs;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_sftp::testing::{PASSPHRASE, SSHD_PASSWORD, Sshd, keys, listing, test_data, wait_until};
use ferry_sftp::{Auth, ClientOptions, HostKeyPolicy, SftpError, connect, connect_with};
use secrecy::SecretString;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

#[tokio::test]
async fn key_login_pins_sshd_host_key_and_uploads_byte_identical() {
    let Some(sshd) = Sshd::start() else { return };
    let session = connect(
        &sshd.target(keys().ed25519.auth()),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    // The fingerprint is the one `ssh-keygen -l` prints for sshd's host key.
    assert_eq!(session.host_key_fingerprint(), sshd.host_fingerprint);

    let dir = sshd.upload_path();
    session.test(Some(&dir)).await.expect("test upload dir");
    assert!(listing(&sshd.upload_dir).is_empty());

    let data = test_data(4 * 1024 * 1024 + 3, 7);
    let report = session
        .upload(Some(&dir), "conversations.csv", &data[..])
        .await
        .expect("upload");
    assert_eq!(report.bytes, data.len() as u64);
    assert_eq!(report.remote_path, format!("{dir}/conversations.csv"));
    assert_eq!(
        fs::read(sshd.upload_dir.join("conversations.csv")).unwrap(),
        data
    );
    assert_eq!(listing(&sshd.upload_dir), ["conversations.csv"]);
    session.close().await.expect("close");
}

#[tokio::test]
async fn key_login_with_rsa_ecdsa_and_passphrase_keys() {
    let Some(sshd) = Sshd::start() else { return };
    let k = keys();
    let dir = sshd.upload_path();
    // sshd is configured without ssh-rsa (SHA-1): RSA logins prove rsa-sha2 signatures.
    for (name, key) in [
        ("RSA 3072 (PKCS#8)", &k.rsa_pkcs8),
        ("RSA 2048 (OpenSSH)", &k.rsa_openssh),
        ("ECDSA P-256 (OpenSSH)", &k.ecdsa),
        ("ed25519 with passphrase", &k.ed25519_protected),
        (
            "ECDSA P-384 with passphrase (encrypted PKCS#8)",
            &k.ecdsa_pkcs8_protected,
        ),
    ] {
        let session = connect(&sshd.target(key.auth()), &HostKeyPolicy::AcceptNew)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", sshd.log()));
        session
            .test(Some(&dir))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let log = sshd.log();
    assert!(log.contains("Accepted publickey"), "{log}");
    assert!(log.contains("RSA SHA256:"), "{log}");
    assert!(log.contains("ECDSA SHA256:"), "{log}");
}

#[tokio::test]
async fn password_login_uploads() {
    let Some(sshd) = Sshd::start_with_password() else {
        return;
    };
    let session = connect(
        &sshd.target(Auth::Password(SecretString::from(SSHD_PASSWORD))),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(session.host_key_fingerprint(), sshd.host_fingerprint);
    let dir = sshd.upload_path();
    session
        .upload(Some(&dir), "a.csv", &b"a,b\r\n"[..])
        .await
        .expect("upload");
    assert_eq!(fs::read(sshd.upload_dir.join("a.csv")).unwrap(), b"a,b\r\n");
    assert!(sshd.log().contains("Accepted password"), "{}", sshd.log());
}

#[tokio::test]
async fn wrong_password_wrong_passphrase_and_unknown_key_are_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let err = connect(
        &sshd.target(Auth::Password(SecretString::from("definitely-wrong"))),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sftp_auth_failed", "{err}");
    match &err {
        SftpError::AuthFailed {
            method,
            server_methods,
            ..
        } => {
            assert_eq!(method, &ferry_sftp::AuthMethod::Password);
            assert!(server_methods.iter().any(|m| m == "publickey"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("definitely-wrong"));

    let err = connect(
        &sshd.target(
            keys()
                .ed25519_protected
                .auth_with(Some("not the passphrase")),
        ),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sftp_key_wrong_passphrase", "{err}");
    assert!(!err.to_string().contains(PASSPHRASE));

    let err = connect(
        &sshd.target(keys().stranger.auth()),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sftp_auth_failed", "{err}");
    assert!(err.to_string().contains("ssh-ed25519"), "{err}");
}

#[tokio::test]
async fn changed_sshd_host_key_is_refused_then_re_pinned() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let auth = keys().ed25519.auth();
    let first = connect(&sshd.target(auth.clone()), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap()
        .host_key_fingerprint()
        .to_string();
    assert_eq!(first, sshd.host_fingerprint);
    let pinned = HostKeyPolicy::Pinned(first.clone());
    connect(&sshd.target(auth.clone()), &pinned)
        .await
        .expect("same key");

    sshd.restart_with_new_host_key();
    let second = sshd.host_fingerprint.clone();
    assert_ne!(first, second);
    let err = connect(&sshd.target(auth.clone()), &pinned)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_host_key_changed", "{err}");
    let text = err.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");

    let repinned = connect(&sshd.target(auth.clone()), &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    assert_eq!(repinned.host_key_fingerprint(), second);
    connect(&sshd.target(auth), &HostKeyPolicy::Pinned(second))
        .await
        .expect("re-pinned");
}

#[tokio::test]
async fn missing_directory_and_existing_file() {
    let Some(sshd) = Sshd::start() else { return };
    let session = connect(
        &sshd.target(keys().ed25519.auth()),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap();
    let missing = format!("{}/not-there", sshd.upload_path());
    let err = session.test(Some(&missing)).await.unwrap_err();
    assert_eq!(err.code(), "sftp_directory_missing", "{err}");
    assert!(err.to_string().contains(&missing));
    let err = session
        .upload(Some(&missing), "a.csv", &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_directory_missing", "{err}");

    let dir = sshd.upload_path();
    session
        .upload(Some(&dir), "eab.csv", &b"first"[..])
        .await
        .unwrap();
    let err = session
        .upload(Some(&dir), "eab.csv", &b"second"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sftp_file_exists", "{err}");
    assert_eq!(fs::read(sshd.upload_dir.join("eab.csv")).unwrap(), b"first");
    assert_eq!(listing(&sshd.upload_dir), ["eab.csv"]);
}

/// Yields `len` bytes, then signals and stalls forever.
struct Stalling {
    left: usize,
    sent_all: Arc<Notify>,
}

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            self.sent_all.notify_one();
            return Poll::Pending;
        }
        let n = buf.remaining().min(self.left).min(64 * 1024);
        buf.put_slice(&vec![b'x'; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn an_aborted_upload_leaves_only_a_part_file() {
    let Some(sshd) = Sshd::start() else { return };
    let session = connect(
        &sshd.target(keys().ed25519.auth()),
        &HostKeyPolicy::AcceptNew,
    )
    .await
    .unwrap();
    let dir = sshd.upload_path();
    let sent_all = Arc::new(Notify::new());
    let reader = Stalling {
        left: 2 * 1024 * 1024,
        sent_all: sent_all.clone(),
    };
    tokio::select! {
        result = session.upload(Some(&dir), "notes.csv", reader) => panic!("cannot finish: {result:?}"),
        _ = sent_all.notified() => {}
    }
    // Dropped mid-upload; closing the connection too, like a killed worker.
    drop(session);
    let part = sshd.upload_dir.join("notes.csv.part");
    wait_until(Duration::from_secs(10), "the .part file", || part.exists()).await;
    assert_eq!(listing(&sshd.upload_dir), ["notes.csv.part"]);
}

/// Not a test: upload throughput against sshd, compared with OpenSSH's `sftp` in the same run.
///
/// `cargo test -p ferry-sftp --release --test sshd -- --ignored --nocapture throughput`
/// (`FERRY_SFTP_BENCH_MB` sets the size, default 100; `FERRY_SFTP_BENCH_RUNS` the runs, default 3).
#[tokio::test]
#[ignore = "benchmark: run explicitly, see the doc comment"]
async fn throughput() {
    use std::time::Instant;

    let Some(sshd) = Sshd::start() else { return };
    let mb: usize = std::env::var("FERRY_SFTP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runs: usize = std::env::var("FERRY_SFTP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let data = test_data(mb * 1024 * 1024, 99);
    let local = work.path().join("payload.bin");
    fs::write(&local, &data).unwrap();
    let key = work.path().join("id_ed25519");
    keys().ed25519.write_private(&key);
    let dir = sshd.upload_path();
    let megabytes = data.len() as f64 / 1e6;
    // With FERRY_SFTP_BENCH_RTT_MS, both clients go through a proxy that adds that round trip.
    let rtt_ms: u64 = std::env::var("FERRY_SFTP_BENCH_RTT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let port = if rtt_ms > 0 {
        delay_proxy(sshd.port, Duration::from_millis(rtt_ms) / 2).await
    } else {
        sshd.port
    };

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let clear = || {
        for name in listing(&sshd.upload_dir) {
            fs::remove_file(sshd.upload_dir.join(name)).unwrap();
        }
    };

    let mut results: Vec<(String, f64)> = Vec::new();
    // Bytes in flight matter on real links: OpenSSH's sshd grants a 2 MiB channel window, so
    // 64 x 32 KiB fills it; at a 20 ms round trip 16 x 32 KiB reaches about a third of that.
    let variants: [(&str, usize, u32, bool); 8] = [
        (
            "ferry-sftp default (64 x 32,704 B, fsync)",
            64,
            32 * 1024 - 64,
            true,
        ),
        (
            "ferry-sftp 64 x 32,704 B, no fsync",
            64,
            32 * 1024 - 64,
            false,
        ),
        ("ferry-sftp 64 x 32 KiB, no fsync", 64, 32 * 1024, false),
        ("ferry-sftp 32 x 32 KiB, no fsync", 32, 32 * 1024, false),
        (
            "ferry-sftp 16 x 32 KiB (russh-sftp default), no fsync",
            16,
            32 * 1024,
            false,
        ),
        ("ferry-sftp 16 x 255 KiB, no fsync", 16, 255 * 1024, false),
        ("ferry-sftp 8 x 255 KiB, fsync", 8, 255 * 1024, true),
        ("ferry-sftp 16 x 128 KiB, fsync", 16, 128 * 1024, true),
    ];
    for (label, in_flight, chunk, fsync) in variants {
        let mut options = ferry_sftp::ClientOptions::default();
        options.max_writes_in_flight = in_flight;
        options.write_chunk_size = chunk;
        options.fsync = fsync;
        let mut rates = Vec::new();
        for run in 0..runs {
            clear();
            let file = tokio::fs::File::open(&local).await.unwrap();
            // Timed like the sftp command: connect, log in, upload, close.
            let start = Instant::now();
            let session = ferry_sftp::connect_with(
                &sshd.target(keys().ed25519.auth()).with_port(port),
                &HostKeyPolicy::AcceptNew,
                &options,
            )
            .await
            .unwrap();
            let report = session
                .upload(Some(&dir), &format!("ferry{run}.bin"), file)
                .await
                .unwrap();
            session.close().await.unwrap();
            rates.push(megabytes / start.elapsed().as_secs_f64());
            assert_eq!(report.bytes, data.len() as u64);
        }
        results.push((label.to_string(), median(rates)));
    }

    for (label, cipher, flush) in [
        (
            "OpenSSH sftp, default cipher (chacha20-poly1305), put -f",
            None,
            true,
        ),
        (
            "OpenSSH sftp, default cipher (chacha20-poly1305), put",
            None,
            false,
        ),
        (
            "OpenSSH sftp, aes256-gcm, put -f",
            Some("aes256-gcm@openssh.com"),
            true,
        ),
        (
            "OpenSSH sftp, aes256-gcm, put",
            Some("aes256-gcm@openssh.com"),
            false,
        ),
    ] {
        let mut rates = Vec::new();
        for run in 0..runs {
            clear();
            let batch = work.path().join("batch");
            let put = if flush { "put -f" } else { "put" };
            fs::write(
                &batch,
                format!("{put} {} {dir}/openssh{run}.bin\n", local.display()),
            )
            .unwrap();
            let mut cmd = tokio::process::Command::new("sftp");
            cmd.arg("-q").arg("-b").arg(&batch).arg("-i").arg(&key);
            if let Some(cipher) = cipher {
                cmd.args(["-c", cipher]);
            }
            cmd.args([
                "-P",
                &port.to_string(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .arg(format!("{}@127.0.0.1", sshd.user));
            let start = Instant::now();
            let out = cmd.output().await.expect("run sftp");
            let secs = start.elapsed().as_secs_f64();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            rates.push(megabytes / secs);
        }
        results.push((label.to_string(), median(rates)));
    }
    clear();

    let baseline = results
        .iter()
        .find(|(l, _)| l.contains("default cipher") && l.ends_with("put -f"))
        .map(|(_, r)| *r)
        .unwrap_or(1.0);
    println!(
        "\nupload of {megabytes:.0} MB to OpenSSH sshd on loopback, added round trip {rtt_ms} ms, \
         median of {runs} (ratio vs OpenSSH sftp default, put -f):"
    );
    for (label, rate) in &results {
        println!("  {label:<60} {rate:>7.1} MB/s  {:>5.2}x", rate / baseline);
    }
}

/// Listens on a loopback port and forwards to `upstream_port`, holding every chunk for `delay`
/// in each direction: a round trip of `2 * delay` without touching the network configuration.
async fn delay_proxy(upstream_port: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::{Instant, sleep_until};

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let writer = tokio::spawn(async move {
            while let Some((due, chunk)) = rx.recv().await {
                sleep_until(due).await;
                if to.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, delay));
            tokio::spawn(pipe(sr, cw, delay));
        }
    });
    port
}

#[tokio::test]
async fn with_fsync_a_large_upload_is_flushed_ahead_and_arrives_whole() {
    let Some(sshd) = Sshd::start() else { return };
    let data = test_data(4 * 1024 * 1024, 7);
    let dir = sshd.upload_path();
    for (fsync, name) in [(true, "flushed.csv"), (false, "unflushed.csv")] {
        let mut options = ClientOptions::default();
        options.fsync = fsync;
        options.flush_ahead = Some(256 * 1024);
        let session = connect_with(
            &sshd.target(keys().ed25519.auth()),
            &HostKeyPolicy::AcceptNew,
            &options,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
        let report = session
            .upload(Some(&dir), name, data.as_slice())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
        // At most one flush runs at a time, so how many fit depends on the disk; with fsync
        // off there are none.
        if fsync {
            assert!(report.flushes_ahead >= 1, "{report:?}");
        } else {
            assert_eq!(report.flushes_ahead, 0, "{report:?}");
        }
        assert_eq!(report.bytes, data.len() as u64);
        assert!(fs::read(sshd.upload_dir.join(name)).unwrap() == data);
        session.close().await.unwrap();
    }
}
