-- Bulk file upload (issue 12 items 7-10): templates made from a sample file, each uploaded file
-- linked to the run that ingests it (with its report), calls as voice messages with their
-- recordings, and what is purged by retention.
CREATE TABLE bulk_templates (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    folder TEXT NOT NULL,
    file_mask TEXT NOT NULL,
    encoding TEXT NOT NULL,
    delimiter TEXT NOT NULL,
    header_row BIGINT NOT NULL,
    columns TEXT NOT NULL,
    match_by TEXT NOT NULL,
    contact TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (institution_id, folder, file_mask)
);

ALTER TABLE sftp_files ADD COLUMN run_id BIGINT REFERENCES runs(id) ON DELETE SET NULL;
ALTER TABLE sftp_files ADD COLUMN template_id BIGINT REFERENCES bulk_templates(id) ON DELETE SET NULL;
ALTER TABLE sftp_files ADD COLUMN report TEXT;
ALTER TABLE sftp_files ADD COLUMN ingested_at BIGINT;
ALTER TABLE sftp_files ADD COLUMN purged_at BIGINT;
ALTER TABLE sftp_files ADD COLUMN by_ferry BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX sftp_files_waiting ON sftp_files (status, run_id);

ALTER TABLE messages ADD COLUMN source_key TEXT;
CREATE UNIQUE INDEX messages_source_key ON messages (institution_id, source_key) WHERE source_key IS NOT NULL;

CREATE TABLE calls (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    duration_secs BIGINT NOT NULL,
    agent TEXT NOT NULL,
    recording_path TEXT,
    recording_file_id BIGINT REFERENCES sftp_files(id) ON DELETE SET NULL,
    recording_due_at BIGINT,
    recording_missing_logged BOOLEAN NOT NULL DEFAULT FALSE,
    reviewed_at BIGINT,
    imported_at BIGINT NOT NULL
);
CREATE INDEX calls_pending_recording ON calls (account_id, recording_path) WHERE recording_file_id IS NULL;
CREATE INDEX calls_retention ON calls (institution_id, imported_at) WHERE reviewed_at IS NULL;
