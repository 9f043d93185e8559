//! Ferry's web layer end to end: the real app on a loopback port with a fresh store (SQLite, or
//! PostgreSQL when `FERRY_TEST_DATABASE_URL` is set), spoken to over HTTP. The suite lives in
//! the `ferry` crate, not in `ferry-web`, because it drives the real connectors (HubSpot, the
//! SFTP exports…) that the web crate must not name.

mod alerts;
mod audit;
mod browser;
mod browser_bulk;
mod browser_contacts;
mod browser_optin;
mod browser_runs;
mod browser_security;
mod bulk;
mod contacts;
mod contacts_ui;
mod everyaction;
mod helpers;
mod hubspot;
mod integrations;
mod messages_fields;
mod openapi;
mod optin;
mod routes;
mod runs;
mod salesforce;
mod screens;
mod sessions;
mod sftp_accounts;
mod signin;
mod synclog;
mod tokens;
mod types;
#[path = "../support/webdriver.rs"]
mod webdriver;
