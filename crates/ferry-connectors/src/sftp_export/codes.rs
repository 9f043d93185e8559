//! What each SFTP failure's code means and what to do next, for the error dictionary.

use ferry_core::errors::ErrorCode;

/// Every [`ferry_sftp::SftpError::code`], explained.
pub const SFTP_ERROR_CODES: &[ErrorCode] = ferry_core::error_codes! {
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
};

#[cfg(test)]
mod tests {
    use super::SFTP_ERROR_CODES;

    /// Every code an SFTP failure can carry into a run's reason or the Sync Log is explained,
    /// and nothing else is.
    #[test]
    fn every_sftp_code_is_explained_once() {
        let explained: Vec<&str> = SFTP_ERROR_CODES.iter().map(|e| e.code).collect();
        let mut codes = ferry_sftp::SftpError::CODES.to_vec();
        codes.sort_unstable();
        assert_eq!(explained, codes);
    }
}
