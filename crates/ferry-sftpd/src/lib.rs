//! Ferry's own SFTP server (issue 12): institutions' accounts log in with a public key (or a
//! password, if one is set) and upload files, which the vault encrypts as they land.
//!
//! Hardening, in one place:
//! - only the `publickey` and `password` methods; no SHA-1 `ssh-rsa` signatures; no compression;
//! - a deadline for logging in, and a cap on connections per address that have not logged in;
//! - a defender in the store (shared by every node): scores per address for wrong secrets and
//!   unknown users, bans that double; banned addresses are cut off before the handshake;
//! - sessions may only run the `sftp` subsystem (no shell, exec, pty, env or forwarding), on a
//!   few channels;
//! - each account sees its own namespace only (see the `fs` module), with caps on open handles
//!   and packet sizes; a packet over the cap closes the channel.
//!
//! Host keys (Ed25519, ECDSA P-256 and RSA, the latter signing with SHA-2 only) are created once
//! and kept in the store, so several nodes behind a load balancer present the same keys.

#![warn(missing_docs)]

mod fs;
mod guard;
mod keys;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_store::{DefenderPolicy, SftpAccount, SftpHostKey, Store};
use ferry_vault::Vault;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fs::{is_temporary, normalize};
pub use keys::{GeneratedKey, KeyType, MIN_RSA_BITS, generate_key, parse_public_key};

/// Points the defender adds for a known user with a wrong secret.
pub const SCORE_WRONG_SECRET: i64 = 1;
/// Points for an unknown user.
pub const SCORE_UNKNOWN_USER: i64 = 2;
/// Points for going over the cap of connections that have not logged in.
pub const SCORE_LIMIT_EXCEEDED: i64 = 3;

/// The kinds of host key the server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ecdsa-sha2-nistp256`.
    EcdsaP256,
    /// RSA 3072, signing with `rsa-sha2-512`/`rsa-sha2-256` only.
    Rsa,
}

impl HostKeyKind {
    /// The name the store keeps the key under.
    pub fn name(self) -> &'static str {
        match self {
            HostKeyKind::Ed25519 => "ssh-ed25519",
            HostKeyKind::EcdsaP256 => "ecdsa-sha2-nistp256",
            HostKeyKind::Rsa => "rsa-sha2-512",
        }
    }

    fn generate(self) -> Result<PrivateKey, ServerError> {
        let mut rng = russh::keys::key::safe_rng();
        let key = match self {
            HostKeyKind::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519),
            HostKeyKind::EcdsaP256 => PrivateKey::random(
                &mut rng,
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                },
            ),
            HostKeyKind::Rsa => RsaKeypair::random(&mut rng, 3072)
                .and_then(|k| PrivateKey::new(KeypairData::from(k), "ferry host key")),
        };
        key.map_err(|e| ServerError::HostKey(e.to_string()))
    }
}

/// Algorithms of client keys (and of host key signatures): no `ssh-rsa` with SHA-1.
const KEY_ALGORITHMS: &[Algorithm] = &[
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

/// How the server behaves. `Default` is production's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Host keys to present (created in the store on first start).
    pub host_keys: Vec<HostKeyKind>,
    /// Connections that have not logged in within this are closed.
    pub login_deadline: Duration,
    /// Connections per address that have not logged in yet; more are refused.
    pub max_unauthenticated_per_ip: usize,
    /// The defender's policy; `None` turns it off.
    pub defender: Option<DefenderPolicy>,
    /// How long a failed login waits before it is answered (the same for every failure).
    pub auth_rejection_time: Duration,
    /// Login attempts per connection.
    pub max_auth_attempts: usize,
    /// Connections idle this long are closed.
    pub idle_timeout: Duration,
    /// Open file and folder handles per SFTP session.
    pub max_handles: usize,
    /// Files open for writing at once per SFTP session (each holds up to the vault's reorder
    /// window and a storage part in memory).
    pub max_uploads: usize,
    /// Session channels per connection.
    pub max_channels: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host_keys: vec![
                HostKeyKind::Ed25519,
                HostKeyKind::EcdsaP256,
                HostKeyKind::Rsa,
            ],
            login_deadline: Duration::from_secs(60),
            max_unauthenticated_per_ip: 10,
            defender: Some(DefenderPolicy::default()),
            auth_rejection_time: Duration::from_secs(1),
            max_auth_attempts: 6,
            idle_timeout: Duration::from_secs(15 * 60),
            max_handles: 64,
            max_uploads: 4,
            max_channels: 4,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listener failed.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why not.
        source: std::io::Error,
    },
    /// A host key could not be made, stored or read.
    #[error("host key: {0}")]
    HostKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
}

/// A host key as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyInfo {
    /// Its kind's name (`ssh-ed25519`, …).
    pub algorithm: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// Loads the host keys of `kinds` from the store, creating (once, across nodes) those missing.
pub async fn host_keys(
    store: &Store,
    kinds: &[HostKeyKind],
) -> Result<Vec<(PrivateKey, HostKeyInfo)>, ServerError> {
    let existing = store.sftp_host_keys().await?;
    let mut out = Vec::new();
    for kind in kinds {
        let stored = match existing.iter().find(|k| k.algorithm == kind.name()) {
            Some(k) => k.clone(),
            None => {
                let key = kind.generate()?;
                let public = key
                    .public_key()
                    .to_openssh()
                    .map_err(|e| ServerError::HostKey(e.to_string()))?;
                let private = key
                    .to_openssh(LineEnding::LF)
                    .map_err(|e| ServerError::HostKey(e.to_string()))?;
                store
                    .add_sftp_host_key_if_absent(&SftpHostKey {
                        algorithm: kind.name().to_string(),
                        private_key: SecretString::from(private.to_string()),
                        public_key: public,
                        fingerprint: fingerprint(key.public_key()),
                        created_at: jiff::Timestamp::now(),
                    })
                    .await?
            }
        };
        let key = PrivateKey::from_openssh(stored.private_key.expose_secret())
            .map_err(|e| ServerError::HostKey(e.to_string()))?;
        out.push((
            key,
            HostKeyInfo {
                algorithm: stored.algorithm.clone(),
                public_key: stored.public_key.clone(),
                fingerprint: stored.fingerprint.clone(),
            },
        ));
    }
    Ok(out)
}

/// `SHA256:…` of a public key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

struct Shared {
    store: Store,
    vault: Vault,
    config: ServerConfig,
    ssh: Arc<russh::server::Config>,
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
}

/// A running server. Dropping it stops accepting and ends every connection.
pub struct SftpServer {
    addr: SocketAddr,
    host_keys: Vec<HostKeyInfo>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SftpServer {
    /// Loads (or creates) the host keys, binds `listen` and serves in the background.
    pub async fn start(
        store: Store,
        vault: Vault,
        listen: &str,
        config: ServerConfig,
    ) -> Result<SftpServer, ServerError> {
        let keys = host_keys(&store, &config.host_keys).await?;
        let infos = keys.iter().map(|(_, i)| i.clone()).collect();
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        methods.push(MethodKind::Password);
        let ssh = russh::server::Config {
            methods,
            auth_rejection_time: config.auth_rejection_time,
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: config.max_auth_attempts,
            keys: keys.into_iter().map(|(k, _)| k).collect(),
            window_size: 16 * 1024 * 1024,
            preferred: Preferred {
                key: std::borrow::Cow::Borrowed(KEY_ALGORITHMS),
                compression: std::borrow::Cow::Borrowed(&[russh::compression::NONE]),
                ..Preferred::DEFAULT
            },
            inactivity_timeout: Some(config.idle_timeout),
            nodelay: true,
            ..Default::default()
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: listen.to_string(),
            source,
        })?;
        let shared = Arc::new(Shared {
            store,
            vault,
            config,
            ssh: Arc::new(ssh),
            unauthenticated: Mutex::new(HashMap::new()),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
        tracing::info!(%addr, "SFTP server listening");
        Ok(SftpServer {
            addr,
            host_keys: infos,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host keys it presents.
    pub fn host_keys(&self) -> &[HostKeyInfo] {
        &self.host_keys
    }

    /// Stops accepting, ends every connection and waits for that.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the task ends (it does not, unless it panics).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How often the server looks for abandoned uploads.
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);

/// Marks uploads that nobody wrote to for longer than a connection may idle (plus a margin) as
/// partial: a node that crashed never saw their connections end.
async fn sweep_abandoned(shared: &Shared) {
    let quiet = shared.config.idle_timeout + SWEEP_EVERY;
    let Ok(quiet) = jiff::SignedDuration::try_from(quiet) else {
        return;
    };
    let Ok(before) = jiff::Timestamp::now().checked_sub(quiet) else {
        return;
    };
    match shared.store.sftp_sweep_abandoned_uploads(before).await {
        Ok(files) => {
            for f in files {
                tracing::warn!(file = f.id, path = %f.path, "SFTP server: an abandoned upload is recorded as partial");
                if let Err(e) = shared.vault.delete(&f.object_key).await {
                    tracing::debug!(error = %e, "SFTP server: nothing stored for the abandoned upload");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "SFTP server: sweeping abandoned uploads failed"),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = sweep.tick() => sweep_abandoned(&shared).await,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "SFTP server: accept failed");
                        continue;
                    }
                };
                connections.spawn(connection(shared.clone(), socket, peer));
            }
        }
    }
    connections.shutdown().await;
}

async fn connection(shared: Arc<Shared>, socket: tokio::net::TcpStream, peer: SocketAddr) {
    let ip = peer.ip();
    if shared.config.defender.is_some() {
        match shared.store.sftp_banned_until(&ip.to_string()).await {
            Ok(Some(until)) => {
                tracing::info!(%ip, %until, "SFTP server: refused a banned address");
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "SFTP server: defender lookup failed"),
        }
    }
    let Some(slot) = UnauthenticatedSlot::take(&shared, ip) else {
        tracing::info!(%ip, "SFTP server: too many connections that have not logged in");
        score(&shared, ip, SCORE_LIMIT_EXCEEDED).await;
        return;
    };
    let authenticated = Arc::new(AtomicBool::new(false));
    let stream =
        guard::PreAuthDeadline::new(socket, shared.config.login_deadline, authenticated.clone());
    let handler = SshHandler {
        shared: shared.clone(),
        ip,
        slot: Some(slot),
        authenticated,
        account: None,
        channels: HashMap::new(),
        sftp_channels: 0,
    };
    match russh::server::run_stream(shared.ssh.clone(), stream, handler).await {
        Ok(session) => {
            if let Err(e) = session.await {
                tracing::debug!(%peer, error = %e, "SFTP server: session ended");
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "SFTP server: handshake failed"),
    }
}

async fn score(shared: &Shared, ip: IpAddr, points: i64) {
    if let Some(policy) = &shared.config.defender
        && points > 0
    {
        match shared
            .store
            .sftp_defender_event(&ip.to_string(), points, policy)
            .await
        {
            Ok(v) if v.banned_until.is_some() => {
                tracing::warn!(%ip, until = ?v.banned_until, "SFTP server: address banned");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SFTP server: defender update failed"),
        }
    }
}

/// One of an address's connections that has not logged in; released on login or drop.
struct UnauthenticatedSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl UnauthenticatedSlot {
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<UnauthenticatedSlot> {
        let mut map = shared
            .unauthenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_default();
        if *n >= shared.config.max_unauthenticated_per_ip {
            return None;
        }
        *n += 1;
        Some(UnauthenticatedSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for UnauthenticatedSlot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .unauthenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

struct SshHandler {
    shared: Arc<Shared>,
    ip: IpAddr,
    slot: Option<UnauthenticatedSlot>,
    authenticated: Arc<AtomicBool>,
    account: Option<SftpAccount>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    sftp_channels: usize,
}

fn has_key(account: &SftpAccount, key: &PublicKey) -> bool {
    account.keys.iter().any(|k| {
        PublicKey::from_openssh(&k.public_key).is_ok_and(|p| p.key_data() == key.key_data())
    })
}

impl SshHandler {
    async fn banned(&self) -> bool {
        if self.shared.config.defender.is_none() {
            return false;
        }
        matches!(
            self.shared
                .store
                .sftp_banned_until(&self.ip.to_string())
                .await,
            Ok(Some(_))
        )
    }

    async fn enabled_account(&self, user: &str) -> Result<Option<SftpAccount>, russh::Error> {
        match self.shared.store.sftp_account_by_username(user).await {
            Ok(a) => Ok(a),
            Err(e) => {
                tracing::warn!(error = %e, "SFTP server: account lookup failed");
                Ok(None)
            }
        }
    }

    async fn accept(&mut self, account: SftpAccount) -> Auth {
        if let Err(e) = self
            .shared
            .store
            .record_sftp_login(account.id, &self.ip.to_string())
            .await
        {
            tracing::warn!(error = %e, "SFTP server: could not record a login");
        }
        tracing::info!(ip = %self.ip, user = %account.username, "SFTP server: logged in");
        self.account = Some(account);
        self.authenticated.store(true, Ordering::Release);
        self.slot = None;
        Auth::Accept
    }
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.banned().await {
            return Ok(Auth::reject());
        }
        match self.shared.store.verify_sftp_password(user, password).await {
            Ok(Some(account)) => return Ok(self.accept(account).await),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "SFTP server: password check failed"),
        }
        let known = self.enabled_account(user).await?.is_some();
        score(
            &self.shared,
            self.ip,
            if known {
                SCORE_WRONG_SECRET
            } else {
                SCORE_UNKNOWN_USER
            },
        )
        .await;
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // A probe: no state is touched and nothing is scored here.
        if !KEY_ALGORITHMS.contains(offer.algorithm) || self.banned().await {
            return Ok(Auth::reject());
        }
        Ok(match self.enabled_account(user).await? {
            Some(a) if a.enabled && has_key(&a, offer.public_key) => Auth::Accept,
            _ => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.banned().await {
            return Ok(Auth::reject());
        }
        let account = self.enabled_account(user).await?;
        let points = match account {
            Some(a) if a.enabled && has_key(&a, key.public_key) => {
                return Ok(self.accept(a).await);
            }
            Some(_) => SCORE_WRONG_SECRET,
            None => SCORE_UNKNOWN_USER,
        };
        score(&self.shared, self.ip, points).await;
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.account.is_none()
            || self.channels.len() + self.sftp_channels >= self.shared.config.max_channels
        {
            // Dropping the reply refuses the channel.
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.remove(&channel).is_none() {
            self.sftp_channels = self.sftp_channels.saturating_sub(1);
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        session.close(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        session.close(channel)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let account = match (&self.account, name) {
            (Some(a), "sftp") => a.id,
            _ => return session.channel_failure(channel_id),
        };
        let Some(channel) = self.channels.remove(&channel_id) else {
            return session.channel_failure(channel_id);
        };
        self.sftp_channels += 1;
        session.channel_success(channel_id)?;
        let handle = session.handle();
        let stream = guard::Framing::new(
            channel.into_stream(),
            fs::MAX_PACKET,
            Box::new(move || {
                tracing::warn!("SFTP server: a packet over the size limit closed the channel");
                tokio::spawn(async move {
                    let _ = handle.close(channel_id).await;
                });
            }),
        );
        let sftp = fs::SftpSession::new(
            self.shared.store.clone(),
            self.shared.vault.clone(),
            account,
            self.shared.config.max_handles,
            self.shared.config.max_uploads,
        );
        russh_sftp::server::run_with_config(
            stream,
            sftp,
            russh_sftp::server::Config {
                max_client_packet_len: fs::MAX_PACKET,
            },
        )
        .await;
        Ok(())
    }
}
