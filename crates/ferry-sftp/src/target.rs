//! What to connect to, how to log in, and which host key to trust.

use std::time::Duration;

use secrecy::SecretString;

/// The default SSH port.
pub const DEFAULT_PORT: u16 = 22;

/// An SFTP server and the account to log in with.
///
/// `Debug` never shows the password, private key or passphrase.
#[derive(Debug, Clone)]
pub struct SftpTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port, [`DEFAULT_PORT`] (22) unless the server says otherwise.
    pub port: u16,
    /// The account on the server.
    pub username: String,
    /// How to log in.
    pub auth: Auth,
}

impl SftpTarget {
    /// A target on port 22.
    pub fn new(host: impl Into<String>, username: impl Into<String>, auth: Auth) -> Self {
        Self {
            host: host.into(),
            port: DEFAULT_PORT,
            username: username.into(),
            auth,
        }
    }

    /// The same target on another port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Credentials for [`SftpTarget`].
#[derive(Debug, Clone)]
pub enum Auth {
    /// Password authentication.
    Password(SecretString),
    /// Public-key authentication.
    PrivateKey {
        /// The private key as text: OpenSSH (`BEGIN OPENSSH PRIVATE KEY`) or PKCS#8
        /// (`BEGIN PRIVATE KEY` / `BEGIN ENCRYPTED PRIVATE KEY`), also PKCS#1 RSA and SEC1 EC.
        /// ed25519, RSA and ECDSA (P-256/384/521) keys are supported.
        pem: SecretString,
        /// The passphrase, for an encrypted key.
        passphrase: Option<SecretString>,
    },
}

/// Which server host key to trust, like OpenSSH's `StrictHostKeyChecking=accept-new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Trust whatever key the server presents; the caller stores
    /// [`Session::host_key_fingerprint`](crate::Session::host_key_fingerprint) and pins it from
    /// then on. Also the way to re-pin after a deliberate key change.
    AcceptNew,
    /// Trust only the key with this `SHA256:…` fingerprint (as printed by `ssh-keygen -l`);
    /// any other key fails with [`SftpError::HostKeyChanged`](crate::SftpError::HostKeyChanged).
    Pinned(String),
}

/// Tuning for the client. `Default` is what production uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Limit for resolving, connecting, the SSH handshake, login and starting SFTP, together.
    pub connect_timeout: Duration,
    /// Limit for the server to answer any one SFTP request.
    pub request_timeout: Duration,
    /// How many write requests may await the server's answer at once (russh-sftp's default is 16).
    pub max_writes_in_flight: usize,
    /// Bytes per SFTP write request (capped by the server's `limits@openssh.com`, if it sends them).
    /// The default keeps each write request, with its 29-byte header and a handle of up to 35
    /// bytes, inside one 32 KiB SSH packet (OpenSSH's channel maximum): a 32 KiB write went out
    /// as a full packet plus a 29-byte one, twice the packets for sshd to decrypt, and uploads
    /// to OpenSSH's sshd ran at 0.87 of `sftp` with the same cipher instead of about 0.95.
    pub write_chunk_size: u32,
    /// Ask the server to flush the file to disk (`fsync@openssh.com`, where offered) before
    /// closing and renaming it, so a confirmed upload survives a server crash.
    pub fsync: bool,
    /// With `fsync`: once this many bytes are written, a second SFTP channel (on OpenSSH its own
    /// sftp-server) asks the server to flush what it has of the file so far, while the upload
    /// goes on, and again after each further such amount, so that the flush before the rename
    /// waits only for the rest, not for the whole file. `None`: one flush, at the end.
    pub flush_ahead: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            max_writes_in_flight: 64,
            write_chunk_size: 32 * 1024 - 64,
            fsync: true,
            flush_ahead: Some(64 * 1024 * 1024),
        }
    }
}
