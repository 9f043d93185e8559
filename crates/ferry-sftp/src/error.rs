//! The one error type of this crate: specific, human-readable, with a stable code.

use std::fmt;
use std::time::Duration;

/// How the client tried to log in; named in [`SftpError::AuthFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// Password authentication.
    Password,
    /// Public-key authentication with a private key.
    PublicKey {
        /// The SSH key type, e.g. `ssh-ed25519`, `rsa-sha2-512`, `ecdsa-sha2-nistp256`.
        key_type: String,
        /// The `SHA256:…` fingerprint of the public half of the key.
        fingerprint: String,
    },
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::Password => f.write_str("a password"),
            AuthMethod::PublicKey {
                key_type,
                fingerprint,
            } => write!(f, "the {key_type} key {fingerprint}"),
        }
    }
}

/// Everything that can go wrong talking to an SFTP server.
///
/// The `Display` text is meant for an administrator (Test Connection, Recent Runs);
/// [`SftpError::code`] is the stable identifier for the Sync Log and the error
/// dictionary. No variant ever carries a password, passphrase or private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SftpError {
    /// The target is not usable as given (empty host or user name).
    #[error("invalid SFTP settings: {reason}")]
    InvalidTarget {
        /// What is wrong.
        reason: String,
    },

    /// The host name did not resolve.
    #[error("could not resolve the host name \"{host}\": {reason}")]
    DnsFailure {
        /// The host name as configured.
        host: String,
        /// The resolver's answer.
        reason: String,
    },

    /// Nothing listens on the port (TCP RST).
    #[error("connection refused by {host}:{port}: no SSH server is listening on that port")]
    ConnectionRefused {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
    },

    /// The host or its network cannot be reached.
    #[error("cannot reach {host}:{port}: {reason}")]
    Unreachable {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// The operating system's reason.
        reason: String,
    },

    /// A step took longer than its time limit.
    #[error("timed out after {}s while {stage} ({host}:{port})", .after.as_secs_f32())]
    TimedOut {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// What was going on, e.g. "connecting", "logging in".
        stage: String,
        /// The limit that was exceeded.
        after: Duration,
    },

    /// The SSH handshake failed (not an SSH server, no common algorithm, connection dropped).
    #[error("SSH handshake with {host}:{port} failed: {reason}")]
    Handshake {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// What went wrong.
        reason: String,
    },

    /// The server presented a host key other than the pinned one.
    #[error(
        "the host key of {host}:{port} has changed: expected {expected}, the server presented {actual}. \
         If the server's key was replaced on purpose, re-pin the new key; otherwise someone may be \
         intercepting the connection"
    )]
    HostKeyChanged {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// The pinned fingerprint.
        expected: String,
        /// The fingerprint the server presented.
        actual: String,
    },

    /// The server refused the credentials.
    #[error(
        "authentication failed for user \"{username}\" with {method}{}",
        fmt_server_methods(.server_methods)
    )]
    AuthFailed {
        /// The user name that was tried.
        username: String,
        /// The method that was tried.
        method: AuthMethod,
        /// The methods the server says can continue (RFC 4252 "authentications that can
        /// continue"; some servers leave out the method that just failed). May be empty.
        server_methods: Vec<String>,
    },

    /// The private key is not a key we can parse.
    #[error("the private key could not be read: {reason}")]
    KeyUnreadable {
        /// Why not (never contains key material).
        reason: String,
    },

    /// The private key is encrypted and no passphrase was configured.
    #[error("the private key is protected by a passphrase, but no passphrase was given")]
    KeyPassphraseRequired,

    /// The passphrase does not decrypt the private key.
    #[error("the passphrase for the private key is wrong")]
    WrongPassphrase,

    /// The key type or format is not supported.
    #[error(
        "unsupported private key: {detail}. Use an ed25519, RSA or ECDSA key in OpenSSH or PKCS#8 format"
    )]
    UnsupportedKeyType {
        /// What was found.
        detail: String,
    },

    /// The server only accepts SHA-1 (`ssh-rsa`) signatures for RSA keys, which we never send.
    #[error(
        "the server at {host}:{port} accepts RSA keys only with SHA-1 signatures (ssh-rsa), which are \
         insecure and not used; enable rsa-sha2-256/512 on the server or use an ed25519 or ECDSA key"
    )]
    RsaSha1Only {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
    },

    /// The server does not offer the SFTP subsystem.
    #[error("the server at {host}:{port} does not offer SFTP: {reason}")]
    SftpUnavailable {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// What happened.
        reason: String,
    },

    /// The directory does not exist on the server.
    #[error("the directory \"{path}\" does not exist on the server")]
    DirectoryMissing {
        /// The remote directory.
        path: String,
    },

    /// The path exists but is not a directory.
    #[error("\"{path}\" on the server is not a directory")]
    NotADirectory {
        /// The remote path.
        path: String,
    },

    /// The server refused an operation for lack of permission.
    #[error("permission denied: cannot {operation} \"{path}\" on the server")]
    PermissionDenied {
        /// The remote path.
        path: String,
        /// What we tried, e.g. "create a file in".
        operation: String,
    },

    /// Writing or closing the file failed; most often the server's disk is full or a quota is exceeded.
    #[error(
        "writing \"{path}\" on the server failed (is the disk full or a quota exceeded?): {reason}"
    )]
    WriteFailed {
        /// The remote path being written.
        path: String,
        /// The server's message.
        reason: String,
    },

    /// The final file name already exists; we never overwrite.
    #[error("\"{path}\" already exists on the server; refusing to overwrite it")]
    AlreadyExists {
        /// The remote path.
        path: String,
    },

    /// Renaming the uploaded `.part` file to its final name failed.
    #[error("renaming \"{from}\" to \"{to}\" on the server failed: {reason}")]
    RenameFailed {
        /// The temporary name.
        from: String,
        /// The final name.
        to: String,
        /// The server's message.
        reason: String,
    },

    /// The file name is not a plain file name.
    #[error("invalid remote file name \"{name}\": {reason}")]
    InvalidFileName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading the local data to upload failed.
    #[error("reading the data to upload failed: {reason}")]
    SourceRead {
        /// The local I/O error.
        reason: String,
    },

    /// The connection dropped after it was established.
    #[error("the connection to {host}:{port} was lost: {reason}")]
    ConnectionLost {
        /// Host as configured.
        host: String,
        /// Port as configured.
        port: u16,
        /// What happened.
        reason: String,
    },

    /// The server answered an SFTP request in an unexpected way.
    #[error("the server failed to {operation} \"{path}\": {reason}")]
    Remote {
        /// What we asked for.
        operation: String,
        /// The remote path.
        path: String,
        /// The server's message.
        reason: String,
    },
}

fn fmt_server_methods(methods: &[String]) -> String {
    if methods.is_empty() {
        String::new()
    } else {
        format!(
            " (methods the server allows to continue with: {})",
            methods.join(", ")
        )
    }
}

impl SftpError {
    /// A stable snake_case code for the Sync Log, run reasons and the error dictionary.
    pub fn code(&self) -> &'static str {
        match self {
            SftpError::InvalidTarget { .. } => "sftp_invalid_target",
            SftpError::DnsFailure { .. } => "sftp_dns_failed",
            SftpError::ConnectionRefused { .. } => "sftp_connection_refused",
            SftpError::Unreachable { .. } => "sftp_host_unreachable",
            SftpError::TimedOut { .. } => "sftp_timeout",
            SftpError::Handshake { .. } => "sftp_handshake_failed",
            SftpError::HostKeyChanged { .. } => "sftp_host_key_changed",
            SftpError::AuthFailed { .. } => "sftp_auth_failed",
            SftpError::KeyUnreadable { .. } => "sftp_key_unreadable",
            SftpError::KeyPassphraseRequired => "sftp_key_passphrase_required",
            SftpError::WrongPassphrase => "sftp_key_wrong_passphrase",
            SftpError::UnsupportedKeyType { .. } => "sftp_key_unsupported",
            SftpError::RsaSha1Only { .. } => "sftp_rsa_sha1_only",
            SftpError::SftpUnavailable { .. } => "sftp_subsystem_unavailable",
            SftpError::DirectoryMissing { .. } => "sftp_directory_missing",
            SftpError::NotADirectory { .. } => "sftp_not_a_directory",
            SftpError::PermissionDenied { .. } => "sftp_permission_denied",
            SftpError::WriteFailed { .. } => "sftp_write_failed",
            SftpError::AlreadyExists { .. } => "sftp_file_exists",
            SftpError::RenameFailed { .. } => "sftp_rename_failed",
            SftpError::InvalidFileName { .. } => "sftp_invalid_file_name",
            SftpError::SourceRead { .. } => "sftp_source_read_failed",
            SftpError::ConnectionLost { .. } => "sftp_connection_lost",
            SftpError::Remote { .. } => "sftp_remote_error",
        }
    }

    /// Every code [`SftpError::code`] can return, for the error dictionary.
    pub const CODES: &'static [&'static str] = &[
        "sftp_invalid_target",
        "sftp_dns_failed",
        "sftp_connection_refused",
        "sftp_host_unreachable",
        "sftp_timeout",
        "sftp_handshake_failed",
        "sftp_host_key_changed",
        "sftp_auth_failed",
        "sftp_key_unreadable",
        "sftp_key_passphrase_required",
        "sftp_key_wrong_passphrase",
        "sftp_key_unsupported",
        "sftp_rsa_sha1_only",
        "sftp_subsystem_unavailable",
        "sftp_directory_missing",
        "sftp_not_a_directory",
        "sftp_permission_denied",
        "sftp_write_failed",
        "sftp_file_exists",
        "sftp_rename_failed",
        "sftp_invalid_file_name",
        "sftp_source_read_failed",
        "sftp_connection_lost",
        "sftp_remote_error",
    ];

    /// Whether trying again later may succeed without anyone changing a setting
    /// (network trouble, timeouts, a dropped connection, a full disk).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SftpError::DnsFailure { .. }
                | SftpError::ConnectionRefused { .. }
                | SftpError::Unreachable { .. }
                | SftpError::TimedOut { .. }
                | SftpError::ConnectionLost { .. }
                | SftpError::WriteFailed { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_listed() {
        let mut seen = std::collections::HashSet::new();
        for code in SftpError::CODES {
            assert!(code.starts_with("sftp_"), "{code}");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate {code}");
        }
        let sample = [
            SftpError::KeyPassphraseRequired,
            SftpError::WrongPassphrase,
            SftpError::AlreadyExists { path: "a".into() },
            SftpError::HostKeyChanged {
                host: "h".into(),
                port: 22,
                expected: "SHA256:a".into(),
                actual: "SHA256:b".into(),
            },
        ];
        for e in sample {
            assert!(SftpError::CODES.contains(&e.code()), "{}", e.code());
        }
    }

    #[test]
    fn auth_failure_names_user_method_and_server_methods() {
        let e = SftpError::AuthFailed {
            username: "ferry".into(),
            method: AuthMethod::PublicKey {
                key_type: "rsa-sha2-512".into(),
                fingerprint: "SHA256:abc".into(),
            },
            server_methods: vec!["publickey".into(), "password".into()],
        };
        assert_eq!(
            e.to_string(),
            "authentication failed for user \"ferry\" with the rsa-sha2-512 key SHA256:abc \
             (methods the server allows to continue with: publickey, password)"
        );
    }
}
