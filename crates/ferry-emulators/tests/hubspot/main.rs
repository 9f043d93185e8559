//! The HubSpot emulator over real HTTP on loopback. Every answer to an operation that HubSpot's
//! OpenAPI documents describe is validated against them (see `common::validate`).

mod admin;
mod batch;
mod common;
mod contacts;
mod faults;
mod limits;
mod oauth;
mod properties;
mod schema;
mod search;
