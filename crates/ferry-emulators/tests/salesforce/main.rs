//! The Salesforce emulator over real HTTP on loopback.

mod bulk;
mod collections;
mod common;
mod limits;
mod oauth;
mod query;
mod records;
mod tls;
