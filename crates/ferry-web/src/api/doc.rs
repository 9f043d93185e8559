//! Pieces of the OpenAPI document shared by many operations: the schemas of query parameters
//! whose values come from ferry-core's enums (so the document lists exactly the values the
//! handlers accept), and the error responses operations give.

use ferry_core::message::{Channel, Direction, MessageType};
use ferry_core::run::{RunStatus, SyncDirection};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::error::ErrorBody;

/// Defines a documentation-only type whose schema is a string enum of a ferry-core enum's
/// values, for `#[param(value_type = …, inline)]`.
macro_rules! enum_schema {
    ($(#[$meta:meta])* $name:ident => $core:ty) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(<$core>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

enum_schema!(
    /// A run status.
    RunStatusValue => RunStatus
);
enum_schema!(
    /// A Sync Log direction.
    SyncDirectionValue => SyncDirection
);
enum_schema!(
    /// A message channel.
    ChannelValue => Channel
);
enum_schema!(
    /// A message type.
    MessageTypeValue => MessageType
);
enum_schema!(
    /// A message direction.
    DirectionValue => Direction
);

/// 401: no credentials, or a token or session that is not valid (`unauthorized`).
#[derive(utoipa::ToResponse)]
#[response(
    description = "No credentials, or the API token or session is not valid (`unauthorized`).",
    example = json!({"error": {"code": "unauthorized", "message": "sign in, or send Authorization: Bearer <token>"}})
)]
pub struct Unauthorized(pub ErrorBody);

/// 403: the caller's role may not do this, or a cookie session sent no valid CSRF token.
#[derive(utoipa::ToResponse)]
#[response(
    description = "The caller's role may not do this (`forbidden`: it needs the admin role), or a cookie session changed something without a valid `X-CSRF-Token` header (`csrf_failed`).",
    example = json!({"error": {"code": "forbidden", "message": "this needs the admin role"}})
)]
pub struct Forbidden(pub ErrorBody);

/// 404: no record with that id in the caller's institution.
#[derive(utoipa::ToResponse)]
#[response(
    description = "No record with that id in this institution (`not_found`).",
    example = json!({"error": {"code": "not_found", "message": "no such record in this institution"}})
)]
pub struct NotFound(pub ErrorBody);

/// 413: the body is over the route's limit.
#[derive(utoipa::ToResponse)]
#[response(
    description = "The body is larger than this endpoint accepts (`payload_too_large`): 1 MiB for JSON and 64 MiB for CSV imports unless the server is set otherwise.",
    example = json!({"error": {"code": "payload_too_large", "message": "the request body is larger than this endpoint accepts"}})
)]
pub struct PayloadTooLarge(pub ErrorBody);

/// 415: a JSON endpoint got another content type.
#[derive(utoipa::ToResponse)]
#[response(
    description = "The body was not sent as `Content-Type: application/json` (`unsupported_media_type`).",
    example = json!({"error": {"code": "unsupported_media_type", "message": "send Content-Type: application/json"}})
)]
pub struct NotJson(pub ErrorBody);

/// 400: a JSON body that is not JSON.
#[derive(utoipa::ToResponse)]
#[response(
    description = "The body is not well-formed JSON (`bad_request`).",
    example = json!({"error": {"code": "bad_request", "message": "malformed JSON: EOF while parsing an object at line 1 column 1"}})
)]
pub struct MalformedJson(pub ErrorBody);

/// 400: a query parameter of the wrong type or value, or an unknown one.
#[derive(utoipa::ToResponse)]
#[response(
    description = "A query parameter is not valid (`bad_request`, `invalid_value`) or not known (`unknown_field`); `field` names it.",
    example = json!({"error": {"code": "bad_request", "message": "limit must be between 1 and 500", "field": "limit"}})
)]
pub struct BadQuery(pub ErrorBody);
