//! Ferry's SFTP server against real clients: OpenSSH `sftp`/`ssh` in batch mode, Ferry's own
//! client (ferry-sftp), and a raw russh + russh-sftp client for the protocol-level cases.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ferry_sftp::testing::{KeyPair, keys};
use ferry_sftp::{Auth as FerryAuth, HostKeyPolicy, SftpTarget};
use ferry_sftpd::{HostKeyKind, ServerConfig, SftpServer};
use ferry_store::testing::{TestStore, fresh_store};
use ferry_store::{DefenderPolicy, NewSftpKey, SftpEntry, SftpFileStatus, Store};
use ferry_vault::{Vault, VaultKey};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::protocol::{OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "state-u.uploads";

struct Fixture {
    store: TestStore,
    server: Option<SftpServer>,
    vault_dir: tempfile::TempDir,
    vault: Vault,
    inst: i64,
    account: i64,
    work: tempfile::TempDir,
}

impl Fixture {
    fn port(&self) -> u16 {
        self.server.as_ref().unwrap().local_addr().port()
    }
}

fn test_config() -> ServerConfig {
    ServerConfig {
        host_keys: vec![HostKeyKind::Ed25519],
        auth_rejection_time: Duration::from_millis(10),
        defender: None,
        ..ServerConfig::default()
    }
}

async fn fixture_with(config: ServerConfig) -> Fixture {
    let store = fresh_store().await;
    let inst = store
        .create_institution("state-u", "State U", None)
        .await
        .unwrap()
        .id;
    let account = store.create_sftp_account(inst, USER).await.unwrap();
    add_key(&store, inst, account.id, &keys().ed25519).await;
    add_key(&store, inst, account.id, &keys().rsa_openssh).await;
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = Vault::local(vault_dir.path(), VaultKey::generate()).unwrap();
    let server = SftpServer::start(store.store.clone(), vault.clone(), "127.0.0.1:0", config)
        .await
        .unwrap();
    Fixture {
        store,
        server: Some(server),
        vault_dir,
        vault,
        inst,
        account: account.id,
        work: tempfile::tempdir().unwrap(),
    }
}

async fn fixture() -> Fixture {
    fixture_with(test_config()).await
}

async fn add_key(store: &Store, inst: i64, account: i64, pair: &KeyPair) {
    let key = PublicKey::from_openssh(&pair.public).unwrap();
    store
        .add_sftp_key(
            inst,
            account,
            &NewSftpKey {
                algorithm: key.algorithm().to_string(),
                public_key: key.to_openssh().unwrap(),
                fingerprint: pair.fingerprint.clone(),
                comment: String::new(),
            },
        )
        .await
        .unwrap();
}

fn canary() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).unwrap();
    format!(
        "CANARY{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            found.extend(files_containing(&e.path(), needle));
        } else if ft.is_file()
            && e.metadata().is_ok_and(|m| m.len() < 256 * 1024 * 1024)
            && let Ok(bytes) = std::fs::read(e.path())
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(e.path());
        }
    }
    found
}

/// Runs OpenSSH `sftp -b` with `batch`; returns (success, stdout + stderr).
async fn openssh_sftp(f: &Fixture, key: &KeyPair, batch: &str, extra: &[&str]) -> (bool, String) {
    let key_path = f.work.path().join(format!("id_{}", key.fingerprint.len()));
    key.write_private(&key_path);
    let batch_path = f.work.path().join("batch");
    std::fs::write(&batch_path, batch).unwrap();
    let out = tokio::process::Command::new("sftp")
        .arg("-b")
        .arg(&batch_path)
        .arg("-i")
        .arg(&key_path)
        .args(["-P", &f.port().to_string()])
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
        .args(extra)
        .arg(format!("{USER}@127.0.0.1"))
        .current_dir(f.work.path())
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

async fn visible(store: &Store, account: i64, path: &str) -> Option<ferry_store::SftpFile> {
    match store.sftp_lookup(account, path).await.unwrap() {
        Some(SftpEntry::File(f)) => Some(f),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_sftp_uploads_lists_downloads_and_nothing_plain_lands_on_disk() {
    let f = fixture().await;
    let canary = canary();
    let mut data = Vec::new();
    for i in 0..60_000 {
        data.extend_from_slice(format!("{i},{canary},555-0101\n").as_bytes());
    }
    std::fs::write(f.work.path().join("calls.csv"), &data).unwrap();
    let batch = "mkdir inbox\ncd inbox\nput calls.csv\nls -l\nget calls.csv back.csv\nrename calls.csv calls-1.csv\nls\n";
    let (ok, out) = openssh_sftp(&f, &keys().ed25519, batch, &[]).await;
    assert!(ok, "{out}");
    assert!(out.contains("calls.csv"), "{out}");
    assert_eq!(
        std::fs::read(f.work.path().join("back.csv")).unwrap(),
        data,
        "the download is the upload, decrypted"
    );
    let file = visible(&f.store, f.account, "/inbox/calls-1.csv")
        .await
        .unwrap();
    assert_eq!(file.status, SftpFileStatus::Complete);
    assert!(file.ready_at.is_some());
    assert_eq!(file.size as usize, data.len(), "plaintext size");
    assert!(
        visible(&f.store, f.account, "/inbox/calls.csv")
            .await
            .is_none()
    );
    // Encrypted at rest: no canary in the vault or the temp dir.
    assert!(files_containing(f.vault_dir.path(), canary.as_bytes()).is_empty());
    let tmp_hits: Vec<_> = files_containing(&std::env::temp_dir(), canary.as_bytes())
        .into_iter()
        .filter(|p| !p.starts_with(f.work.path()))
        .collect();
    assert!(tmp_hits.is_empty(), "{tmp_hits:?}");
    assert_eq!(f.vault.read_all(&file.object_key).await.unwrap(), data);
    // The login was recorded.
    let acc = f.store.sftp_account(f.inst, f.account).await.unwrap();
    assert_eq!(acc.last_login_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrys_own_client_uploads_through_part_and_rename() {
    let f = fixture().await;
    f.store.sftp_mkdir(f.account, "/inbox").await.unwrap();
    let target = SftpTarget::new("127.0.0.1", USER, keys().ed25519.auth()).with_port(f.port());
    let session = ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew)
        .await
        .unwrap();
    assert_eq!(
        session.host_key_fingerprint(),
        f.server.as_ref().unwrap().host_keys()[0].fingerprint
    );
    session.test(Some("inbox")).await.unwrap();
    let report = session
        .upload(
            Some("inbox"),
            "contacts.csv",
            &b"crm_id,phone\r\n1,6175550101\r\n"[..],
        )
        .await
        .unwrap();
    assert_eq!(report.bytes, 28);
    let file = visible(&f.store, f.account, "/inbox/contacts.csv")
        .await
        .unwrap();
    assert_eq!(file.status, SftpFileStatus::Complete);
    assert!(file.ready_at.is_some(), "ready after the rename from .part");
    // The same content under another name: recorded, not ready twice.
    session
        .upload(
            Some("inbox"),
            "contacts-2.csv",
            &b"crm_id,phone\r\n1,6175550101\r\n"[..],
        )
        .await
        .unwrap();
    let dup = visible(&f.store, f.account, "/inbox/contacts-2.csv")
        .await
        .unwrap();
    assert_eq!(dup.status, SftpFileStatus::Duplicate);
    session.close().await.unwrap();
}

async fn ferry_login(
    f: &Fixture,
    user: &str,
    auth: FerryAuth,
) -> Result<(), ferry_sftp::SftpError> {
    let target = SftpTarget::new("127.0.0.1", user, auth).with_port(f.port());
    let s = ferry_sftp::connect(&target, &HostKeyPolicy::AcceptNew).await?;
    s.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_keys_passwords_disabled_accounts() {
    let f = fixture().await;
    let k = keys();
    ferry_login(&f, USER, k.ed25519.auth()).await.unwrap();
    ferry_login(&f, USER, k.rsa_openssh.auth()).await.unwrap();
    assert!(
        ferry_login(&f, USER, k.stranger.auth()).await.is_err(),
        "wrong key"
    );
    assert!(
        ferry_login(&f, "nobody-here", k.ed25519.auth())
            .await
            .is_err(),
        "unknown user"
    );
    // Passwords: off until set.
    let pw = "correct horse battery staple";
    assert!(
        ferry_login(&f, USER, FerryAuth::Password(pw.into()))
            .await
            .is_err()
    );
    f.store
        .set_sftp_password(f.inst, f.account, Some(pw))
        .await
        .unwrap();
    ferry_login(&f, USER, FerryAuth::Password(pw.into()))
        .await
        .unwrap();
    assert!(
        ferry_login(&f, USER, FerryAuth::Password("wrong password!".into()))
            .await
            .is_err()
    );
    // Disabled: nothing works.
    f.store
        .set_sftp_account_enabled(f.inst, f.account, false)
        .await
        .unwrap();
    assert!(ferry_login(&f, USER, k.ed25519.auth()).await.is_err());
    assert!(
        ferry_login(&f, USER, FerryAuth::Password(pw.into()))
            .await
            .is_err()
    );
    // OpenSSH: SHA-1 ssh-rsa signatures are refused, SHA-2 ones accepted.
    f.store
        .set_sftp_account_enabled(f.inst, f.account, true)
        .await
        .unwrap();
    let (ok, out) = openssh_sftp(
        &f,
        &k.rsa_openssh,
        "ls\n",
        &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"],
    )
    .await;
    assert!(!ok, "ssh-rsa (SHA-1) must not log in: {out}");
    let (ok, out) = openssh_sftp(
        &f,
        &k.rsa_openssh,
        "ls\n",
        &["-o", "PubkeyAcceptedAlgorithms=rsa-sha2-512"],
    )
    .await;
    assert!(ok, "{out}");
    // Weak algorithms do not negotiate (the MAC with a cipher that uses one).
    for opts in [
        &["-o", "KexAlgorithms=diffie-hellman-group14-sha1"][..],
        &["-o", "KexAlgorithms=diffie-hellman-group1-sha1"],
        &["-o", "Ciphers=aes128-cbc"],
        &["-o", "Ciphers=3des-cbc"],
        &["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"],
        &["-o", "HostKeyAlgorithms=ssh-rsa"],
    ] {
        let (ok, out) = openssh_sftp(&f, &k.ed25519, "ls\n", opts).await;
        assert!(!ok, "{opts:?} must fail: {out}");
    }
    // Compression asked for: OpenSSH falls back to none (the server offers only that).
    let (ok, out) = openssh_sftp(&f, &k.ed25519, "ls\n", &["-o", "Compression=yes", "-v"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("compression: none"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defender_bans_an_address_even_for_a_good_password() {
    let f = fixture_with(ServerConfig {
        defender: Some(DefenderPolicy {
            threshold: 3,
            observation_secs: 600,
            ban_secs: 600,
            max_ban_secs: 3600,
        }),
        ..test_config()
    })
    .await;
    let pw = "correct horse battery staple";
    f.store
        .set_sftp_password(f.inst, f.account, Some(pw))
        .await
        .unwrap();
    // Two unknown users (2 points each) pass the threshold of 3.
    for user in ["scanner-one", "scanner-two"] {
        assert!(
            ferry_login(&f, user, FerryAuth::Password("guess-guess".into()))
                .await
                .is_err()
        );
    }
    assert!(
        f.store
            .sftp_banned_until("127.0.0.1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        ferry_login(&f, USER, FerryAuth::Password(pw.into()))
            .await
            .is_err()
    );
    assert!(ferry_login(&f, USER, keys().ed25519.auth()).await.is_err());
    // A good key from another address is not locked out.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket
        .connect(f.server.as_ref().unwrap().local_addr())
        .await
        .unwrap();
    let mut h =
        russh::client::connect_stream(Arc::new(russh::client::Config::default()), stream, TrustAll)
            .await
            .unwrap();
    let key = PrivateKey::from_openssh(&keys().ed25519.private).unwrap();
    let r = h
        .authenticate_publickey(USER, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(r.success(), "127.0.0.2 is not banned");
    let acc = f.store.sftp_account(f.inst, f.account).await.unwrap();
    assert_eq!(acc.last_login_ip.as_deref(), Some("127.0.0.2"));
    f.store.sftp_unban("127.0.0.1").await.unwrap();
    ferry_login(&f, USER, FerryAuth::Password(pw.into()))
        .await
        .unwrap();
}

// ---- a raw client for protocol-level cases ----

struct TrustAll;

impl russh::client::Handler for TrustAll {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn raw_login(port: u16) -> russh::client::Handle<TrustAll> {
    let config = Arc::new(russh::client::Config::default());
    let mut h = russh::client::connect(config, ("127.0.0.1", port), TrustAll)
        .await
        .unwrap();
    let key = PrivateKey::from_openssh(&keys().ed25519.private).unwrap();
    let r = h
        .authenticate_publickey(USER, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(r.success());
    h
}

async fn raw_sftp(h: &russh::client::Handle<TrustAll>) -> SftpSession {
    let ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    SftpSession::new(ch.into_stream()).await.unwrap()
}

fn code(e: &SftpClientError) -> Option<StatusCode> {
    match e {
        SftpClientError::Status(s) => Some(s.status_code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_escapes_the_account() {
    let f = fixture().await;
    // Another account with a file: never reachable.
    let other = f
        .store
        .create_sftp_account(f.inst, "state-u.other")
        .await
        .unwrap();
    f.store.sftp_mkdir(other.id, "/secret").await.unwrap();
    f.store.sftp_mkdir(f.account, "/inbox").await.unwrap();
    f.store.sftp_mkdir(f.account, "/inbox_evil").await.unwrap();
    let h = raw_login(f.port()).await;
    let s = raw_sftp(&h).await;
    let mut w = s.create("/inbox/a.csv").await.unwrap();
    w.write_all(b"a,b\n").await.unwrap();
    w.shutdown().await.unwrap();
    let mut w = s.create("/inbox_evil/b.csv").await.unwrap();
    w.write_all(b"evil\n").await.unwrap();
    w.shutdown().await.unwrap();

    // REALPATH never shows a real path.
    assert_eq!(s.canonicalize(".").await.unwrap(), "/");
    assert_eq!(s.canonicalize("").await.unwrap(), "/");
    assert_eq!(
        s.canonicalize("inbox/../inbox/./x").await.unwrap(),
        "/inbox/x"
    );
    let escapes = [
        "..",
        "/..",
        "../etc/passwd",
        "/../../etc/passwd",
        "inbox/../../x",
        "/inbox/../..",
    ];
    for p in escapes {
        assert_eq!(
            code(&s.canonicalize(p).await.unwrap_err()),
            Some(StatusCode::PermissionDenied),
            "realpath {p}"
        );
        assert!(s.metadata(p).await.is_err(), "stat {p}");
        assert!(s.symlink_metadata(p).await.is_err(), "lstat {p}");
        assert!(s.open(p).await.is_err(), "open {p}");
        assert!(s.create(p).await.is_err(), "create {p}");
        assert!(s.read_dir(p).await.is_err(), "opendir {p}");
        assert!(s.remove_file(p).await.is_err(), "remove {p}");
        assert!(s.create_dir(p).await.is_err(), "mkdir {p}");
        assert!(s.remove_dir(p).await.is_err(), "rmdir {p}");
        assert!(s.rename("/inbox/a.csv", p).await.is_err(), "rename to {p}");
        assert!(
            s.rename(p, "/inbox/z.csv").await.is_err(),
            "rename from {p}"
        );
        assert!(s.read_link(p).await.is_err(), "readlink {p}");
        assert!(
            s.set_metadata(p, Default::default()).await.is_err(),
            "setstat {p}"
        );
    }
    // Absolute paths are the account's own root, not the server's.
    for p in ["/etc/passwd", "/secret", "/state-u.other/secret"] {
        assert_eq!(
            code(&s.metadata(p).await.unwrap_err()),
            Some(StatusCode::NoSuchFile),
            "{p}"
        );
    }
    // Links: none can be made, none are read.
    assert!(s.symlink("/inbox/link", "/etc/passwd").await.is_err());
    assert!(s.symlink("/etc/passwd", "/inbox/link").await.is_err());
    assert!(
        !s.hardlink("/inbox/a.csv", "/inbox/h.csv").await.unwrap(),
        "hardlink@openssh.com is not offered"
    );
    assert_eq!(
        code(&s.read_link("/inbox/a.csv").await.unwrap_err()),
        Some(StatusCode::NoSuchFile)
    );
    // The sibling sharing a prefix is a separate folder.
    let names: Vec<String> = s
        .read_dir("/inbox")
        .await
        .unwrap()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["a.csv"]);
    let root: Vec<String> = s
        .read_dir("/")
        .await
        .unwrap()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(root, ["inbox", "inbox_evil"]);
    // SETSTAT never applies owners or modes (accepted and ignored); truncation is refused.
    let attrs = russh_sftp::protocol::FileAttributes {
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o104777),
        ..Default::default()
    };
    s.set_metadata("/inbox/a.csv", attrs).await.unwrap();
    let m = s.metadata("/inbox/a.csv").await.unwrap();
    assert_eq!(m.permissions.map(|p| p & 0o7777), Some(0o644));
    assert_eq!(m.size, Some(4));
    let trunc = russh_sftp::protocol::FileAttributes {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        code(&s.set_metadata("/inbox/a.csv", trunc).await.unwrap_err()),
        Some(StatusCode::OpUnsupported)
    );
    // Append, resume (write without truncate on an existing file) and read-write: unsupported.
    for flags in [
        OpenFlags::WRITE | OpenFlags::APPEND,
        OpenFlags::WRITE | OpenFlags::CREATE,
        OpenFlags::READ | OpenFlags::WRITE,
    ] {
        let e = s
            .open_with_flags("/inbox/a.csv", flags)
            .await
            .err()
            .expect("refused");
        assert_eq!(code(&e), Some(StatusCode::OpUnsupported), "{flags:?}");
    }
    // The file is untouched and downloads decrypted.
    let mut r = s.open("/inbox/a.csv").await.unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"a,b\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_semantics() {
    let f = fixture().await;
    f.store.sftp_mkdir(f.account, "/in").await.unwrap();
    let h = raw_login(f.port()).await;
    let s = raw_sftp(&h).await;
    // Empty: reported, not ready.
    let w = s.create("/in/empty.csv").await.unwrap();
    drop(w);
    // A temporary name is complete but not ready; the rename makes it ready.
    let mut w = s.create("/in/big.csv.filepart").await.unwrap();
    w.write_all(b"x,y\n1,2\n").await.unwrap();
    w.shutdown().await.unwrap();
    let temp = visible(&f.store, f.account, "/in/big.csv.filepart")
        .await
        .unwrap();
    assert_eq!(temp.status, SftpFileStatus::Complete);
    assert!(temp.ready_at.is_none());
    s.rename("/in/big.csv.filepart", "/in/big.csv")
        .await
        .unwrap();
    let ready = visible(&f.store, f.account, "/in/big.csv").await.unwrap();
    assert!(ready.ready_at.is_some());
    let mut w = s.create("/in/.hidden.csv").await.unwrap();
    w.write_all(b"z\n").await.unwrap();
    w.shutdown().await.unwrap();
    assert!(
        visible(&f.store, f.account, "/in/.hidden.csv")
            .await
            .unwrap()
            .ready_at
            .is_none()
    );
    let empty = visible(&f.store, f.account, "/in/empty.csv").await.unwrap();
    assert_eq!(empty.status, SftpFileStatus::Empty);
    assert!(empty.ready_at.is_none());

    // Two sessions writing one name: both recorded, the last to close is the file.
    let h2 = raw_login(f.port()).await;
    let s2 = raw_sftp(&h2).await;
    let mut a = s.create("/in/same.csv").await.unwrap();
    let mut b = s2.create("/in/same.csv").await.unwrap();
    a.write_all(b"from a\n").await.unwrap();
    b.write_all(b"from b\n").await.unwrap();
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let mut r = s.open("/in/same.csv").await.unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"from a\n");

    // A connection dropped mid-upload: partial, never visible, never ready, nothing stored.
    let h3 = raw_login(f.port()).await;
    let s3 = raw_sftp(&h3).await;
    let mut w = s3.create("/in/cut.csv").await.unwrap();
    w.write_all(&vec![b'q'; 300_000]).await.unwrap();
    w.flush().await.unwrap();
    std::mem::forget(w); // no CLOSE is ever sent
    drop(s3);
    h3.disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
        .unwrap();
    drop(h3);
    let files = wait_for(&f.store, f.inst, |files| {
        files
            .iter()
            .any(|x| x.path == "/in/cut.csv" && x.status == SftpFileStatus::Partial)
    })
    .await;
    let cut = files.iter().find(|x| x.path == "/in/cut.csv").unwrap();
    assert!(!cut.visible && cut.ready_at.is_none());
    assert!(
        f.vault.open(&cut.object_key).await.is_err(),
        "nothing stored for a partial upload"
    );
    assert!(visible(&f.store, f.account, "/in/cut.csv").await.is_none());
}

/// Waits until the condition holds on the institution's upload records (a dropped connection is
/// cleaned up by the server in the background); fails after a generous limit.
async fn wait_for(
    store: &Store,
    inst: i64,
    cond: impl Fn(&[ferry_store::SftpFile]) -> bool,
) -> Vec<ferry_store::SftpFile> {
    for _ in 0..600 {
        let files = store.sftp_files(inst, 100).await.unwrap();
        if cond(&files) {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sftp_subsystem_runs() {
    let f = fixture().await;
    let h = raw_login(f.port()).await;
    let ch = h.channel_open_session().await.unwrap();
    assert!(ch.exec(true, "id").await.is_err() || !exec_succeeded(ch).await);
    let ch = h.channel_open_session().await.unwrap();
    assert!(ch.request_subsystem(true, "shell").await.is_err() || !subsystem_ok(ch).await);
    // OpenSSH ssh: a command is refused.
    let key_path = f.work.path().join("id_exec");
    keys().ed25519.write_private(&key_path);
    let out = tokio::process::Command::new("ssh")
        .arg("-i")
        .arg(&key_path)
        .args(["-p", &f.port().to_string()])
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
        .arg("echo EXECUTED")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("EXECUTED"));
    assert!(!out.status.success());
}

async fn exec_succeeded(mut ch: russh::Channel<russh::client::Msg>) -> bool {
    while let Some(msg) = ch.wait().await {
        match msg {
            russh::ChannelMsg::Success => return true,
            russh::ChannelMsg::Failure | russh::ChannelMsg::Close | russh::ChannelMsg::Eof => {
                return false;
            }
            _ => {}
        }
    }
    false
}

async fn subsystem_ok(ch: russh::Channel<russh::client::Msg>) -> bool {
    exec_succeeded(ch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packets_and_non_utf8_names() {
    let f = fixture().await;
    let h = raw_login(f.port()).await;
    // Non-UTF-8 name: OPEN with a raw byte name is refused with the request's id.
    let ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    let mut stream = ch.into_stream();
    stream.write_all(&packet(1, &[0, 0, 0, 3])).await.unwrap(); // INIT v3
    let version = read_packet(&mut stream).await;
    assert_eq!(version[0], 2, "VERSION");
    let name = b"bad\xffname.csv";
    let mut body = Vec::new();
    body.extend_from_slice(&7u32.to_be_bytes()); // id
    body.extend_from_slice(&(name.len() as u32).to_be_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&(0x1a_u32).to_be_bytes()); // WRITE|CREAT|TRUNC
    body.extend_from_slice(&0u32.to_be_bytes()); // no attrs
    stream.write_all(&packet(3, &body)).await.unwrap();
    let reply = read_packet(&mut stream).await;
    assert_eq!(reply[0], 101, "STATUS");
    assert_eq!(&reply[1..5], &7u32.to_be_bytes(), "the request's id");
    assert_eq!(
        u32::from_be_bytes(reply[5..9].try_into().unwrap()),
        5,
        "BAD_MESSAGE"
    );
    assert!(f.store.sftp_files(f.inst, 10).await.unwrap().is_empty());
    // Extensions that are not advertised are refused, whatever their paths say.
    for (id, ext) in [
        (8u32, "hardlink@openssh.com"),
        (9, "posix-rename@openssh.com"),
        (10, "statvfs@openssh.com"),
        (11, "copy-data"),
        (12, "expand-path@openssh.com"),
    ] {
        let mut body = Vec::new();
        body.extend_from_slice(&id.to_be_bytes());
        for s in [ext, "/../../etc/passwd", "~other/x"] {
            body.extend_from_slice(&(s.len() as u32).to_be_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        stream.write_all(&packet(200, &body)).await.unwrap();
        let reply = read_packet(&mut stream).await;
        assert_eq!(reply[0], 101, "STATUS for {ext}");
        assert_eq!(&reply[1..5], &id.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(reply[5..9].try_into().unwrap()),
            8,
            "OP_UNSUPPORTED for {ext}"
        );
    }
    // A length above the cap closes the channel instead of reading on out of step.
    stream
        .write_all(&[0x00, 0x10, 0x00, 0x00, 3, 0, 0, 0, 9])
        .await
        .unwrap();
    stream.write_all(&[0u8; 1024]).await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
        .await
        .expect("the channel closes")
        .unwrap_or(0);
    assert_eq!(n, 0, "no reply after an oversized packet");
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(body.len() + 5);
    p.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    p.push(kind);
    p.extend_from_slice(body);
    p
}

async fn read_packet<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let len = s.read_u32().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_are_capped_and_unknown_handles_fail() {
    let f = fixture_with(ServerConfig {
        max_handles: 3,
        max_uploads: 2,
        ..test_config()
    })
    .await;
    f.store.sftp_mkdir(f.account, "/in").await.unwrap();
    let h = raw_login(f.port()).await;
    let s = raw_sftp(&h).await;
    let mut w = s.create("/in/existing.csv").await.unwrap();
    w.write_all(b"x\n").await.unwrap();
    w.shutdown().await.unwrap();
    let mut open = Vec::new();
    for i in 0..2 {
        open.push(s.create(format!("/in/{i}.csv")).await.unwrap());
    }
    // Two uploads at once at most.
    let e = s
        .create("/in/2.csv")
        .await
        .err()
        .expect("a third upload is refused");
    assert_eq!(code(&e), Some(StatusCode::Failure));
    // Three handles at most: one reader fits, a second does not.
    open.push(s.open("/in/existing.csv").await.unwrap());
    assert!(s.open("/in/existing.csv").await.is_err());
    assert!(s.read_dir("/in").await.is_err());
    drop(open);
    // Closing frees them (drop sends CLOSE in the background).
    let mut ok = false;
    for _ in 0..100 {
        if s.create("/in/4.csv").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_deadline_and_per_address_cap() {
    let f = fixture_with(ServerConfig {
        login_deadline: Duration::from_millis(500),
        max_unauthenticated_per_ip: 2,
        ..test_config()
    })
    .await;
    let addr = f.server.as_ref().unwrap().local_addr();
    // Two silent connections are held; a third is closed at once.
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut banner = [0u8; 8];
    a.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    b.read_exact(&mut banner).await.unwrap();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the third gets nothing, not even a banner");
    // The silent ones are cut off at the deadline.
    for s in [&mut a, &mut b] {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest))
            .await
            .expect("closed after the login deadline")
            .ok();
    }
    // Then logging in works again.
    ferry_login(&f, USER, keys().ed25519.auth()).await.unwrap();
}

#[tokio::test]
async fn host_keys_are_created_once_and_kept() {
    let store = fresh_store().await;
    let kinds = [
        HostKeyKind::Ed25519,
        HostKeyKind::EcdsaP256,
        HostKeyKind::Rsa,
    ];
    let first = ferry_sftpd::host_keys(&store, &kinds).await.unwrap();
    let second = ferry_sftpd::host_keys(&store, &kinds).await.unwrap();
    let fps = |v: &Vec<(PrivateKey, ferry_sftpd::HostKeyInfo)>| {
        v.iter()
            .map(|(_, i)| i.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(fps(&first), fps(&second));
    let algs: Vec<String> = first
        .iter()
        .map(|(k, _)| k.algorithm().to_string())
        .collect();
    assert_eq!(algs, ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]);
    for (k, info) in &first {
        assert_eq!(ferry_sftpd::fingerprint(k.public_key()), info.fingerprint);
        assert!(info.fingerprint.starts_with("SHA256:"));
    }
}
