//! Emulators of the external APIs Ferry talks to, for tests, benchmarks and `ferry demo`.
//! Never used on a production path.
//!
//! - [`hubspot`]: HubSpot's CRM contacts, properties and OAuth APIs, with rate limits, fault
//!   injection and test-only administration endpoints.
//! - [`schema`]: validates responses against published OpenAPI documents (HubSpot's are
//!   embedded), for the emulator's tests and the connectors' tests.

pub mod hubspot;
pub mod schema;

mod rng;
