//! A small SFTP server on loopback, for tests and `ferry demo` (feature `test-server`).
//!
//! It serves one directory as `/` to every configured user (password and/or public keys), with
//! its own generated ed25519 host key that [`TestServer::rotate_host_key`] replaces, to test what
//! clients do when a host key changes. Paths are confined to the root: `..` above it is refused,
//! and so is every symbolic link (clients cannot create any: SYMLINK is not implemented).
//! File system work runs on tokio's blocking pool, so one slow disk call never stalls the
//! connection (russh-sftp handles one request at a time per session).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session as SshSession};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred};
use russh_sftp::protocol::{
    Attrs, Data, File as DirEntry, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Errors starting a [`TestServer`].
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// The root is missing or not a directory.
    #[error("the root directory {path} is not usable: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// Binding the listening socket failed.
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// Why not.
        source: io::Error,
    },
    /// An authorized key is not an OpenSSH public key line.
    #[error("invalid public key for user \"{user}\": {reason}")]
    InvalidPublicKey {
        /// The user it was given for.
        user: String,
        /// The parser's reason.
        reason: String,
    },
    /// Generating a host key failed.
    #[error("could not generate a host key: {0}")]
    HostKey(String),
}

#[derive(Default)]
struct User {
    passwords: Vec<SecretString>,
    keys: Vec<PublicKey>,
}

/// Builds a [`TestServer`]: the root, the users, the port.
#[must_use]
pub struct TestServerBuilder {
    root: PathBuf,
    port: u16,
    max_file_size: Option<u64>,
    users: HashMap<String, User>,
    raw_keys: Vec<(String, String)>,
}

impl TestServerBuilder {
    /// Lets `user` log in with `password`.
    pub fn password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users
            .entry(user.into())
            .or_default()
            .passwords
            .push(SecretString::from(password.into()));
        self
    }

    /// Lets `user` log in with the key whose public half is `public_key`, an OpenSSH
    /// `authorized_keys`-style line such as `ssh-ed25519 AAAA… comment`.
    pub fn authorized_key(
        mut self,
        user: impl Into<String>,
        public_key: impl Into<String>,
    ) -> Self {
        let user = user.into();
        self.users.entry(user.clone()).or_default();
        self.raw_keys.push((user, public_key.into()));
        self
    }

    /// Fails writes that would make a file larger than `bytes` with "No space left on device",
    /// to test what clients do when the server's disk is full.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// Listens on this loopback port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds 127.0.0.1 and starts serving in the background.
    pub async fn start(mut self) -> Result<TestServer, TestServerError> {
        let root = fs::canonicalize(&self.root)
            .and_then(|p| {
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "not a directory",
                    ))
                }
            })
            .map_err(|source| TestServerError::Root {
                path: self.root.clone(),
                source,
            })?;
        for (user, line) in std::mem::take(&mut self.raw_keys) {
            let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                TestServerError::InvalidPublicKey {
                    user: user.clone(),
                    reason: e.to_string(),
                }
            })?;
            self.users.entry(user).or_default().keys.push(key);
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|source| TestServerError::Bind {
                port: self.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TestServerError::Bind {
                port: self.port,
                source,
            })?;
        let (config, fingerprint) = server_config()?;
        let shared = Arc::new(Shared {
            root,
            max_file_size: self.max_file_size,
            users: self.users,
            config: RwLock::new(config),
            fingerprint: RwLock::new(fingerprint),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(TestServer {
            addr,
            shared,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

struct Shared {
    root: PathBuf,
    max_file_size: Option<u64>,
    users: HashMap<String, User>,
    config: RwLock<Arc<russh::server::Config>>,
    fingerprint: RwLock<String>,
}

/// A running test server. Dropping it stops the server and closes every connection.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .field("host_key_fingerprint", &self.host_key_fingerprint())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts building a server that serves `root` (which must exist) as `/`.
    pub fn builder(root: impl Into<PathBuf>) -> TestServerBuilder {
        TestServerBuilder {
            root: root.into(),
            port: 0,
            max_file_size: None,
            users: HashMap::new(),
            raw_keys: Vec::new(),
        }
    }

    /// The address it listens on (127.0.0.1 and the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory served as `/`, canonicalised.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The `SHA256:…` fingerprint of the current host key.
    pub fn host_key_fingerprint(&self) -> String {
        self.shared
            .fingerprint
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the host key with a new ed25519 key for connections made from now on, and
    /// returns the new fingerprint.
    pub fn rotate_host_key(&self) -> Result<String, TestServerError> {
        let (config, fingerprint) = server_config()?;
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = config;
        *self
            .shared
            .fingerprint
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fingerprint.clone();
        Ok(fingerprint)
    }

    /// Stops accepting, closes every connection and waits for that to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn server_config() -> Result<(Arc<russh::server::Config>, String), TestServerError> {
    let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| TestServerError::HostKey(e.to_string()))?;
    let fingerprint = crate::key::fingerprint(key.public_key());
    let preferred = Preferred {
        // ed25519 host key; client keys may be ed25519, ECDSA or RSA with SHA-2 only.
        key: std::borrow::Cow::Borrowed(crate::client::ACCEPTED_KEY_ALGORITHMS),
        ..Preferred::DEFAULT
    };
    let config = russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: Duration::from_millis(100),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        // 16 MiB: the 2 MiB default caps uploads on high-latency links (notes, pitfall 2).
        window_size: 16 * 1024 * 1024,
        preferred,
        inactivity_timeout: Some(Duration::from_secs(600)),
        nodelay: true,
        ..Default::default()
    };
    Ok((Arc::new(config), fingerprint))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    // Connection tasks live in the set, so stopping the server (or dropping it) ends them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "test SFTP server: accept failed");
                        continue;
                    }
                };
                let config = shared
                    .config
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let handler = SshHandler {
                    shared: shared.clone(),
                    channels: HashMap::new(),
                };
                connections.spawn(async move {
                    match russh::server::run_stream(config, socket, handler).await {
                        Ok(session) => {
                            if let Err(e) = session.await {
                                tracing::debug!(%peer, error = %e, "test SFTP server: session ended");
                            }
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "test SFTP server: handshake failed"),
                    }
                });
            }
        }
    }
    connections.shutdown().await;
}

struct SshHandler {
    shared: Arc<Shared>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl SshHandler {
    fn has_key(&self, user: &str, key: &PublicKey) -> bool {
        self.shared
            .users
            .get(user)
            .is_some_and(|u| u.keys.iter().any(|k| k.key_data() == key.key_data()))
    }
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let ok = self.shared.users.get(user).is_some_and(|u| {
            u.passwords
                .iter()
                .any(|p| constant_time_eq(p.expose_secret().as_bytes(), password.as_bytes()))
        });
        Ok(if ok { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.has_key(user, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.has_key(user, key.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        session.close(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&channel_id)) {
            ("sftp", Some(channel)) => {
                session.channel_success(channel_id)?;
                let handler = SftpHandler {
                    root: self.shared.root.clone(),
                    max_file_size: self.shared.max_file_size,
                    handles: HashMap::new(),
                    next_handle: 0,
                };
                // Spawns the request loop; it ends when the channel closes.
                russh_sftp::server::run(channel.into_stream(), handler).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }
}

enum OpenHandle {
    File(Arc<fs::File>),
    Dir(Option<Vec<DirEntry>>),
}

struct SftpHandler {
    root: PathBuf,
    max_file_size: Option<u64>,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

const FSYNC_EXTENSION: &str = "fsync@openssh.com";
const MAX_READ: u32 = 256 * 1024;

fn status_ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn io_reply(e: io::Error) -> StatusReply {
    let code = match e.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    code.with_message(e.to_string())
}

fn denied(message: &str) -> StatusReply {
    StatusCode::PermissionDenied.with_message(message)
}

/// Maps a client path (relative paths start at `/`) to a path under `root`.
///
/// `..` may not climb above the root, and no existing component may be a symbolic link,
/// so nothing outside the root can be reached. Runs file system calls: call it off the runtime.
fn resolve(root: &Path, path: &str) -> Result<PathBuf, StatusReply> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(denied("path leads outside the root"));
                }
            }
            p if p.contains('\0') => return Err(StatusCode::BadMessage.into()),
            p => parts.push(p),
        }
    }
    let mut real = root.to_path_buf();
    let mut exists = true;
    for part in parts {
        real.push(part);
        if exists {
            match fs::symlink_metadata(&real) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(denied("symbolic links are not followed"));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => exists = false,
                Err(e) => return Err(io_reply(e)),
            }
        }
    }
    Ok(real)
}

fn virtual_path(path: &str) -> Result<String, StatusReply> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(denied("path leads outside the root"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Runs file system work on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, StatusReply>
where
    F: FnOnce() -> Result<T, StatusReply> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StatusCode::Failure.with_message(e.to_string())))
}

fn unix_time(t: Option<u32>) -> Option<SystemTime> {
    t.map(|s| UNIX_EPOCH + Duration::from_secs(u64::from(s)))
}

fn apply_attrs(path: &Path, file: Option<&fs::File>, attrs: &FileAttributes) -> io::Result<()> {
    if attrs.uid.is_some() || attrs.gid.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "changing the owner is not supported",
        ));
    }
    if let Some(mode) = attrs.permissions {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    if attrs.size.is_some() || attrs.atime.is_some() || attrs.mtime.is_some() {
        let owned;
        let file = match file {
            Some(f) => f,
            None => {
                owned = fs::File::open(path)?;
                &owned
            }
        };
        if let Some(size) = attrs.size {
            file.set_len(size)?;
        }
        let mut times = fs::FileTimes::new();
        if let Some(t) = unix_time(attrs.atime) {
            times = times.set_accessed(t);
        }
        if let Some(t) = unix_time(attrs.mtime) {
            times = times.set_modified(t);
        }
        file.set_times(times)?;
    }
    Ok(())
}

impl SftpHandler {
    fn add(&mut self, handle: OpenHandle) -> String {
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        name
    }

    fn file(&self, handle: &str) -> Result<Arc<fs::File>, StatusReply> {
        match self.handles.get(handle) {
            Some(OpenHandle::File(f)) => Ok(f.clone()),
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut version = Version::new();
        version
            .extensions
            .insert(FSYNC_EXTENSION.to_string(), "1".to_string());
        Ok(version)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let root = self.root();
        let file = blocking(move || {
            let path = resolve(&root, &filename)?;
            let mut options = OpenOptions::new();
            options
                .read(pflags.contains(OpenFlags::READ))
                .write(pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND))
                .append(pflags.contains(OpenFlags::APPEND))
                .truncate(pflags.contains(OpenFlags::TRUNCATE))
                .mode(attrs.permissions.map_or(0o644, |m| m & 0o777));
            if pflags.contains(OpenFlags::CREATE) {
                if pflags.contains(OpenFlags::EXCLUDE) {
                    options.create_new(true);
                } else {
                    options.create(true);
                }
            }
            options.open(&path).map_err(io_reply)
        })
        .await?;
        let handle = self.add(OpenHandle::File(Arc::new(file)));
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(status_ok(id)),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let file = self.file(&handle)?;
        let data = blocking(move || {
            let mut buf = vec![0u8; len.min(MAX_READ) as usize];
            let n = file.read_at(&mut buf, offset).map_err(io_reply)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await?;
        if data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        if self
            .max_file_size
            .is_some_and(|max| offset.saturating_add(data.len() as u64) > max)
        {
            return Err(StatusCode::Failure.with_message("No space left on device"));
        }
        blocking(move || file.write_all_at(&data, offset).map_err(io_reply)).await?;
        Ok(status_ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let root = self.root();
        let meta = blocking(move || {
            let path = resolve(&root, &path)?;
            fs::symlink_metadata(path).map_err(io_reply)
        })
        .await?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let file = self.file(&handle)?;
        let meta = blocking(move || file.metadata().map_err(io_reply)).await?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let root = self.root();
        blocking(move || {
            let path = resolve(&root, &path)?;
            apply_attrs(&path, None, &attrs).map_err(io_reply)
        })
        .await?;
        Ok(status_ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        blocking(move || {
            // Permissions through the descriptor: the path is not kept.
            if let Some(mode) = attrs.permissions {
                file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(io_reply)?;
            }
            let rest = FileAttributes {
                permissions: None,
                ..attrs
            };
            apply_attrs(Path::new(""), Some(&file), &rest).map_err(io_reply)
        })
        .await?;
        Ok(status_ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let root = self.root();
        let entries = blocking(move || {
            let path = resolve(&root, &path)?;
            let mut entries = Vec::new();
            for entry in fs::read_dir(path).map_err(io_reply)? {
                let entry = entry.map_err(io_reply)?;
                let meta = entry.metadata().map_err(io_reply)?;
                let mut attrs = FileAttributes::from(&meta);
                if meta.file_type().is_symlink() {
                    attrs.set_regular(false);
                    attrs.set_symlink(true);
                }
                entries.push(DirEntry::new(
                    entry.file_name().to_string_lossy().into_owned(),
                    attrs,
                ));
            }
            Ok(entries)
        })
        .await?;
        let handle = self.add(OpenHandle::Dir(Some(entries)));
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(OpenHandle::Dir(entries)) => match entries.take() {
                Some(files) if !files.is_empty() => Ok(Name { id, files }),
                _ => Err(StatusCode::Eof.into()),
            },
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let root = self.root();
        blocking(move || fs::remove_file(resolve(&root, &filename)?).map_err(io_reply)).await?;
        Ok(status_ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let root = self.root();
        blocking(move || {
            let path = resolve(&root, &path)?;
            fs::create_dir(&path).map_err(io_reply)?;
            if let Some(mode) = attrs.permissions {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(io_reply)?;
            }
            Ok(())
        })
        .await?;
        Ok(status_ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let root = self.root();
        blocking(move || {
            let path = resolve(&root, &path)?;
            if path == root {
                return Err(denied("the root cannot be removed"));
            }
            fs::remove_dir(path).map_err(io_reply)
        })
        .await?;
        Ok(status_ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![DirEntry::dummy(virtual_path(&path)?)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let root = self.root();
        blocking(move || {
            let from = resolve(&root, &oldpath)?;
            let to = resolve(&root, &newpath)?;
            // Like OpenSSH: never replace an existing target. For files, link + unlink makes the
            // check and the rename one atomic step (link fails if the target exists).
            let meta = fs::symlink_metadata(&from).map_err(io_reply)?;
            if meta.is_file() {
                match fs::hard_link(&from, &to) {
                    Ok(()) => return fs::remove_file(&from).map_err(io_reply),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(StatusCode::Failure.with_message("the target already exists"));
                    }
                    // No hard links here (some file systems): check, then rename, as OpenSSH does.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::Unsupported | io::ErrorKind::CrossesDevices
                        ) => {}
                    Err(e) => return Err(io_reply(e)),
                }
            }
            if fs::symlink_metadata(&to).is_ok() {
                Err(StatusCode::Failure.with_message("the target already exists"))
            } else {
                fs::rename(&from, &to).map_err(io_reply)
            }
        })
        .await?;
        Ok(status_ok(id))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        if request != FSYNC_EXTENSION {
            return Err(StatusCode::OpUnsupported.into());
        }
        // The request data is one SSH string: the handle.
        let handle = data
            .get(4..)
            .filter(|rest| {
                data.get(..4)
                    .and_then(|len| <[u8; 4]>::try_from(len).ok())
                    .is_some_and(|len| u32::from_be_bytes(len) as usize == rest.len())
            })
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| StatusReply::from(StatusCode::BadMessage))?;
        let file = self.file(handle)?;
        blocking(move || file.sync_all().map_err(io_reply)).await?;
        Ok(Packet::Status(status_ok(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("in")).unwrap();
        assert_eq!(resolve(root, "/in/a.csv").unwrap(), root.join("in/a.csv"));
        assert_eq!(
            resolve(root, "in/./x/../a.csv").unwrap(),
            root.join("in/a.csv")
        );
        assert_eq!(resolve(root, "").unwrap(), root.to_path_buf());
        for escape in ["..", "/../etc/passwd", "in/../../x"] {
            let err = resolve(root, escape).unwrap_err();
            assert_eq!(err.status_code, StatusCode::PermissionDenied, "{escape}");
        }
        std::os::unix::fs::symlink("/etc", root.join("in/etc")).unwrap();
        let err = resolve(root, "/in/etc/passwd").unwrap_err();
        assert_eq!(err.status_code, StatusCode::PermissionDenied);
        assert_eq!(virtual_path("a/../b/./c").unwrap(), "/b/c");
        assert!(virtual_path("/..").is_err());
    }
}
