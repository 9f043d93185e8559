-- Sign-in throttling shared by every process, API token expiry, session details, and the
-- audit log. Times are microseconds since the Unix epoch (UTC).

-- One row per throttled key: an account at one client (`acct:EMAIL|CLIENT`) or a client
-- address (`ip:CLIENT`). `failures` counts failed sign-ins since the last quiet hour;
-- sign-in for the key waits until `blocked_until`.
CREATE TABLE signin_throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);
CREATE INDEX signin_throttle_last_failure ON signin_throttle (last_failure_at);

ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
ALTER TABLE sessions ADD COLUMN client TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_user ON sessions (user_id);

-- Who changed what, when; and every failed sign-in. `institution_id` is NULL for events of no
-- institution (a failed sign-in for an unknown email, a user created before any role).
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id BIGINT REFERENCES institutions(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    client TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_institution ON audit_log (institution_id, id);
