-- The fields an UNSET cleared (a JSON array of field names), so that outgoing syncs clear them
-- in the CRM too, while a field that is merely blank is never sent.
ALTER TABLE contacts ADD COLUMN cleared TEXT NOT NULL DEFAULT '[]';
