-- A contact's page lists its Sync Log rows: find them without reading the institution's whole log.
CREATE INDEX sync_log_contact ON sync_log (institution_id, contact_id, id);
