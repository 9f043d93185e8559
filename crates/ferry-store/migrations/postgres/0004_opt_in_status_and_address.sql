-- SMS opt-in status (opted_in, opted_out, unknown) with the time it last changed (microseconds),
-- and the address fields. Contacts already opted in keep that as their status.
ALTER TABLE contacts ADD COLUMN sms_opt_in TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE contacts ADD COLUMN sms_opt_in_changed_at BIGINT;
ALTER TABLE contacts ADD COLUMN street_address TEXT;
ALTER TABLE contacts ADD COLUMN street_address_2 TEXT;
ALTER TABLE contacts ADD COLUMN city TEXT;
ALTER TABLE contacts ADD COLUMN state TEXT;
ALTER TABLE contacts ADD COLUMN zip_code TEXT;
ALTER TABLE contacts ADD COLUMN country TEXT;
UPDATE contacts SET sms_opt_in = 'opted_in' WHERE opt_in = TRUE;
