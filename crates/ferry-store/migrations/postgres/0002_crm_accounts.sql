-- CRM accounts connected through OAuth (seed 002: "selecting a previously used account"), with
-- their tokens sealed like integration secrets, and the pending OAuth states.
CREATE TABLE crm_accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    external_id TEXT NOT NULL,
    label TEXT NOT NULL,
    tokens BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (institution_id, provider, external_id)
);

CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
