//! The SFTP client: connect with host-key pinning, test a directory, upload atomically.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use russh::client::{AuthResult, Handle};
use russh::keys::{
    Algorithm, EcdsaCurve, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate,
};
use russh::{ChannelMsg, Disconnect};
use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpClientError;
use russh_sftp::protocol::{OpenFlags, StatusCode};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::AuthMethod;
use crate::key::{fingerprint, load_private_key, normalize_fingerprint};
use crate::{Auth, ClientOptions, HostKeyPolicy, SftpError, SftpTarget};

/// Suffix of the temporary name an upload is written under before the rename.
pub const PART_SUFFIX: &str = ".part";

/// What [`Session::upload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// Bytes written, as confirmed by the server's size of the file.
    pub bytes: u64,
    /// The final path of the file on the server.
    pub remote_path: String,
    /// Flushes to disk that ran while the upload went on ([`ClientOptions::flush_ahead`]).
    pub flushes_ahead: u32,
}

/// A complete `.part` file that [`Session::stage`] wrote and [`Session::publish`] renames.
#[derive(Debug)]
#[must_use = "a staged upload is published only by Session::publish"]
pub struct Staged {
    part_path: String,
    final_path: String,
    bytes: u64,
    flushes_ahead: u32,
}

impl Staged {
    /// Bytes written, as confirmed by the server's size of the `.part` file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What a directory holds under an upload's name ([`Session::upload_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// The file under its final name: the rename happened.
    Finished,
    /// Only the `.part` file: the upload did not reach its rename.
    Partial,
    /// Neither.
    Absent,
}

/// Connects with [`ClientOptions::default`]. See [`connect_with`].
pub async fn connect(target: &SftpTarget, policy: &HostKeyPolicy) -> Result<Session, SftpError> {
    connect_with(target, policy, &ClientOptions::default()).await
}

/// Resolves the host, connects, checks the host key against `policy`, logs in and starts SFTP.
///
/// A private key is read before any network traffic, so key problems are reported even when the
/// server is down. All network steps together are limited by [`ClientOptions::connect_timeout`].
pub async fn connect_with(
    target: &SftpTarget,
    policy: &HostKeyPolicy,
    options: &ClientOptions,
) -> Result<Session, SftpError> {
    let host = target.host.trim();
    if host.is_empty() {
        return Err(SftpError::InvalidTarget {
            reason: "the host is empty".into(),
        });
    }
    if target.username.is_empty() {
        return Err(SftpError::InvalidTarget {
            reason: "the user name is empty".into(),
        });
    }
    let port = target.port;
    let key = match &target.auth {
        Auth::Password(_) => None,
        Auth::PrivateKey { pem, passphrase } => Some(Arc::new(load_private_key(
            pem.expose_secret(),
            passphrase.as_ref().map(|p| p.expose_secret()),
        )?)),
    };

    let started = Instant::now();
    let limit = options.connect_timeout;
    let timed_out = |stage: &str| SftpError::TimedOut {
        host: host.to_string(),
        port,
        stage: stage.to_string(),
        after: limit,
    };

    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(limit, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(timed_out("resolving the host name")),
            Ok(Err(e)) => {
                return Err(SftpError::DnsFailure {
                    host: host.to_string(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(SftpError::DnsFailure {
            host: host.to_string(),
            reason: "the name has no addresses".into(),
        });
    }

    let mut last_error: Option<io::Error> = None;
    let mut socket = None;
    for addr in &addrs {
        let remaining = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out("connecting")),
            Ok(Ok(s)) => {
                socket = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(e),
        }
    }
    let Some(socket) = socket else {
        let e = last_error.unwrap_or_else(|| io::Error::other("no address to connect to"));
        return Err(match e.kind() {
            io::ErrorKind::ConnectionRefused => SftpError::ConnectionRefused {
                host: host.to_string(),
                port,
            },
            io::ErrorKind::TimedOut => timed_out("connecting"),
            _ => SftpError::Unreachable {
                host: host.to_string(),
                port,
                reason: e.to_string(),
            },
        });
    };
    // Small SFTP requests and acks must not wait for Nagle.
    let _ = socket.set_nodelay(true);

    let seen = Arc::new(Mutex::new(None::<SeenKey>));
    let handler = ClientHandler {
        pinned: match policy {
            HostKeyPolicy::AcceptNew => None,
            HostKeyPolicy::Pinned(fp) => Some(normalize_fingerprint(fp)),
        },
        seen: seen.clone(),
    };
    let stage = Mutex::new("performing the SSH handshake");
    let ctx = Ctx {
        host: host.to_string(),
        port,
    };
    let remaining = limit.saturating_sub(started.elapsed());
    let setup = async {
        let config = Arc::new(ssh_config());
        let mut handle = match russh::client::connect_stream(config, socket, handler).await {
            Ok(h) => h,
            Err(e) => {
                let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
                return Err(handshake_error(&ctx, e, seen));
            }
        };
        *stage.lock().unwrap_or_else(PoisonError::into_inner) = "logging in";
        authenticate(&ctx, &mut handle, &target.username, &target.auth, key).await?;
        *stage.lock().unwrap_or_else(PoisonError::into_inner) = "starting SFTP";
        let sftp = open_sftp(&ctx, &handle, options).await?;
        Ok::<_, SftpError>((handle, sftp))
    };
    let (handle, sftp) = match tokio::time::timeout(remaining, setup).await {
        Ok(result) => result?,
        Err(_) => {
            let stage = *stage.lock().unwrap_or_else(PoisonError::into_inner);
            return Err(timed_out(stage));
        }
    };
    let fingerprint = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|s| s.fingerprint.clone())
        .ok_or_else(|| SftpError::Handshake {
            host: host.to_string(),
            port,
            reason: "the server never presented a host key".into(),
        })?;
    tracing::debug!(host, port, %fingerprint, "SFTP session established");
    Ok(Session {
        handle,
        sftp,
        ctx,
        fingerprint,
        options: options.clone(),
    })
}

#[derive(Debug, Clone)]
struct SeenKey {
    fingerprint: String,
    /// The pinned fingerprint it was refused against, if it was refused.
    refused_against: Option<String>,
    certificate: bool,
}

struct ClientHandler {
    pinned: Option<String>,
    seen: Arc<Mutex<Option<SeenKey>>>,
}

impl russh::client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // No certificate algorithms are advertised, so a certificate should never arrive;
        // if one does it is refused, and its key only names it in the message.
        let (key_data, certificate) = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (key.key_data(), false),
            PublicKeyOrCertificate::Certificate(cert) => (cert.public_key(), true),
        };
        let fp = key_data.fingerprint(HashAlg::Sha256).to_string();
        let accepted = !certificate && self.pinned.as_deref().is_none_or(|p| p == fp);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(SeenKey {
            fingerprint: fp,
            refused_against: if accepted { None } else { self.pinned.clone() },
            certificate,
        });
        Ok(accepted)
    }
}

/// Host and port, for error messages.
#[derive(Debug, Clone)]
struct Ctx {
    host: String,
    port: u16,
}

impl Ctx {
    fn lost(&self, reason: impl Into<String>) -> SftpError {
        SftpError::ConnectionLost {
            host: self.host.clone(),
            port: self.port,
            reason: reason.into(),
        }
    }
}

/// Host-key and public-key signature algorithms we accept: no `ssh-rsa` (SHA-1).
pub(crate) const ACCEPTED_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

fn ssh_config() -> russh::client::Config {
    use russh::{Preferred, cipher, compression};
    // Explicit algorithm lists (notes, pitfall 6): no ssh-rsa (SHA-1) host keys; AES-GCM first,
    // which is the fastest with hardware AES; no compression (CSV compresses well, but the CPU
    // on both ends is the limit on fast links, and zlib is a known attack surface).
    const CIPHERS: &[cipher::Name] = &[
        cipher::AES_256_GCM,
        cipher::AES_128_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_128_CTR,
    ];
    const COMPRESSION: &[compression::Name] = &[compression::NONE];
    russh::client::Config {
        preferred: Preferred {
            key: Cow::Borrowed(ACCEPTED_KEY_ALGORITHMS),
            cipher: Cow::Borrowed(CIPHERS),
            compression: Cow::Borrowed(COMPRESSION),
            ..Preferred::DEFAULT
        },
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

fn handshake_error(ctx: &Ctx, error: russh::Error, seen: Option<SeenKey>) -> SftpError {
    if let Some(seen) = seen {
        if let Some(expected) = seen.refused_against {
            return SftpError::HostKeyChanged {
                host: ctx.host.clone(),
                port: ctx.port,
                expected,
                actual: seen.fingerprint,
            };
        }
        if seen.certificate {
            return SftpError::Handshake {
                host: ctx.host.clone(),
                port: ctx.port,
                reason: "the server presented a host certificate, which is not supported".into(),
            };
        }
    }
    let reason = match &error {
        russh::Error::Version => {
            "the server did not answer with an SSH greeting; is this an SSH server?".to_string()
        }
        russh::Error::NoCommonAlgo { kind, theirs, .. } => format!(
            "no common {kind:?} algorithm; the server offers {}",
            theirs.join(", ")
        ),
        russh::Error::HUP | russh::Error::Disconnect => {
            "the server closed the connection during the handshake".to_string()
        }
        russh::Error::IO(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".to_string()
        }
        other => other.to_string(),
    };
    SftpError::Handshake {
        host: ctx.host.clone(),
        port: ctx.port,
        reason,
    }
}

async fn authenticate(
    ctx: &Ctx,
    handle: &mut Handle<ClientHandler>,
    username: &str,
    auth: &Auth,
    key: Option<Arc<PrivateKey>>,
) -> Result<(), SftpError> {
    let lost = |e: russh::Error| ctx.lost(format!("while logging in: {e}"));
    let (result, method) = match (auth, key) {
        (Auth::PrivateKey { .. }, Some(key)) => {
            let method = AuthMethod::PublicKey {
                key_type: key.algorithm().as_str().to_string(),
                fingerprint: fingerprint(key.public_key()),
            };
            if key.algorithm().is_rsa() {
                // Never sign with SHA-1 (ssh-rsa): use what the server lists, else try SHA-2.
                let hashes = match handle.best_supported_rsa_hash().await.map_err(lost)? {
                    Some(Some(hash)) => vec![hash],
                    Some(None) => {
                        return Err(SftpError::RsaSha1Only {
                            host: ctx.host.clone(),
                            port: ctx.port,
                        });
                    }
                    None => vec![HashAlg::Sha512, HashAlg::Sha256],
                };
                let mut result = None;
                let mut method = method;
                for hash in hashes {
                    let signing = PrivateKeyWithHashAlg::new(key.clone(), Some(hash));
                    method = AuthMethod::PublicKey {
                        key_type: signing.algorithm().as_str().to_string(),
                        fingerprint: fingerprint(key.public_key()),
                    };
                    let r = handle
                        .authenticate_publickey(username, signing)
                        .await
                        .map_err(lost)?;
                    let done = r.success();
                    result = Some(r);
                    if done {
                        break;
                    }
                }
                let result = result.unwrap_or(AuthResult::Failure {
                    remaining_methods: russh::MethodSet::empty(),
                    partial_success: false,
                });
                (result, method)
            } else {
                let r = handle
                    .authenticate_publickey(username, PrivateKeyWithHashAlg::new(key, None))
                    .await
                    .map_err(lost)?;
                (r, method)
            }
        }
        (Auth::Password(password), _) => {
            let r = handle
                .authenticate_password(username, password.expose_secret())
                .await
                .map_err(lost)?;
            (r, AuthMethod::Password)
        }
        (Auth::PrivateKey { .. }, None) => {
            return Err(SftpError::KeyUnreadable {
                reason: "the private key was not loaded".into(),
            });
        }
    };
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => Err(SftpError::AuthFailed {
            username: username.to_string(),
            method,
            server_methods: remaining_methods.iter().map(String::from).collect(),
        }),
    }
}

async fn open_sftp(
    ctx: &Ctx,
    handle: &Handle<ClientHandler>,
    options: &ClientOptions,
) -> Result<SftpSession, SftpError> {
    let unavailable = |reason: String| SftpError::SftpUnavailable {
        host: ctx.host.clone(),
        port: ctx.port,
        reason,
    };
    let mut channel = handle
        .channel_open_session()
        .await
        .map_err(|e| unavailable(format!("opening a session channel failed: {e}")))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| unavailable(format!("requesting the sftp subsystem failed: {e}")))?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => {
                return Err(unavailable("the server refused the sftp subsystem".into()));
            }
            Some(ChannelMsg::Close | ChannelMsg::Eof) | None => {
                return Err(unavailable(
                    "the server closed the channel instead of starting SFTP".into(),
                ));
            }
            Some(_) => {}
        }
    }
    let config = russh_sftp::client::Config {
        max_concurrent_writes: options.max_writes_in_flight.max(1),
        max_write_packet_len: options.write_chunk_size.max(1024),
        request_timeout_secs: options.request_timeout.as_secs().max(1),
        ..Default::default()
    };
    SftpSession::new_with_config(channel.into_stream(), config)
        .await
        .map_err(|e| unavailable(format!("the SFTP protocol did not start: {e}")))
}

/// A logged-in SFTP session. Dropping it closes the connection; [`Session::close`] does so politely.
pub struct Session {
    handle: Handle<ClientHandler>,
    sftp: SftpSession,
    ctx: Ctx,
    fingerprint: String,
    options: ClientOptions,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.ctx.host)
            .field("port", &self.ctx.port)
            .field("host_key_fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The flushes of [`ClientOptions::flush_ahead`]: a second SFTP channel with the `.part` file
/// open, and at most one `fsync@openssh.com` on it in flight. If the server refuses the second
/// channel, the upload goes on with the one flush at the end.
struct FlushAhead {
    every: Option<u64>,
    next_at: u64,
    flusher: Option<(SftpSession, Arc<russh_sftp::client::fs::File>)>,
    running: Option<tokio::task::JoinHandle<Result<(), SftpClientError>>>,
    done: u32,
}

impl FlushAhead {
    fn new(every: Option<u64>) -> FlushAhead {
        FlushAhead {
            every: every.filter(|n| *n > 0),
            next_at: every.unwrap_or(0),
            flusher: None,
            running: None,
            done: 0,
        }
    }

    /// `bytes` of the file have been handed to the pipeline: starts a flush if one is due and
    /// none is running.
    async fn wrote(&mut self, s: &Session, path: &str, bytes: u64) -> Result<(), SftpError> {
        let Some(every) = self.every else {
            return Ok(());
        };
        if bytes < self.next_at || self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        self.reap(s, path).await?;
        if self.flusher.is_none() {
            let opened = tokio::time::timeout(s.options.request_timeout, async {
                let sftp = open_sftp(&s.ctx, &s.handle, &s.options).await.ok()?;
                let file = sftp.open_with_flags(path, OpenFlags::READ).await.ok()?;
                Some((sftp, Arc::new(file)))
            })
            .await
            .ok()
            .flatten();
            if opened.is_none() {
                tracing::debug!(
                    path,
                    "no second SFTP channel; the file is flushed once, at the end"
                );
                self.every = None;
                return Ok(());
            }
            self.flusher = opened;
        }
        if let Some((_, file)) = &self.flusher {
            let file = file.clone();
            self.running = Some(tokio::spawn(async move { file.sync_all().await }));
        }
        self.next_at = bytes + every;
        Ok(())
    }

    /// Waits for the running flush, if any; its failure fails the upload.
    async fn reap(&mut self, s: &Session, path: &str) -> Result<(), SftpError> {
        if let Some(running) = self.running.take() {
            match running.await {
                Ok(Ok(())) => self.done += 1,
                Ok(Err(e)) => return Err(s.map(Op::Write, path, e)),
                Err(e) => return Err(s.ctx.lost(format!("the flush task failed: {e}"))),
            }
        }
        Ok(())
    }

    /// The writes are done: waits for the running flush and closes the second channel.
    async fn finish(&mut self, s: &Session, path: &str) -> Result<(), SftpError> {
        self.reap(s, path).await?;
        if let Some((sftp, file)) = self.flusher.take() {
            drop(file);
            let _ = sftp.close().await;
        }
        Ok(())
    }
}

impl Drop for FlushAhead {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.abort();
        }
    }
}

/// What an SFTP request was for, to word its error.
#[derive(Clone, Copy)]
enum Op {
    StatDirectory,
    CreateIn,
    Write,
    Stat,
    Rename,
    Remove,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::StatDirectory => "read",
            Op::CreateIn => "create a file in",
            Op::Write => "write",
            Op::Stat => "read the attributes of",
            Op::Rename => "rename",
            Op::Remove => "remove",
        }
    }
}

impl Session {
    /// The server's host key as `SHA256:…` (what `ssh-keygen -l` prints). With
    /// [`HostKeyPolicy::AcceptNew`] this is the key to store and pin from now on.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Checks that `directory` (the login directory if `None`) exists and is writable, by creating
    /// and removing a small temporary file in it.
    pub async fn test(&self, directory: Option<&str>) -> Result<(), SftpError> {
        let dir = self.check_directory(directory).await?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let probe = join(
            &dir,
            &format!(".ferry-test-{}-{nanos}.tmp", std::process::id()),
        );
        let mut file = self
            .sftp
            .open_with_flags(
                probe.as_str(),
                OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| self.map(Op::CreateIn, display_dir(&dir), e))?;
        let written = async {
            file.write_all(b"ferry connection test\n").await?;
            file.shutdown().await
        }
        .await;
        if let Err(e) = written {
            let _ = self.sftp.remove_file(probe.as_str()).await;
            return Err(self.write_failed(&probe, e));
        }
        self.sftp
            .remove_file(probe.as_str())
            .await
            .map_err(|e| self.map(Op::Remove, &probe, e))
    }

    /// Uploads `reader` as `name` in `directory` (the login directory if `None`).
    ///
    /// Writes `<name>.part` with pipelined requests, waits for every write and the close to be
    /// confirmed (and, with [`ClientOptions::fsync`], the flush to disk), checks the size the
    /// server reports, then renames it to `name`. An existing `name` is never overwritten
    /// ([`SftpError::AlreadyExists`]). If the upload fails after the `.part` file was created it
    /// is removed where possible; if this future is dropped mid-way, only the `.part` file is left.
    ///
    /// [`stage`](Session::stage) and [`publish`](Session::publish) are the two halves, for a
    /// caller that records something between the complete `.part` file and the rename.
    pub async fn upload<R>(
        &self,
        directory: Option<&str>,
        name: &str,
        reader: R,
    ) -> Result<UploadReport, SftpError>
    where
        R: AsyncRead + Unpin,
    {
        let staged = self.stage(directory, name, reader).await?;
        self.publish(staged).await
    }

    /// The first half of [`upload`](Session::upload): writes `<name>.part` (replacing one an
    /// earlier attempt left) and checks that the server holds every byte, without renaming it.
    pub async fn stage<R>(
        &self,
        directory: Option<&str>,
        name: &str,
        mut reader: R,
    ) -> Result<Staged, SftpError>
    where
        R: AsyncRead + Unpin,
    {
        validate_name(name)?;
        let dir = self.check_directory(directory).await?;
        let final_path = join(&dir, name);
        let part_path = format!("{final_path}{PART_SUFFIX}");

        match self.sftp.symlink_metadata(final_path.as_str()).await {
            Ok(_) => return Err(SftpError::AlreadyExists { path: final_path }),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => {}
            Err(e) => return Err(self.map(Op::Stat, &final_path, e)),
        }
        let mut file = self
            .sftp
            .open_with_flags(
                part_path.as_str(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| self.map(Op::CreateIn, display_dir(&dir), e))?;

        let mut bytes: u64 = 0;
        let mut buf = vec![0u8; 256 * 1024];
        let mut ahead = FlushAhead::new(if self.options.fsync {
            self.options.flush_ahead
        } else {
            None
        });
        let written: Result<(), SftpError> = async {
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| SftpError::SourceRead {
                        reason: e.to_string(),
                    })?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| self.write_failed(&part_path, e))?;
                bytes += n as u64;
                ahead.wrote(self, &part_path, bytes).await?;
            }
            ahead.finish(self, &part_path).await?;
            if self.options.fsync {
                // Drains the pipeline, then fsync@openssh.com where the server offers it.
                file.flush()
                    .await
                    .map_err(|e| self.write_failed(&part_path, e))?;
            }
            // Waits for every pending write and the CLOSE; write errors often surface only here.
            file.shutdown()
                .await
                .map_err(|e| self.write_failed(&part_path, e))
        }
        .await;
        drop(file);
        if let Err(e) = written {
            self.discard(&part_path).await;
            return Err(e);
        }

        let size = match self.sftp.metadata(part_path.as_str()).await {
            Ok(meta) => meta.size,
            Err(e) => {
                self.discard(&part_path).await;
                return Err(self.map(Op::Stat, &part_path, e));
            }
        };
        if size != Some(bytes) {
            self.discard(&part_path).await;
            return Err(SftpError::WriteFailed {
                path: part_path,
                reason: match size {
                    Some(size) => format!("sent {bytes} bytes but the server has {size}"),
                    None => format!("sent {bytes} bytes but the server reports no size"),
                },
            });
        }

        Ok(Staged {
            part_path,
            final_path,
            bytes,
            flushes_ahead: ahead.done,
        })
    }

    /// The second half of [`upload`](Session::upload): renames a staged `.part` file to its
    /// final name. An existing file of that name is never overwritten.
    pub async fn publish(&self, staged: Staged) -> Result<UploadReport, SftpError> {
        let Staged {
            part_path,
            final_path,
            bytes,
            flushes_ahead,
        } = staged;
        if let Err(e) = self
            .sftp
            .rename(part_path.as_str(), final_path.as_str())
            .await
        {
            let exists = self
                .sftp
                .symlink_metadata(final_path.as_str())
                .await
                .is_ok();
            self.discard(&part_path).await;
            return Err(if exists {
                SftpError::AlreadyExists { path: final_path }
            } else {
                match self.map(Op::Rename, &part_path, e) {
                    SftpError::Remote { reason, .. } => SftpError::RenameFailed {
                        from: part_path,
                        to: final_path,
                        reason,
                    },
                    other => other,
                }
            });
        }
        tracing::debug!(remote_path = %final_path, bytes, "SFTP upload confirmed");
        Ok(UploadReport {
            bytes,
            remote_path: final_path,
            flushes_ahead,
        })
    }

    /// What is at `name` in `directory` (the login directory if `None`): the finished file, the
    /// `.part` file of an upload that did not finish, or neither. For a caller that resumes an
    /// upload an earlier process started and did not see end.
    pub async fn upload_state(
        &self,
        directory: Option<&str>,
        name: &str,
    ) -> Result<UploadState, SftpError> {
        validate_name(name)?;
        let dir = self.check_directory(directory).await?;
        let final_path = join(&dir, name);
        let part_path = format!("{final_path}{PART_SUFFIX}");
        for (path, found) in [
            (final_path, UploadState::Finished),
            (part_path, UploadState::Partial),
        ] {
            match self.sftp.symlink_metadata(path.as_str()).await {
                Ok(_) => return Ok(found),
                Err(e) if is_status(&e, StatusCode::NoSuchFile) => {}
                Err(e) => return Err(self.map(Op::Stat, &path, e)),
            }
        }
        Ok(UploadState::Absent)
    }

    /// Removes the `.part` file an unfinished upload of `name` left, if there is one.
    pub async fn discard_partial(
        &self,
        directory: Option<&str>,
        name: &str,
    ) -> Result<(), SftpError> {
        validate_name(name)?;
        let dir = self.check_directory(directory).await?;
        let part_path = format!("{}{PART_SUFFIX}", join(&dir, name));
        match self.sftp.remove_file(part_path.as_str()).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(()),
            Err(e) => Err(self.map(Op::Remove, &part_path, e)),
        }
    }

    /// Closes the SFTP channel and the connection.
    pub async fn close(self) -> Result<(), SftpError> {
        let _ = self.sftp.close().await;
        self.handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await
            .map_err(|e| self.ctx.lost(e.to_string()))
    }

    /// Returns the directory path to use, after checking it exists and is a directory.
    async fn check_directory(&self, directory: Option<&str>) -> Result<String, SftpError> {
        let dir = match directory.map(str::trim) {
            None | Some("") => ".".to_string(),
            Some("/") => "/".to_string(),
            Some(d) => d.trim_end_matches('/').to_string(),
        };
        match self.sftp.metadata(dir.as_str()).await {
            Ok(meta) if meta.is_dir() => Ok(dir),
            Ok(_) => Err(SftpError::NotADirectory { path: dir }),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => {
                Err(SftpError::DirectoryMissing { path: dir })
            }
            Err(e) => Err(self.map(Op::StatDirectory, &dir, e)),
        }
    }

    async fn discard(&self, part_path: &str) {
        if let Err(e) = self.sftp.remove_file(part_path).await {
            tracing::debug!(path = part_path, error = %e, "could not remove the partial upload");
        }
    }

    fn write_failed(&self, path: &str, e: io::Error) -> SftpError {
        match e.kind() {
            io::ErrorKind::TimedOut => SftpError::TimedOut {
                host: self.ctx.host.clone(),
                port: self.ctx.port,
                stage: format!("writing \"{path}\""),
                after: self.options.request_timeout,
            },
            io::ErrorKind::PermissionDenied => SftpError::PermissionDenied {
                path: path.to_string(),
                operation: Op::Write.verb().into(),
            },
            _ if self.sftp_gone(&e) => self.ctx.lost(e.to_string()),
            _ => SftpError::WriteFailed {
                path: path.to_string(),
                reason: e.to_string(),
            },
        }
    }

    fn sftp_gone(&self, e: &io::Error) -> bool {
        self.handle.is_closed() || e.to_string().contains("SendError")
    }

    fn map(&self, op: Op, path: &str, e: SftpClientError) -> SftpError {
        let path = path.to_string();
        match e {
            SftpClientError::Status(status) => match status.status_code {
                StatusCode::NoSuchFile => match op {
                    Op::StatDirectory | Op::CreateIn => SftpError::DirectoryMissing { path },
                    _ => SftpError::Remote {
                        operation: op.verb().into(),
                        path,
                        reason: "no such file".into(),
                    },
                },
                StatusCode::PermissionDenied => SftpError::PermissionDenied {
                    path,
                    operation: op.verb().into(),
                },
                StatusCode::NoConnection | StatusCode::ConnectionLost => {
                    self.ctx.lost(status.error_message)
                }
                _ => SftpError::Remote {
                    operation: op.verb().into(),
                    path,
                    reason: if status.error_message.is_empty() {
                        status.status_code.to_string()
                    } else {
                        status.error_message
                    },
                },
            },
            SftpClientError::Timeout => SftpError::TimedOut {
                host: self.ctx.host.clone(),
                port: self.ctx.port,
                stage: format!("waiting for the server to {} \"{path}\"", op.verb()),
                after: self.options.request_timeout,
            },
            SftpClientError::IO(reason) => self.ctx.lost(reason),
            SftpClientError::UnexpectedBehavior(reason) if self.handle.is_closed() => {
                self.ctx.lost(reason)
            }
            other => SftpError::Remote {
                operation: op.verb().into(),
                path,
                reason: other.to_string(),
            },
        }
    }
}

fn is_status(e: &SftpClientError, code: StatusCode) -> bool {
    matches!(e, SftpClientError::Status(s) if s.status_code == code)
}

fn display_dir(dir: &str) -> &str {
    if dir == "." {
        "the login directory"
    } else {
        dir
    }
}

fn join(dir: &str, name: &str) -> String {
    match dir {
        "." => name.to_string(),
        "/" => format!("/{name}"),
        d => format!("{d}/{name}"),
    }
}

fn validate_name(name: &str) -> Result<(), SftpError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is a directory reference")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator; pass the directory separately")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if name.ends_with(PART_SUFFIX) {
        Some("names ending in .part are reserved for uploads in progress")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SftpError::InvalidFileName {
            name: name.to_string(),
            reason: reason.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        assert!(validate_name("export_20260101T000000Z.csv").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", "x.csv.part"] {
            assert_eq!(
                validate_name(bad).unwrap_err().code(),
                "sftp_invalid_file_name",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_join() {
        assert_eq!(join(".", "a.csv"), "a.csv");
        assert_eq!(join("/", "a.csv"), "/a.csv");
        assert_eq!(join("/in/box", "a.csv"), "/in/box/a.csv");
    }
}
