-- CRM accounts connected through OAuth (seed 002: "selecting a previously used account"), with
-- their tokens sealed like integration secrets, and the pending OAuth states.
CREATE TABLE crm_accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    external_id TEXT NOT NULL,
    label TEXT NOT NULL,
    tokens BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (institution_id, provider, external_id)
);

CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
