//! Ferry's web layer end to end: the real app on a loopback port with a fresh store (SQLite, or
//! PostgreSQL when `FERRY_TEST_DATABASE_URL` is set), spoken to over HTTP.

mod browser;
mod contacts;
mod helpers;
mod hubspot;
mod integrations;
mod messages_fields;
mod openapi;
mod routes;
mod runs;
mod screens;
mod sessions;
mod synclog;
mod types;
#[path = "../support/webdriver.rs"]
mod webdriver;
