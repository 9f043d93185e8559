-- Bulk file upload (issue 12 items 7-10): templates made from a sample file, each uploaded file
-- linked to the run that ingests it (with its report), calls as voice messages with their
-- recordings, and what is purged by retention.
CREATE TABLE bulk_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    folder TEXT NOT NULL,
    file_mask TEXT NOT NULL,
    encoding TEXT NOT NULL,
    delimiter TEXT NOT NULL,
    header_row INTEGER NOT NULL,
    columns TEXT NOT NULL,
    match_by TEXT NOT NULL,
    contact TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (institution_id, folder, file_mask)
);

ALTER TABLE sftp_files ADD COLUMN run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL;
ALTER TABLE sftp_files ADD COLUMN template_id INTEGER REFERENCES bulk_templates(id) ON DELETE SET NULL;
ALTER TABLE sftp_files ADD COLUMN report TEXT;
ALTER TABLE sftp_files ADD COLUMN ingested_at INTEGER;
ALTER TABLE sftp_files ADD COLUMN purged_at INTEGER;
ALTER TABLE sftp_files ADD COLUMN by_ferry INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sftp_files_waiting ON sftp_files (status, run_id);

ALTER TABLE messages ADD COLUMN source_key TEXT;
CREATE UNIQUE INDEX messages_source_key ON messages (institution_id, source_key) WHERE source_key IS NOT NULL;

CREATE TABLE calls (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    duration_secs INTEGER NOT NULL,
    agent TEXT NOT NULL,
    recording_path TEXT,
    recording_file_id INTEGER REFERENCES sftp_files(id) ON DELETE SET NULL,
    recording_due_at INTEGER,
    recording_missing_logged INTEGER NOT NULL DEFAULT 0,
    reviewed_at INTEGER,
    imported_at INTEGER NOT NULL
);
CREATE INDEX calls_pending_recording ON calls (account_id, recording_path) WHERE recording_file_id IS NULL;
CREATE INDEX calls_retention ON calls (institution_id, imported_at) WHERE reviewed_at IS NULL;
