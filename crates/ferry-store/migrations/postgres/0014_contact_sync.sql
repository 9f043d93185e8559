-- A contact's sync status: per integration and direction, the last time a run touched the
-- contact, how it ended, and the contact's ID in the other system. Rows go with the contact,
-- the integration or the institution.
CREATE TABLE contact_sync (
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    integration_id BIGINT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    last_synced_at BIGINT NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('synced', 'failed', 'skipped')),
    code TEXT,
    remote_id TEXT,
    PRIMARY KEY (contact_id, integration_id, direction)
);
-- Deleting an integration finds its rows without reading the whole table.
CREATE INDEX contact_sync_integration ON contact_sync (integration_id);
