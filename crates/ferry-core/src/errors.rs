//! The error dictionary: every code a person can meet in an API answer, an import report or
//! the Sync Log, what it means and what to do next.

/// One entry of the error dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorCode {
    /// The code as it appears in answers, reports and the Sync Log (`snake_case`).
    pub code: &'static str,
    /// What happened, in a sentence for people.
    pub meaning: &'static str,
    /// What to do about it.
    pub next_step: &'static str,
}

/// A list of [`ErrorCode`]s written `"code" => "meaning", "next step";`, one per line.
#[macro_export]
macro_rules! error_codes {
    ($($code:literal => $meaning:literal, $next:literal;)+) => {
        &[$($crate::errors::ErrorCode { code: $code, meaning: $meaning, next_step: $next }),+]
    };
}

/// The core's user-facing error codes, sorted by code: those of the API, imports, contacts
/// and matching. Each connector adds its own in its description; the registry assembles the
/// whole dictionary.
pub const DICTIONARY: &[ErrorCode] = error_codes! {
    "bad_request" => "The request could not be read (malformed JSON, a wrong content type, or a bad query parameter).", "Check the request against the API's OpenAPI document at /api/openapi.json.";
    "conflict" => "The change clashes with existing data (for example a slug or field name that is taken).", "Choose another value, or change the existing record.";
    "crm_id_in_use" => "The CRM ID being written already belongs to another contact.", "Find the other contact by CRM ID, and correct or clear (UNSET) one of them.";
    "crm_id_not_found" => "The contact's CRM ID names no contact in the CRM (it was deleted or merged there, or the ID is wrong).", "Correct or clear (UNSET) the contact's CRM ID; with it cleared, the next sync matches by email or name and phone, or creates the contact.";
    "crm_rejected" => "The CRM refused to create or update the contact (a value it does not accept, such as an invalid email or an option its property does not have).", "Read the CRM's reason in the log message, correct the value in Ferry or the property in the CRM; the contact is retried on the next runs.";
    "csrf_failed" => "The form was not sent from a Ferry page of this session.", "Reload the page and submit again.";
    "duplicate_column" => "A CSV file names the same column twice.", "Remove the repeated column from the header row.";
    "filtered_out" => "The contact did not pass the integration's filters, so the integration left it alone (a skip, not an error).", "If the contact should sync, change its value of the filtered field, or the instance's filters.";
    "forbidden" => "Your role does not allow this (settings and integrations are admin-only).", "Ask an admin of the institution.";
    "internal" => "Ferry failed for a reason that is not the request's fault (the database or a remote was unavailable, or a bug). Nothing was changed; the answer carries a correlation id that is in Ferry's log.", "Try again; if it persists, give the correlation id to whoever runs Ferry so they can find the logged cause.";
    "invalid_boolean" => "A yes/no field has a value that is not yes/no.", "Use true/false, yes/no, y/n or 1/0.";
    "invalid_date" => "A date field has a value that is not a date.", "Use YYYY-MM-DD (2026-09-01) or MM/DD/YYYY (09/01/2026).";
    "invalid_email" => "An email field has a value that is not an email address.", "Correct the address in the source record, or leave it blank to skip it.";
    "invalid_encoding" => "The file is not UTF-8 text.", "Save the file as CSV UTF-8 and upload it again.";
    "invalid_number" => "A number field has a value that is not a number.", "Use digits with an optional decimal point, e.g. 3.75.";
    "invalid_opt_in_status" => "The SMS opt-in status is not one of its three values.", "Use opted_in, opted_out or unknown (case and spaces do not matter), or leave it blank to keep the current status.";
    "invalid_phone" => "A phone field has a value that is not a valid phone number.", "Use E.164 (+16175550101) or a 10-digit US number; correct the source record.";
    "invalid_platform_id" => "The platform ID (id) is not a positive whole number.", "Use the id shown on the contact's page, or leave the column blank to match by CRM ID or phone.";
    "invalid_text" => "A text value contains control characters.", "Remove non-printing characters from the value.";
    "invalid_value" => "A value is not one of the allowed values for its field.", "Use one of the values the message lists.";
    "match_conflict" => "The CRM ID and the phone point at different contacts, so the row was skipped.", "Decide which contact is right and correct the CRM ID or phone on the other one, then sync again.";
    "method_not_allowed" => "The API endpoint exists but does not take this HTTP method.", "Use one of the methods the message (and the Allow header) lists; see /api/openapi.json.";
    "missing_file" => "An upload form was sent without a file.", "Choose a CSV file in the form, then upload again.";
    "missing_required_field" => "A new contact needs first name, last name and phone, and one of them is missing.", "Add the missing value to the source record (or map the field), then sync again.";
    "not_found" => "The record does not exist in this institution.", "Check the id; records of other institutions are not visible.";
    "opt_in_path_missing" => "The opt-in path an integration names for new contacts no longer exists, so no welcome message was queued for the contacts it created.", "Choose an existing opt-in path (Settings → Opt-in paths) in the integration's settings, or clear it.";
    "payload_too_large" => "The request body is larger than Ferry accepts.", "Send fewer records per request, or split the file.";
    "phone_in_use" => "The phone number being written already belongs to another contact.", "Find the other contact by phone, and correct or clear (UNSET) one of them.";
    "platform_id_not_found" => "The row names a platform ID that no contact of this institution has.", "Check the id, or leave it blank so the row matches by CRM ID or phone.";
    "ragged_row" => "A CSV row has a different number of cells than the header row.", "Fix the row's quoting or separators so it has one cell per column.";
    "read_only_field" => "The field cannot be written this way.", "Remove the field from the request.";
    "remote_timeout" => "The remote system (a CRM or SFTP server) did not answer within the time Ferry waits when saving an integration, so nothing was saved.", "Check that the remote is reachable and its credentials are right, then save again; the message says how long Ferry waited.";
    "too_many_requests" => "Too many failed sign-in attempts.", "Wait a minute and try again.";
    "too_many_rows" => "The download would hold more rows than Ferry sends at once.", "Choose a shorter time range and download it in parts.";
    "unauthorized" => "No valid session or API token was given.", "Sign in, or send Authorization: Bearer <token>.";
    "unclosed_quote" => "A quoted value in a CSV file opens a quote that is never closed, or that only a quote on a later row closes.", "In an import, that row was skipped and the rest of the file read from the next line: close or remove the quote on the row and import the file again (rows already imported are matched, not duplicated).";
    "unknown_field" => "A field or column name is not a contact field of this institution.", "Check the spelling, or define the custom field first under Settings > Custom fields.";
    "unset_not_allowed" => "UNSET was used on a field it cannot clear.", "UNSET clears custom fields, first name, last name, preferred name, phone, enrollment ID and CRM ID only.";
    "unsupported_media_type" => "The request's Content-Type is not the one this endpoint takes.", "Send application/json, or text/csv for imports; in the upload form, choose a .csv file.";
    "value_too_long" => "A value is longer than the field allows.", "Shorten the value (names and IDs: 255 characters; custom text: 4,000).";
};

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
            "invalid_opt_in_status",
        ] {
            assert!(
                lookup(code).is_some(),
                "{code} is missing from the dictionary"
            );
        }
    }
}
