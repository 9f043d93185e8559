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
