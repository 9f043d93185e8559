-- Opt-in paths (issue 11, seed 004 "Preparing for setup"): named entry points with a welcome
-- message, and the outbox of welcome messages queued for the platform's sender. A contact gets a
-- path's welcome at most once (the unique index), so a retried sync never queues it twice.
CREATE TABLE opt_in_paths (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    welcome_message TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX opt_in_paths_name ON opt_in_paths (institution_id, name);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    opt_in_path_id INTEGER REFERENCES opt_in_paths(id) ON DELETE SET NULL,
    integration_id INTEGER REFERENCES integrations(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    sent_at INTEGER,
    message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX outbox_once ON outbox (contact_id, opt_in_path_id);
CREATE INDEX outbox_queued ON outbox (institution_id, id) WHERE sent_at IS NULL;
