-- Ferry's own SFTP server (issue 12): accounts per institution with their public keys and an
-- optional password, host keys shared by every node, the defender's per-IP scores and bans, and
-- the namespace each account sees (folders, and files with their upload status).
CREATE TABLE sftp_accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_login_at INTEGER,
    last_login_ip TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX sftp_accounts_institution ON sftp_accounts (institution_id);

CREATE TABLE sftp_account_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES sftp_accounts(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, fingerprint)
);

CREATE TABLE sftp_host_keys (
    algorithm TEXT PRIMARY KEY,
    private_key BLOB NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sftp_defender (
    ip TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    banned_until INTEGER,
    bans INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE sftp_dirs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES sftp_accounts(id) ON DELETE CASCADE,
    parent TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, path)
);
CREATE INDEX sftp_dirs_parent ON sftp_dirs (account_id, parent);

CREATE TABLE sftp_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES sftp_accounts(id) ON DELETE CASCADE,
    parent TEXT NOT NULL,
    path TEXT NOT NULL,
    object_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    visible INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    ready_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX sftp_files_visible_path ON sftp_files (account_id, path) WHERE visible = 1;
CREATE INDEX sftp_files_parent ON sftp_files (account_id, parent) WHERE visible = 1;
CREATE INDEX sftp_files_institution ON sftp_files (institution_id, id);
CREATE INDEX sftp_files_sha ON sftp_files (account_id, sha256);
