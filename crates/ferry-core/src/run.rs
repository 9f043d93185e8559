//! Integration runs: what started them and where they are.

crate::string_enum! {
    /// Why a run exists.
    pub enum Trigger {
        /// The integration's schedule came due.
        Scheduled = "scheduled",
        /// Someone pressed Run now (or called the API).
        Manual = "manual",
        /// Contacts changed since the last outgoing run.
        Change = "change",
        /// A file arrived on Ferry's own SFTP server (a clean close or a rename into an
        /// accepted name).
        FileArrived = "file_arrived",
        /// The daily retention run of inbound files.
        Retention = "retention",
    }
}

crate::string_enum! {
    /// A run's state. `queued → running → success | skipped | failed`; a running run whose
    /// worker stopped heartbeating goes back to `queued` (or to `failed` after its last attempt).
    pub enum RunStatus {
        /// Waiting for a worker.
        Queued = "queued",
        /// A worker holds it and heartbeats.
        Running = "running",
        /// The run finished its work.
        Success = "success",
        /// The run found nothing to send.
        Skipped = "skipped",
        /// The run stopped on an error, or its worker went quiet on the last attempt.
        Failed = "failed",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Skipped | RunStatus::Failed
        )
    }

    /// Whether a run may move from `self` to `next`.
    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, next),
            (Queued, Running) | (Running, Success | Skipped | Failed | Queued) | (Queued, Failed)
        )
    }

    /// The label Recent Runs shows.
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::Running => "Running",
            RunStatus::Success => "Success",
            RunStatus::Skipped => "Skipped",
            RunStatus::Failed => "Fail",
        }
    }
}

crate::string_enum! {
    /// Which way data flows for a Sync Log row.
    pub enum SyncDirection {
        /// From the CRM or file into Ferry.
        Incoming = "incoming",
        /// From Ferry to the CRM or file.
        Outgoing = "outgoing",
    }
}

crate::string_enum! {
    /// How an integration's last attempt to sync one contact ended.
    pub enum SyncOutcome {
        /// The contact was written (to the CRM, or into Ferry).
        Synced = "synced",
        /// The write failed; the code says why (and the Sync Log has the row).
        Failed = "failed",
        /// The contact was filtered out or skipped on purpose; the code says why.
        Skipped = "skipped",
    }
}

/// What one run did with one contact, for the contact's sync status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// The Ferry contact.
    pub contact_id: i64,
    /// Which way the data was going.
    pub direction: SyncDirection,
    /// How it ended.
    pub result: SyncOutcome,
    /// An error-dictionary code, for a failure or a skip.
    pub code: Option<String>,
    /// The contact's ID in the other system (the CRM ID), when known.
    pub remote_id: Option<String>,
    /// When it happened.
    pub at: jiff::Timestamp,
}

impl SyncResult {
    /// A contact written, with its ID in the other system when one is known.
    pub fn synced(
        contact_id: i64,
        direction: SyncDirection,
        remote_id: Option<String>,
    ) -> SyncResult {
        SyncResult {
            contact_id,
            direction,
            result: SyncOutcome::Synced,
            code: None,
            remote_id,
            at: jiff::Timestamp::now(),
        }
    }

    /// A contact whose write failed with `code`.
    pub fn failed(
        contact_id: i64,
        direction: SyncDirection,
        code: impl Into<String>,
        remote_id: Option<String>,
    ) -> SyncResult {
        SyncResult::with_code(contact_id, direction, SyncOutcome::Failed, code, remote_id)
    }

    /// A contact filtered out or skipped, with `code`.
    pub fn skipped(
        contact_id: i64,
        direction: SyncDirection,
        code: impl Into<String>,
        remote_id: Option<String>,
    ) -> SyncResult {
        SyncResult::with_code(contact_id, direction, SyncOutcome::Skipped, code, remote_id)
    }

    fn with_code(
        contact_id: i64,
        direction: SyncDirection,
        result: SyncOutcome,
        code: impl Into<String>,
        remote_id: Option<String>,
    ) -> SyncResult {
        SyncResult {
            contact_id,
            direction,
            result,
            code: Some(code.into()),
            remote_id,
            at: jiff::Timestamp::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus::*;

    #[test]
    fn status_machine() {
        assert!(Queued.can_become(Running));
        assert!(Running.can_become(Success));
        assert!(Running.can_become(Queued), "a stale run is re-queued");
        assert!(!Success.can_become(Running));
        assert!(!Queued.can_become(Success));
        assert!(Skipped.is_final() && !Running.is_final());
        assert_eq!(Failed.label(), "Fail");
    }
}
