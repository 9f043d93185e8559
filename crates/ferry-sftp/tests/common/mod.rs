//! Shared test helpers: keys made with `ssh-keygen` at test time, a loopback OpenSSH `sshd`,
//! test data and polling. Nothing here is committed key material.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_sftp::{Auth, SftpTarget};
use secrecy::SecretString;
use tempfile::TempDir;

/// The passphrase of the protected test keys.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A key pair as text, made by `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The private key file's contents.
    pub private: String,
    /// The `authorized_keys` line.
    pub public: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The passphrase it is protected with, if any.
    pub passphrase: Option<&'static str>,
}

impl KeyPair {
    /// Key auth with this key (and its passphrase, if any).
    pub fn auth(&self) -> Auth {
        Auth::PrivateKey {
            pem: SecretString::from(self.private.clone()),
            passphrase: self.passphrase.map(SecretString::from),
        }
    }

    /// Key auth with this key and the given passphrase.
    pub fn auth_with(&self, passphrase: Option<&str>) -> Auth {
        Auth::PrivateKey {
            pem: SecretString::from(self.private.clone()),
            passphrase: passphrase.map(SecretString::from),
        }
    }

    /// Writes the private key to `path` with mode 0600 (for the OpenSSH client).
    pub fn write_private(&self, path: &Path) {
        fs::write(path, &self.private).expect("write key");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod key");
    }
}

/// Every client key the tests use.
#[derive(Debug)]
pub struct TestKeys {
    /// ed25519, OpenSSH format.
    pub ed25519: KeyPair,
    /// RSA 3072, PKCS#8 (`BEGIN PRIVATE KEY`).
    pub rsa_pkcs8: KeyPair,
    /// RSA 2048, OpenSSH format.
    pub rsa_openssh: KeyPair,
    /// ECDSA P-256, OpenSSH format.
    pub ecdsa: KeyPair,
    /// ed25519, OpenSSH format, encrypted with [`PASSPHRASE`].
    pub ed25519_protected: KeyPair,
    /// ECDSA P-384, encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`) with [`PASSPHRASE`].
    pub ecdsa_pkcs8_protected: KeyPair,
    /// ECDSA P-256, legacy encrypted PEM (`Proc-Type: 4,ENCRYPTED`) with [`PASSPHRASE`].
    pub ecdsa_legacy_pem_protected: KeyPair,
    /// ed25519 that no server authorizes.
    pub stranger: KeyPair,
}

impl TestKeys {
    /// The keys servers authorize (all but the stranger and the legacy PEM).
    pub fn authorized(&self) -> [&KeyPair; 6] {
        [
            &self.ed25519,
            &self.rsa_pkcs8,
            &self.rsa_openssh,
            &self.ecdsa,
            &self.ed25519_protected,
            &self.ecdsa_pkcs8_protected,
        ]
    }
}

/// Whether `ssh-keygen` is installed; without it these tests cannot make keys.
pub fn have_ssh_keygen() -> bool {
    Command::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Test keys, generated once per test binary into a temporary directory that is then removed.
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        assert!(
            have_ssh_keygen(),
            "ssh-keygen (openssh-client) is needed to generate test keys"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Some(PASSPHRASE);
        TestKeys {
            ed25519: keygen(dir.path(), "ed25519", &["-t", "ed25519"], None),
            rsa_pkcs8: keygen(
                dir.path(),
                "rsa_pkcs8",
                &["-t", "rsa", "-b", "3072", "-m", "PKCS8"],
                None,
            ),
            rsa_openssh: keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"], None),
            ecdsa: keygen(dir.path(), "ecdsa", &["-t", "ecdsa", "-b", "256"], None),
            ed25519_protected: keygen(dir.path(), "ed25519_p", &["-t", "ed25519"], p),
            ecdsa_pkcs8_protected: keygen(
                dir.path(),
                "ecdsa_p8",
                &["-t", "ecdsa", "-b", "384", "-m", "PKCS8"],
                p,
            ),
            ecdsa_legacy_pem_protected: keygen(
                dir.path(),
                "ecdsa_pem",
                &["-t", "ecdsa", "-b", "256", "-m", "PEM"],
                p,
            ),
            stranger: keygen(dir.path(), "stranger", &["-t", "ed25519"], None),
        }
    })
}

/// Runs `ssh-keygen` and reads back both halves and the fingerprint.
pub fn keygen(dir: &Path, name: &str, args: &[&str], passphrase: Option<&'static str>) -> KeyPair {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-C", name, "-N", passphrase.unwrap_or(""), "-f"])
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen {args:?} failed");
    let private = fs::read_to_string(&path).expect("read private key");
    let public = fs::read_to_string(path.with_extension("pub")).expect("read public key");
    KeyPair {
        private,
        public: public.trim().to_string(),
        fingerprint: fingerprint_of(&path.with_extension("pub")),
        passphrase,
    }
}

/// `ssh-keygen -l -E sha256` of a public key file: the `SHA256:…` field.
pub fn fingerprint_of(public_key_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(public_key_file)
        .output()
        .expect("run ssh-keygen -l");
    assert!(out.status.success(), "ssh-keygen -l failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

/// Deterministic, incompressible-looking test data.
pub fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names in a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The user the tests run as (sshd can only log in as this user when not run as root).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The sshd binary: `/usr/sbin/sshd`, or `FERRY_TEST_SSHD` if set.
fn sshd_path() -> PathBuf {
    std::env::var_os("FERRY_TEST_SSHD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sshd"))
}

/// An OpenSSH `sshd` on 127.0.0.1, with its own host key and config in a temporary directory,
/// accepting every key in [`TestKeys::authorized`] for [`current_user`]. Killed on drop.
pub struct Sshd {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its temporary directory (config, keys, log, uploads).
    pub dir: TempDir,
    /// A fresh, empty directory to upload into (absolute path).
    pub upload_dir: PathBuf,
    /// The `SHA256:…` fingerprint of its host key.
    pub host_fingerprint: String,
    /// The user to log in as.
    pub user: String,
}

impl Sshd {
    /// Starts sshd, or returns `None` after printing SKIPPED when it is not installed.
    /// Under `CI=true` a missing sshd fails the test instead.
    pub fn start() -> Option<Sshd> {
        let sshd = sshd_path();
        if !sshd.exists() || !have_ssh_keygen() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{} or ssh-keygen is missing, and CI=true: install openssh-server",
                    sshd.display()
                );
            }
            eprintln!(
                "SKIPPED: {} not found; install openssh-server to run the sshd tests",
                sshd.display()
            );
            return None;
        }
        if is_root() && !Path::new("/run/sshd").exists() {
            // The privilege separation directory; normally made by the service unit.
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
            fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let upload_dir = dir.path().join("upload");
        fs::create_dir(&upload_dir).expect("mkdir upload");
        let authorized: Vec<&str> = keys()
            .authorized()
            .iter()
            .map(|k| k.public.as_str())
            .collect();
        fs::write(
            dir.path().join("authorized_keys"),
            authorized.join("\n") + "\n",
        )
        .expect("write authorized_keys");
        let mut sshd = Sshd {
            child: None,
            port: 0,
            host_fingerprint: String::new(),
            user: current_user(),
            upload_dir,
            dir,
        };
        sshd.new_host_key();
        // A free port can be taken between our probe and sshd's bind: retry a few times.
        for _ in 0..5 {
            sshd.port = closed_port();
            if sshd.spawn() {
                return Some(sshd);
            }
        }
        panic!("sshd did not start: {}", sshd.log());
    }

    /// The target for this server with the given credentials.
    pub fn target(&self, auth: Auth) -> SftpTarget {
        SftpTarget::new("127.0.0.1", self.user.clone(), auth).with_port(self.port)
    }

    /// The upload directory as a remote path.
    pub fn upload_path(&self) -> String {
        self.upload_dir.to_string_lossy().into_owned()
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Stops sshd, gives it a new host key and starts it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.new_host_key();
        // The port was just released by our own process; poll until sshd can bind it again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "sshd did not restart: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn new_host_key(&mut self) {
        let key = self.dir.path().join("host_ed25519");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success());
        self.host_fingerprint = fingerprint_of(&key.with_extension("pub"));
    }

    /// Starts sshd on `self.port`; false if it exited (e.g. the port was taken).
    fn spawn(&mut self) -> bool {
        let d = self.dir.path().display();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_ed25519\n\
             PidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PubkeyAcceptedAlgorithms ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             UsePAM no\n\
             MaxAuthTries 20\n\
             Subsystem sftp internal-sftp\n\
             LogLevel VERBOSE\n",
            port = self.port
        );
        let config_path = self.dir.path().join("sshd_config");
        fs::write(&config_path, config).expect("write sshd_config");
        let log = fs::File::create(self.dir.path().join("sshd.log")).expect("create log");
        // sshd re-executes itself and insists on an absolute path.
        let mut child = Command::new(sshd_path())
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sshd");
        // Ready when it greets on its port; no fixed sleeps.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if greets(self.port) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sshd did not become ready: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}
