//! Named points at which a test has the process killed, to check what a crash there leaves.
//!
//! Built only with the `failpoints` feature (the tests of the `ferry` binary turn it on): the
//! process kills itself with `SIGKILL` on reaching the point named by the `FERRY_FAILPOINT`
//! environment variable, so nothing after it runs, no destructor and no buffered write.
//! Without the feature [`hit`] does nothing and costs nothing.

/// Kills the process if `FERRY_FAILPOINT` names `point` (only with the `failpoints` feature).
#[cfg(feature = "failpoints")]
pub fn hit(point: &str) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("FERRY_FAILPOINT").ok());
    if armed.as_deref() == Some(point) {
        // SAFETY: kill(2) with our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Does nothing: this build has no failpoints.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str) {}
