//! The error dictionary: every code a person can meet in an API answer, an import report or
//! the Sync Log, what it means and what to do next.

/// One entry of the error dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCode {
    pub code: &'static str,
    pub meaning: &'static str,
    pub next_step: &'static str,
}

macro_rules! dictionary {
    ($($code:literal => $meaning:literal, $next:literal;)+) => {
        /// Every user-facing error code, sorted by code.
        pub const DICTIONARY: &[ErrorCode] = &[$(ErrorCode { code: $code, meaning: $meaning, next_step: $next }),+];
    };
}

dictionary! {
    "bad_request" => "The request could not be read (malformed JSON, a wrong content type, or a bad query parameter).", "Check the request against the API's OpenAPI document at /api/openapi.json.";
    "conflict" => "The change clashes with existing data (for example a slug or field name that is taken).", "Choose another value, or change the existing record.";
    "crm_id_in_use" => "The CRM ID being written already belongs to another contact.", "Find the other contact by CRM ID, and correct or clear (UNSET) one of them.";
    "crm_id_not_found" => "The contact's CRM ID names no contact in the CRM (it was deleted or merged there, or the ID is wrong).", "Correct or clear (UNSET) the contact's CRM ID; with it cleared, the next sync matches by email or name and phone, or creates the contact.";
    "crm_rejected" => "The CRM refused to create or update the contact (a value it does not accept, such as an invalid email or an option its property does not have).", "Read the CRM's reason in the log message, correct the value in Ferry or the property in the CRM; the contact is retried on the next runs.";
    "csrf_failed" => "The form was not sent from a Ferry page of this session.", "Reload the page and submit again.";
    "duplicate_column" => "A CSV file names the same column twice.", "Remove the repeated column from the header row.";
    "forbidden" => "Your role does not allow this (settings and integrations are admin-only).", "Ask an admin of the institution.";
    "invalid_boolean" => "A yes/no field has a value that is not yes/no.", "Use true/false, yes/no, y/n or 1/0.";
    "invalid_date" => "A date field has a value that is not a date.", "Use YYYY-MM-DD (2026-09-01) or MM/DD/YYYY (09/01/2026).";
    "invalid_email" => "An email field has a value that is not an email address.", "Correct the address in the source record, or leave it blank to skip it.";
    "invalid_encoding" => "The file is not UTF-8 text.", "Save the file as CSV UTF-8 and upload it again.";
    "invalid_number" => "A number field has a value that is not a number.", "Use digits with an optional decimal point, e.g. 3.75.";
    "invalid_phone" => "A phone field has a value that is not a valid phone number.", "Use E.164 (+16175550101) or a 10-digit US number; correct the source record.";
    "invalid_platform_id" => "The platform ID (id) is not a positive whole number.", "Use the id shown on the contact's page, or leave the column blank to match by CRM ID or phone.";
    "invalid_text" => "A text value contains control characters.", "Remove non-printing characters from the value.";
    "invalid_value" => "A value is not one of the allowed values for its field.", "Use one of the values the message lists.";
    "match_conflict" => "The CRM ID and the phone point at different contacts, so the row was skipped.", "Decide which contact is right and correct the CRM ID or phone on the other one, then sync again.";
    "method_not_allowed" => "The API endpoint exists but does not take this HTTP method.", "Use one of the methods the message (and the Allow header) lists; see /api/openapi.json.";
    "missing_crm_id" => "The contact has no CRM ID, so an EAB Notes export left its messages out (EAB attaches notes by the student's ID).", "Set the contact's CRM ID to the student's EAB ID (import, API or a CRM sync); messages after that are exported.";
    "missing_required_field" => "A new contact needs first name, last name and phone, and one of them is missing.", "Add the missing value to the source record (or map the field), then sync again.";
    "not_found" => "The record does not exist in this institution.", "Check the id; records of other institutions are not visible.";
    "payload_too_large" => "The request body is larger than Ferry accepts.", "Send fewer records per request, or split the file.";
    "phone_in_use" => "The phone number being written already belongs to another contact.", "Find the other contact by phone, and correct or clear (UNSET) one of them.";
    "platform_id_not_found" => "The row names a platform ID that no contact of this institution has.", "Check the id, or leave it blank so the row matches by CRM ID or phone.";
    "ragged_row" => "A CSV row has a different number of cells than the header row.", "Fix the row's quoting or separators so it has one cell per column.";
    "read_only_field" => "The field cannot be written this way.", "Remove the field from the request.";
    "sftp_auth_failed" => "The SFTP server refused the username with the password or key Ferry sent.", "Check the username and the password or private key with the server's owner, then use Test Connection.";
    "sftp_connection_lost" => "The connection to the SFTP server dropped in the middle of the work.", "Nothing was published: the next run sends the same rows again. If it keeps happening, ask the server's owner about idle or transfer limits.";
    "sftp_connection_refused" => "Nothing accepts SSH connections at that host and port.", "Check the host and port (usually 22) with the server's owner.";
    "sftp_directory_missing" => "The directory set for the upload does not exist on the SFTP server.", "Correct the Directory, or ask the server's owner to create it.";
    "sftp_dns_failed" => "The SFTP host name could not be resolved.", "Check the spelling of the host.";
    "sftp_file_exists" => "A file with the upload's name already exists, and Ferry never overwrites files.", "Remove or rename the file on the server; file names carry a timestamp, so this should not recur.";
    "sftp_handshake_failed" => "The server at that address did not complete an SSH handshake (it may not be an SSH server).", "Check the host and port; ask the server's owner which address serves SFTP.";
    "sftp_host_key_changed" => "The SFTP server presented a different host key from the one pinned at the first connection.", "Confirm the new key's fingerprint with the server's owner, then re-pin it in the integration's settings.";
    "sftp_host_unreachable" => "The SFTP host could not be reached over the network.", "Check the host, and that the server's allow list has Ferry's IP addresses.";
    "sftp_invalid_file_name" => "The file prefix makes a file name the server cannot take.", "Use letters, digits, dashes and underscores in the File Prefix.";
    "sftp_invalid_target" => "The SFTP settings are incomplete or malformed.", "Fill in host, port and username, and a password or private key.";
    "sftp_key_passphrase_required" => "The private key is encrypted and no passphrase was given.", "Enter the key's passphrase.";
    "sftp_key_unreadable" => "The private key could not be read.", "Paste the whole key, from its BEGIN line to its END line.";
    "sftp_key_unsupported" => "The private key's format or type is not supported.", "Use an ed25519, RSA or ECDSA key in OpenSSH or PKCS#8 format (ssh-keygen -p -o converts old PEM keys).";
    "sftp_key_wrong_passphrase" => "The passphrase does not decrypt the private key.", "Enter the key's correct passphrase.";
    "sftp_not_a_directory" => "The Directory set for the upload is a file, not a directory.", "Correct the Directory.";
    "sftp_permission_denied" => "The SFTP user may not write in that directory.", "Ask the server's owner to give the user write access there, or choose another Directory.";
    "sftp_remote_error" => "The SFTP server reported an error Ferry does not recognise.", "Read the message for the server's reason; retry, or ask the server's owner.";
    "sftp_rename_failed" => "The uploaded file could not be renamed from .part to its final name.", "Nothing was published; the next run sends the rows again. Ask the server's owner whether renames are allowed there.";
    "sftp_rsa_sha1_only" => "The SFTP server accepts RSA keys only with the obsolete SHA-1 signature, which Ferry does not use.", "Ask the server's owner to allow rsa-sha2-256/512, or use an ed25519 or ECDSA key.";
    "sftp_source_read_failed" => "Ferry could not read the file it was about to upload.", "Retry; if it recurs, report it with the run id.";
    "sftp_subsystem_unavailable" => "The SSH server does not offer SFTP.", "Ask the server's owner to enable the SFTP subsystem for this user.";
    "sftp_timeout" => "The SFTP server did not answer in time.", "Check that the server's allow list has Ferry's IP addresses; retry later.";
    "sftp_write_failed" => "Writing the file on the SFTP server failed (for example a full disk or a quota).", "Nothing was published; ask the server's owner about free space, then retry.";
    "too_many_requests" => "Too many failed sign-in attempts.", "Wait a minute and try again.";
    "too_many_rows" => "The download would hold more rows than Ferry sends at once.", "Choose a shorter time range and download it in parts.";
    "unauthorized" => "No valid session or API token was given.", "Sign in, or send Authorization: Bearer <token>.";
    "unclosed_quote" => "A quoted value in a CSV file opens a quote that is never closed, or that only a quote on a later row closes.", "In an import, that row was skipped and the rest of the file read from the next line: close or remove the quote on the row and import the file again (rows already imported are matched, not duplicated).";
    "unknown_field" => "A field or column name is not a contact field of this institution.", "Check the spelling, or define the custom field first under Settings > Custom fields.";
    "unset_not_allowed" => "UNSET was used on a field it cannot clear.", "UNSET clears custom fields, first name, last name, preferred name, phone, enrollment ID and CRM ID only.";
    "unsupported_media_type" => "The request's Content-Type is not the one this endpoint takes.", "Send application/json, or text/csv for imports.";
    "value_too_long" => "A value is longer than the field allows.", "Shorten the value (names and IDs: 255 characters; custom text: 4,000).";
}

/// Looks up a code.
pub fn lookup(code: &str) -> Option<&'static ErrorCode> {
    DICTIONARY
        .binary_search_by(|e| e.code.cmp(code))
        .ok()
        .map(|i| &DICTIONARY[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique() {
        assert!(DICTIONARY.windows(2).all(|w| w[0].code < w[1].code));
        assert!(lookup("match_conflict").is_some());
        assert!(lookup("nope").is_none());
    }

    #[test]
    fn every_core_code_is_listed() {
        use crate::matching::MatchError;
        let codes = [
            MatchError::PlatformIdNotFound(1).code(),
            MatchError::PhoneInUse(1).code(),
            MatchError::CrmIdInUse(1).code(),
            MatchError::KeysPointAtDifferentContacts {
                crm_contact: 1,
                phone_contact: 2,
            }
            .code(),
        ];
        for code in codes {
            assert!(
                lookup(code).is_some(),
                "{code} is missing from the dictionary"
            );
        }
        // Field errors: every code parse_typed and ContactWrite::parse can produce.
        for code in [
            "unknown_field",
            "invalid_phone",
            "invalid_email",
            "invalid_number",
            "invalid_date",
            "invalid_boolean",
            "invalid_text",
            "value_too_long",
            "unset_not_allowed",
            "missing_required_field",
            "read_only_field",
            "invalid_platform_id",
        ] {
            assert!(
                lookup(code).is_some(),
                "{code} is missing from the dictionary"
            );
        }
    }
}
