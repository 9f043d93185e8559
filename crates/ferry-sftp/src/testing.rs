//! Test helpers shared by every crate that tests SFTP (feature `test-server`): client keys made
//! with `ssh-keygen` at test time, an OpenSSH `sshd` on loopback, test data and polling.
//! Nothing here is committed key material.
//!
//! A test that needs sshd starts it with [`Sshd::start`] (or [`Sshd::start_with_password`]) and
//! returns early on `None`: without `/usr/sbin/sshd` (or `FERRY_TEST_SSHD`) such a test prints
//! SKIPPED and passes, except under `CI=true`, where it fails.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tempfile::TempDir;

use crate::{Auth, SftpTarget};

/// The passphrase of the protected test keys.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The password [`Sshd::start_with_password`] accepts for [`Sshd::user`].
pub const SSHD_PASSWORD: &str = "ferry-sftp-password-test";

/// `openssl passwd -6 -salt ferrysftptest` of [`SSHD_PASSWORD`].
const SSHD_PASSWORD_HASH: &str = "$6$ferrysftptest$GCxYWSg2YWjJ8Dp3GXTifl9k/frjsLu.1F7rolwyaNnaxTiKXBS.4atrfFucIv8qQSWEoJ2Z1EVmpkbqJUVU..";

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
        self.auth_with(self.passphrase)
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

/// Test keys, generated once per process (in parallel) into a temporary directory that is then
/// removed.
pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        assert!(
            have_ssh_keygen(),
            "ssh-keygen (openssh-client) is needed to generate test keys"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let p = Some(PASSPHRASE);
        // RSA generation dominates: run ssh-keygen for every key at once.
        std::thread::scope(|s| {
            let spawn = |name: &'static str, args: &'static [&'static str], pass| {
                s.spawn(move || keygen(d, name, args, pass))
            };
            let ed25519 = spawn("ed25519", &["-t", "ed25519"], None);
            let rsa_pkcs8 = spawn(
                "rsa_pkcs8",
                &["-t", "rsa", "-b", "3072", "-m", "PKCS8"],
                None,
            );
            let rsa_openssh = spawn("rsa", &["-t", "rsa", "-b", "2048"], None);
            let ecdsa = spawn("ecdsa", &["-t", "ecdsa", "-b", "256"], None);
            let ed25519_protected = spawn("ed25519_p", &["-t", "ed25519"], p);
            let ecdsa_pkcs8_protected =
                spawn("ecdsa_p8", &["-t", "ecdsa", "-b", "384", "-m", "PKCS8"], p);
            let ecdsa_legacy_pem_protected =
                spawn("ecdsa_pem", &["-t", "ecdsa", "-b", "256", "-m", "PEM"], p);
            let stranger = spawn("stranger", &["-t", "ed25519"], None);
            let join = |h: std::thread::ScopedJoinHandle<'_, KeyPair>| {
                h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
            };
            TestKeys {
                ed25519: join(ed25519),
                rsa_pkcs8: join(rsa_pkcs8),
                rsa_openssh: join(rsa_openssh),
                ecdsa: join(ecdsa),
                ed25519_protected: join(ed25519_protected),
                ecdsa_pkcs8_protected: join(ecdsa_pkcs8_protected),
                ecdsa_legacy_pem_protected: join(ecdsa_legacy_pem_protected),
                stranger: join(stranger),
            }
        })
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

/// Whether this process may run a command in a private mount namespace.
fn can_unshare_mounts() -> bool {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The sshd binary: `/usr/sbin/sshd`, or `FERRY_TEST_SSHD` if set.
fn sshd_path() -> PathBuf {
    std::env::var_os("FERRY_TEST_SSHD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sshd"))
}

/// A test that cannot run here: fails under `CI=true`, else prints SKIPPED.
fn unavailable(what: &str) -> Option<Sshd> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}, and CI=true");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// An OpenSSH `sshd` on 127.0.0.1, with its own host key and config in a temporary directory,
/// accepting every key in [`TestKeys::authorized`] for [`current_user`]. Killed on drop.
pub struct Sshd {
    child: Option<Child>,
    /// Whether it runs with a private `/etc/shadow` that gives [`Sshd::user`] [`SSHD_PASSWORD`].
    password: bool,
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

impl std::fmt::Debug for Sshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sshd")
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_fingerprint", &self.host_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Sshd {
    /// Starts sshd (key logins only), or returns `None` after printing SKIPPED when it is not
    /// installed. Under `CI=true` a missing sshd fails the test instead.
    pub fn start() -> Option<Sshd> {
        Sshd::start_inner(false, None)
    }

    /// [`Sshd::start`] with its files, and the upload directory, in a directory made inside
    /// `root` (the upload benchmark puts them on a memory file system).
    pub fn start_in(root: &Path) -> Option<Sshd> {
        Sshd::start_inner(false, Some(root))
    }

    /// Starts sshd accepting [`SSHD_PASSWORD`] for [`Sshd::user`] as well as the keys.
    ///
    /// No account is created or changed: sshd runs in a private mount namespace
    /// (`unshare -m`) in which a file of ours is bind-mounted over `/etc/shadow`, so the
    /// password exists only for this sshd. That needs root; elsewhere the test is skipped
    /// (and fails under `CI=true`), like a missing sshd.
    pub fn start_with_password() -> Option<Sshd> {
        Sshd::start_inner(true, None)
    }

    fn start_inner(password: bool, root: Option<&Path>) -> Option<Sshd> {
        let sshd = sshd_path();
        if !sshd.exists() || !have_ssh_keygen() {
            return unavailable(&format!(
                "{} or ssh-keygen not found; install openssh-server to run the sshd tests",
                sshd.display()
            ));
        }
        if password && !(is_root() && can_unshare_mounts()) {
            return unavailable(
                "password login to sshd needs root and `unshare -m` (a private /etc/shadow)",
            );
        }
        if is_root() && !Path::new("/run/sshd").exists() {
            // The privilege separation directory; normally made by the service unit.
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
            fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let dir = match root {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
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
        let user = current_user();
        if password {
            let shadow = dir.path().join("shadow");
            fs::write(
                &shadow,
                format!("{user}:{SSHD_PASSWORD_HASH}:19000:0:99999:7:::\n"),
            )
            .expect("write shadow");
            fs::set_permissions(&shadow, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let mut sshd = Sshd {
            child: None,
            password,
            port: 0,
            host_fingerprint: String::new(),
            user,
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
        // Root may log in with a password only where the password is ours (see above).
        let root_login = if self.password {
            "yes"
        } else {
            "prohibit-password"
        };
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
             PermitRootLogin {root_login}\n\
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
        let mut command = if self.password {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$1" /etc/shadow && exec "$2" -D -e -f "$3""#)
                .arg("sh")
                .arg(self.dir.path().join("shadow"))
                .arg(sshd_path())
                .arg(&config_path);
            c
        } else {
            let mut c = Command::new(sshd_path());
            c.args(["-D", "-e", "-f"]).arg(&config_path);
            c
        };
        let mut child = command
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
