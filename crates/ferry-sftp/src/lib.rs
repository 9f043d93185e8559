//! SFTP for Ferry: a client that uploads atomically (`<name>.part`, then rename) with host-key
//! pinning in the manner of OpenSSH's `accept-new`, and — behind the `test-server` feature — a
//! small SFTP server for tests and `ferry demo`.
//!
//! Built on russh and russh-sftp; none of their types appear in this crate's public API, so they
//! can be upgraded here alone.
//!
//! ```no_run
//! # async fn example() -> Result<(), ferry_sftp::SftpError> {
//! use ferry_sftp::{Auth, HostKeyPolicy, SftpTarget, connect};
//! let target = SftpTarget::new("sftp.example.edu", "ferry", Auth::Password("secret".into()));
//! let session = connect(&target, &HostKeyPolicy::AcceptNew).await?;
//! let pin = session.host_key_fingerprint().to_string(); // store it; use HostKeyPolicy::Pinned(pin) next time
//! session.test(Some("inbox")).await?;
//! let report = session.upload(Some("inbox"), "notes.csv", &b"a,b\r\n"[..]).await?;
//! assert_eq!(report.remote_path, "inbox/notes.csv");
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod error;
mod key;
#[cfg(feature = "test-server")]
pub mod server;
mod target;
#[cfg(feature = "test-server")]
pub mod testing;

pub use client::{PART_SUFFIX, Session, Staged, UploadReport, UploadState, connect, connect_with};
pub use error::{AuthMethod, SftpError};
pub use key::check_private_key;
pub use target::{Auth, ClientOptions, DEFAULT_PORT, HostKeyPolicy, SftpTarget};
