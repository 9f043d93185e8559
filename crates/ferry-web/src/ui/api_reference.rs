//! The API reference in the browser: Ferry's OpenAPI document (`/api/openapi.json`) rendered by
//! the vendored Scalar API Reference (npm `@scalar/api-reference`, see `assets/VENDORED.md`),
//! served from Ferry's own assets. Its "Test Request" sends requests from the page: reads use
//! the signed-in session; changes take an API token entered under Authentication.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Nav;
use crate::AppState;
use crate::auth::Auth;

/// The page's content policy: Ferry's, but the viewer writes its styles into the page.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

#[derive(Template, WebTemplate)]
#[template(path = "api_reference.html")]
struct ApiReferencePage {
    nav: Nav,
}

/// `GET /api-reference`: the REST API's reference, rendered from its OpenAPI document.
pub async fn page(State(state): State<AppState>, auth: Auth) -> Response {
    let mut res = ApiReferencePage {
        nav: Nav::new(&state, &auth, "api_reference"),
    }
    .into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    res
}
