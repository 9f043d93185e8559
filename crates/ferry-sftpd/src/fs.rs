//! The SFTP side: one handler per channel, serving the account's namespace from the store and
//! its files from the vault.
//!
//! Client paths are normalised to absolute namespace paths and never become storage paths (each
//! upload gets a random object key), so `..`, absolute paths and links cannot reach anything
//! outside the account. Links cannot be made (SYMLINK, hardlink) and none exist (READLINK finds
//! none). SETSTAT is accepted and ignored (owners, modes and times are not applied; truncating
//! is refused). Files are written once, front to back: append, resume and read-write opens get
//! `OP_UNSUPPORTED`.

use std::collections::HashMap;

use ferry_store::{SftpEntry, SftpFile, Store, StoreError};
use ferry_vault::{Vault, VaultError, VaultReader, VaultWriter};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::StatusReply;

/// The largest SFTP packet a client may send (russh-sftp's default; `limits@openssh.com`).
pub(crate) const MAX_PACKET: u32 = 256 * 1024;
/// The largest READ or WRITE (OpenSSH clients take at most 256 KiB − 1 KiB messages).
pub(crate) const MAX_IO: u32 = 255 * 1024;
const LIMITS_EXTENSION: &str = "limits@openssh.com";
const MAX_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// Whether a file under this name is a client's temporary (not ingested until renamed).
pub fn is_temporary(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with('.') || name.ends_with(".part") || name.ends_with(".filepart")
}

/// Normalises a client path (relative paths start at `/`) to an absolute namespace path.
/// Refuses names that were not UTF-8 (russh-sftp decodes them to U+FFFD), control characters,
/// backslashes, over-long names, and `..` above the root.
pub fn normalize(path: &str) -> Result<String, StatusReply> {
    if path.contains('\u{FFFD}') {
        return Err(StatusCode::BadMessage.with_message("names must be valid UTF-8"));
    }
    if path.len() > MAX_PATH {
        return Err(StatusCode::BadMessage.with_message("the path is too long"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(StatusCode::PermissionDenied
                        .with_message("the path leads outside your folder"));
                }
            }
            p => {
                if p.len() > MAX_NAME || p.chars().any(|c| c.is_control() || c == '\\') {
                    return Err(StatusCode::BadMessage.with_message(
                        "names may not hold control characters or backslashes, nor pass 255 bytes",
                    ));
                }
                parts.push(p);
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn failure(message: &str) -> StatusReply {
    StatusCode::Failure.with_message(message)
}

fn invalid_handle() -> StatusReply {
    failure("invalid handle")
}

fn store_reply(e: StoreError) -> StatusReply {
    match e {
        StoreError::NotFound => StatusCode::NoSuchFile.with_message("no such file or folder"),
        StoreError::Conflict(m) => failure(&m),
        StoreError::Invalid { message, .. } => failure(&message),
        other => {
            tracing::warn!(error = %other, "SFTP server: store error");
            failure("the server could not complete the request")
        }
    }
}

fn vault_reply(e: VaultError) -> StatusReply {
    match e {
        VaultError::Window { .. } | VaultError::Overlap { .. } | VaultError::Gap(_) => {
            failure(&e.to_string())
        }
        VaultError::Corrupt(_) => {
            tracing::error!(error = %e, "SFTP server: a stored file failed its integrity check");
            failure("the stored file failed its integrity check")
        }
        other => {
            tracing::warn!(error = %other, "SFTP server: storage error");
            failure("the server could not store the file")
        }
    }
}

fn file_attrs(size: u64, mtime: jiff::Timestamp) -> FileAttributes {
    let t = u32::try_from(mtime.as_second()).unwrap_or(0);
    FileAttributes {
        size: Some(size),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o100_644),
        atime: Some(t),
        mtime: Some(t),
        ..FileAttributes::default()
    }
}

fn dir_attrs(mtime: jiff::Timestamp) -> FileAttributes {
    let t = u32::try_from(mtime.as_second()).unwrap_or(0);
    FileAttributes {
        size: Some(0),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o040_755),
        atime: Some(t),
        mtime: Some(t),
        ..FileAttributes::default()
    }
}

fn entry_attrs(e: &SftpEntry) -> FileAttributes {
    match e {
        SftpEntry::Dir { created_at, .. } => dir_attrs(*created_at),
        SftpEntry::File(f) => file_attrs(f.size.max(0) as u64, f.updated_at),
    }
}

struct Upload {
    file: SftpFile,
    writer: Option<VaultWriter>,
    failed: bool,
    /// When the store last heard that this upload goes on (see [`TOUCH_EVERY`]).
    touched: std::time::Instant,
}

/// How often an upload in progress tells the store it is alive, so that the sweep of abandoned
/// uploads (a crashed node's) leaves it alone.
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

enum Open {
    Upload(Box<Upload>),
    Read(Box<VaultReader>),
    Dir(Option<Vec<File>>),
}

/// The SFTP handler of one channel of a logged-in account.
pub(crate) struct SftpSession {
    store: Store,
    vault: Vault,
    account_id: i64,
    max_handles: usize,
    max_uploads: usize,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

impl SftpSession {
    pub(crate) fn new(
        store: Store,
        vault: Vault,
        account_id: i64,
        max_handles: usize,
        max_uploads: usize,
    ) -> Self {
        SftpSession {
            store,
            vault,
            account_id,
            max_handles,
            max_uploads,
            handles: HashMap::new(),
            next_handle: 0,
        }
    }

    fn add(&mut self, open: Open) -> Result<String, StatusReply> {
        if self.handles.len() >= self.max_handles {
            return Err(failure("too many open handles"));
        }
        self.next_handle += 1;
        let h = self.next_handle.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    async fn lookup(&self, path: &str) -> Result<Option<SftpEntry>, StatusReply> {
        self.store
            .sftp_lookup(self.account_id, path)
            .await
            .map_err(store_reply)
    }

    async fn open_upload(
        &mut self,
        path: String,
        pflags: OpenFlags,
    ) -> Result<String, StatusReply> {
        if path == "/" {
            return Err(failure("/ is a folder"));
        }
        match self.lookup(&path).await? {
            Some(SftpEntry::Dir { .. }) => return Err(failure("that name is a folder")),
            Some(SftpEntry::File(_)) => {
                if pflags.contains(OpenFlags::EXCLUDE) {
                    return Err(failure("the file exists"));
                }
                if !pflags.contains(OpenFlags::TRUNCATE) {
                    return Err(StatusCode::OpUnsupported.with_message(
                        "files are written once: resuming or changing a file is not supported",
                    ));
                }
            }
            None if !pflags.contains(OpenFlags::CREATE) => {
                return Err(StatusCode::NoSuchFile.with_message("no such file"));
            }
            None => {}
        }
        if self.handles.len() >= self.max_handles {
            return Err(failure("too many open handles"));
        }
        // Each upload holds buffers (its reorder window, a part on its way to storage).
        let uploads = self
            .handles
            .values()
            .filter(|h| matches!(h, Open::Upload(_)))
            .count();
        if uploads >= self.max_uploads {
            return Err(failure("too many uploads open at once in this session"));
        }
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd).expect("the operating system's random source works");
        let key = format!(
            "sftp/{}/{}",
            self.account_id,
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let file = self
            .store
            .sftp_begin_upload(self.account_id, &path, &key)
            .await
            .map_err(store_reply)?;
        let writer = match self.vault.create(&key).await {
            Ok(w) => w,
            Err(e) => {
                let _ = self.store.sftp_mark_partial(file.id, 0).await;
                return Err(vault_reply(e));
            }
        };
        self.add(Open::Upload(Box::new(Upload {
            file,
            writer: Some(writer),
            failed: false,
            touched: std::time::Instant::now(),
        })))
    }
}

/// What becomes of an upload whose handle was never closed: nothing stored, recorded partial.
async fn abandon(store: Store, mut upload: Upload) {
    let size = upload.writer.as_ref().map_or(0, |w| w.len());
    if let Some(w) = upload.writer.take() {
        let _ = w.abort().await;
    }
    if let Err(e) = store
        .sftp_mark_partial(upload.file.id, i64::try_from(size).unwrap_or(i64::MAX))
        .await
    {
        tracing::warn!(error = %e, file = upload.file.id, "SFTP server: could not record a partial upload");
    }
}

impl Drop for SftpSession {
    fn drop(&mut self) {
        // The channel or connection ended with uploads still open: each is partial.
        let uploads: Vec<Upload> = self
            .handles
            .drain()
            .filter_map(|(_, o)| match o {
                Open::Upload(u) => Some(*u),
                _ => None,
            })
            .collect();
        if uploads.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            rt.spawn(async move {
                for u in uploads {
                    abandon(store.clone(), u).await;
                }
            });
        }
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut v = Version::new();
        // Only what is implemented: OpenSSH's sftp gives up if an advertised extension fails.
        v.extensions
            .insert(LIMITS_EXTENSION.to_string(), "1".to_string());
        Ok(v)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = normalize(&filename)?;
        let read = pflags.contains(OpenFlags::READ);
        let write = pflags.contains(OpenFlags::WRITE);
        if pflags.contains(OpenFlags::APPEND) || (read && write) {
            return Err(StatusCode::OpUnsupported
                .with_message("append, resume and read-write opens are not supported"));
        }
        let handle = if write {
            self.open_upload(path, pflags).await?
        } else if read {
            let file = match self.lookup(&path).await? {
                Some(SftpEntry::File(f)) => f,
                Some(SftpEntry::Dir { .. }) => return Err(failure("that name is a folder")),
                None => return Err(StatusCode::NoSuchFile.with_message("no such file")),
            };
            if self.handles.len() >= self.max_handles {
                return Err(failure("too many open handles"));
            }
            let reader = self
                .vault
                .open(&file.object_key)
                .await
                .map_err(vault_reply)?;
            self.add(Open::Read(Box::new(reader)))?
        } else {
            return Err(StatusCode::OpUnsupported.with_message("open for reading or writing"));
        };
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        let Some(open) = self.handles.remove(&handle) else {
            return Err(invalid_handle());
        };
        let Open::Upload(mut upload) = open else {
            return Ok(ok(id));
        };
        let writer = upload.writer.take().expect("open uploads have a writer");
        if upload.failed {
            let size = i64::try_from(writer.len()).unwrap_or(i64::MAX);
            let _ = writer.abort().await;
            let _ = self.store.sftp_mark_partial(upload.file.id, size).await;
            return Err(failure("an earlier write failed: the file was not kept"));
        }
        let size = writer.len();
        match writer.finish().await {
            Ok(written) => {
                let size = i64::try_from(written.plaintext_size).unwrap_or(i64::MAX);
                self.store
                    .sftp_finish_upload(
                        upload.file.id,
                        size,
                        &written.sha256,
                        !is_temporary(&upload.file.path),
                    )
                    .await
                    .map_err(store_reply)?;
                Ok(ok(id))
            }
            Err(e) => {
                let _ = self
                    .store
                    .sftp_mark_partial(upload.file.id, i64::try_from(size).unwrap_or(i64::MAX))
                    .await;
                Err(vault_reply(e))
            }
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let reader = match self.handles.get(&handle) {
            Some(Open::Read(r)) => r,
            Some(_) => {
                return Err(StatusCode::PermissionDenied.with_message("not open for reading"));
            }
            None => return Err(invalid_handle()),
        };
        let data = reader
            .read_at(offset, len.min(MAX_IO) as usize)
            .await
            .map_err(vault_reply)?;
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
        let upload = match self.handles.get_mut(&handle) {
            Some(Open::Upload(u)) => u,
            Some(_) => {
                return Err(StatusCode::PermissionDenied.with_message("not open for writing"));
            }
            None => return Err(invalid_handle()),
        };
        if upload.failed {
            return Err(failure("an earlier write failed"));
        }
        let writer = upload.writer.as_mut().expect("open uploads have a writer");
        match writer.write_at(offset, &data).await {
            Ok(()) => {
                if upload.touched.elapsed() >= TOUCH_EVERY {
                    upload.touched = std::time::Instant::now();
                    let size = i64::try_from(writer.len()).unwrap_or(i64::MAX);
                    if let Err(e) = self.store.sftp_touch_upload(upload.file.id, size).await {
                        tracing::warn!(error = %e, "SFTP server: could not note upload progress");
                    }
                }
                Ok(ok(id))
            }
            Err(e) => {
                upload.failed = true;
                Err(vault_reply(e))
            }
        }
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let path = normalize(&path)?;
        match self.lookup(&path).await? {
            Some(e) => Ok(Attrs {
                id,
                attrs: entry_attrs(&e),
            }),
            None => Err(StatusCode::NoSuchFile.with_message("no such file or folder")),
        }
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(Open::Upload(u)) => {
                file_attrs(u.writer.as_ref().map_or(0, |w| w.end()), u.file.created_at)
            }
            Some(Open::Read(r)) => file_attrs(r.len(), jiff::Timestamp::now()),
            Some(Open::Dir(_)) => dir_attrs(jiff::Timestamp::now()),
            None => return Err(invalid_handle()),
        };
        Ok(Attrs { id, attrs })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = normalize(&path)?;
        if attrs.size.is_some() {
            return Err(StatusCode::OpUnsupported.with_message("files cannot be truncated"));
        }
        // Owners, modes and times are never applied; clients that set them after an upload
        // (WinSCP, `put -p`) carry on.
        match self.lookup(&path).await? {
            Some(_) => Ok(ok(id)),
            None => Err(StatusCode::NoSuchFile.with_message("no such file or folder")),
        }
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        if !self.handles.contains_key(&handle) {
            return Err(invalid_handle());
        }
        if attrs.size.is_some() {
            return Err(StatusCode::OpUnsupported.with_message("files cannot be truncated"));
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = normalize(&path)?;
        match self.lookup(&path).await? {
            Some(SftpEntry::Dir { .. }) => {}
            Some(SftpEntry::File(_)) => return Err(failure("not a folder")),
            None => return Err(StatusCode::NoSuchFile.with_message("no such folder")),
        }
        if self.handles.len() >= self.max_handles {
            return Err(failure("too many open handles"));
        }
        let entries = self
            .store
            .sftp_list(self.account_id, &path)
            .await
            .map_err(store_reply)?;
        let files = entries
            .iter()
            .map(|e| {
                let name = e.path().rsplit('/').next().unwrap_or_default().to_string();
                File::new(name, entry_attrs(e))
            })
            .collect();
        let handle = self.add(Open::Dir(Some(files)))?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(entries)) => match entries.take() {
                Some(files) if !files.is_empty() => Ok(Name { id, files }),
                _ => Err(StatusCode::Eof.into()),
            },
            Some(_) => Err(failure("not a folder handle")),
            None => Err(invalid_handle()),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let path = normalize(&filename)?;
        if path == "/" {
            return Err(StatusCode::PermissionDenied.into());
        }
        match self.lookup(&path).await? {
            Some(SftpEntry::Dir { .. }) => Err(failure("that is a folder: use rmdir")),
            Some(SftpEntry::File(_)) => {
                self.store
                    .sftp_remove(self.account_id, &path)
                    .await
                    .map_err(store_reply)?;
                Ok(ok(id))
            }
            None => Err(StatusCode::NoSuchFile.with_message("no such file")),
        }
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = normalize(&path)?;
        if path == "/" {
            return Err(failure("/ exists"));
        }
        self.store
            .sftp_mkdir(self.account_id, &path)
            .await
            .map_err(store_reply)?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let path = normalize(&path)?;
        if path == "/" {
            return Err(StatusCode::PermissionDenied.with_message("the root stays"));
        }
        match self.lookup(&path).await? {
            Some(SftpEntry::Dir { .. }) => {
                self.store
                    .sftp_rmdir(self.account_id, &path)
                    .await
                    .map_err(store_reply)?;
                Ok(ok(id))
            }
            Some(SftpEntry::File(_)) => Err(failure("not a folder")),
            None => Err(StatusCode::NoSuchFile.with_message("no such folder")),
        }
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(normalize(&path)?)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let from = normalize(&oldpath)?;
        let to = normalize(&newpath)?;
        if from == "/" || to == "/" {
            return Err(StatusCode::PermissionDenied.into());
        }
        self.store
            .sftp_rename(self.account_id, &from, &to, !is_temporary(&to))
            .await
            .map_err(store_reply)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, _id: u32, path: String) -> Result<Name, Self::Error> {
        normalize(&path)?;
        Err(StatusCode::NoSuchFile.with_message("there are no links here"))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied.with_message("links cannot be made"))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        _data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        if request != LIMITS_EXTENSION {
            return Err(StatusCode::OpUnsupported.with_message("unsupported extension"));
        }
        let mut data = Vec::with_capacity(32);
        for v in [
            u64::from(MAX_PACKET),
            u64::from(MAX_IO),
            u64::from(MAX_IO),
            self.max_handles as u64,
        ] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_confined() {
        assert_eq!(normalize("").unwrap(), "/");
        assert_eq!(normalize(".").unwrap(), "/");
        assert_eq!(normalize("inbox/./a.csv").unwrap(), "/inbox/a.csv");
        assert_eq!(normalize("/inbox//x/../a.csv").unwrap(), "/inbox/a.csv");
        assert_eq!(normalize("%2e%2e/x").unwrap(), "/%2e%2e/x", "literal names");
        for escape in ["..", "/..", "/../etc/passwd", "a/../../b", "/inbox/../../x"] {
            assert_eq!(
                normalize(escape).unwrap_err().status_code,
                StatusCode::PermissionDenied,
                "{escape}"
            );
        }
        for bad in ["..\\x", "a\\b", "bad\u{FFFD}name", "nul\0", "tab\tname"] {
            assert_eq!(
                normalize(bad).unwrap_err().status_code,
                StatusCode::BadMessage,
                "{bad:?}"
            );
        }
        assert!(normalize(&"a".repeat(256)).is_err());
        assert!(normalize(&"a/".repeat(3000)).is_err());
    }

    #[test]
    fn temporary_names() {
        for t in ["/x.csv.part", "/in/x.filepart", "/.hidden", "/in/.x.csv"] {
            assert!(is_temporary(t), "{t}");
        }
        for f in ["/x.csv", "/in/partial.csv", "/in/x.parts"] {
            assert!(!is_temporary(f), "{f}");
        }
    }
}
