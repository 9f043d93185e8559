//! Words of the audit log.

use crate::string_enum;

string_enum! {
    /// What kind of party acted.
    pub enum ActorKind {
        /// A signed-in user (the name is the email).
        User = "user",
        /// An API token (the name is `#ID name`).
        Token = "token",
        /// The command line on the server (the name is the operating-system user, if known).
        Cli = "cli",
        /// Ferry itself: the worker, the scheduler.
        System = "system",
        /// Someone not signed in (failed sign-ins).
        Anonymous = "anonymous",
    }
}
