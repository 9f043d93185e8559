-- A run's Sync Log rows, for its details page.
CREATE INDEX sync_log_run ON sync_log (run_id);
