-- Alerts (issue 14 item 8): where an institution wants to hear about failed runs, and the
-- outbox of alerts to deliver (written in the run's finishing transaction, so none is lost).
CREATE TABLE alert_settings (
    institution_id BIGINT PRIMARY KEY REFERENCES institutions(id) ON DELETE CASCADE,
    webhook_url TEXT,
    webhook_secret BYTEA,
    emails TEXT NOT NULL DEFAULT '[]',
    on_run_failed BOOLEAN NOT NULL DEFAULT TRUE,
    failed_rows_threshold BIGINT,
    on_credentials_refused BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alert_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    delivered_at BIGINT,
    gave_up_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX alert_outbox_institution ON alert_outbox (institution_id, id);
