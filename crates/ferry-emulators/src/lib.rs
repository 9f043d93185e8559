//! Emulators of the external APIs Ferry talks to, for tests, benchmarks and `ferry demo`.
//! Never used on a production path.
//!
//! - [`everyaction`]: EveryAction's (NGP VAN API v4) people, API key profile and changed-entity
//!   export APIs, with its rate limit, fault injection and test-only administration endpoints.
//! - [`hubspot`]: HubSpot's CRM contacts, properties and OAuth APIs, with rate limits, fault
//!   injection and test-only administration endpoints.
//! - [`salesforce`]: Salesforce's OAuth (web-server flow with PKCE, refresh, JWT bearer), REST
//!   describe, SOQL query, record and sObject Collections APIs, with its daily limit, fault
//!   injection and test-only administration endpoints.
//! - [`schema`]: validates responses against published OpenAPI documents (HubSpot's are
//!   embedded), for the emulator's tests and the connectors' tests.

pub mod everyaction;
pub mod hubspot;
pub mod salesforce;
pub mod schema;

mod rng;
