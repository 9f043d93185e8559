-- Alerts (issue 14 item 8): where an institution wants to hear about failed runs, and the
-- outbox of alerts to deliver (written in the run's finishing transaction, so none is lost).
CREATE TABLE alert_settings (
    institution_id INTEGER PRIMARY KEY REFERENCES institutions(id) ON DELETE CASCADE,
    webhook_url TEXT,
    webhook_secret BLOB,
    emails TEXT NOT NULL DEFAULT '[]',
    on_run_failed INTEGER NOT NULL DEFAULT 1,
    failed_rows_threshold INTEGER,
    on_credentials_refused INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);

CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id INTEGER NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    delivered_at INTEGER,
    gave_up_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX alert_outbox_institution ON alert_outbox (institution_id, id);
