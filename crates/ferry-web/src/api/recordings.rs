//! `GET /api/v1/recordings/{id}`: a call's recording, decrypted from the vault as it streams
//! (it is stored encrypted, as every uploaded file).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::api::doc as d;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};

/// Bytes decrypted per piece of the stream.
const PIECE: usize = 256 * 1024;

/// A call's recording (wav, mp3 or m4a), streamed.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", operation_id = "get_recording", params(("id" = i64, Path, description = "The recording's ID (a call's `recording_id`).")), responses(
    (status = 200, description = "The audio, with its content type.", content_type = "audio/*", body = Vec<u8>),
    (status = 401, response = d::Unauthorized),
    (status = 404, response = d::NotFound)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let file = state.store.recording(auth.institution_id(), id).await?;
    let vault = state.vault.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "this Ferry process has no file storage for recordings",
        )
    })?;
    let reader = vault.open(&file.object_key).await.map_err(|e| {
        tracing::error!(error = %e, recording = id, "could not open a recording");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the recording could not be read",
        )
    })?;
    let len = reader.len();
    let name = file
        .path
        .rsplit('/')
        .next()
        .unwrap_or("recording")
        .to_string();
    let content_type =
        ferry_core::bulk::recording_content_type(&name).unwrap_or("application/octet-stream");
    let stream = futures::stream::unfold((reader, 0u64), |(reader, at)| async move {
        if at >= reader.len() {
            return None;
        }
        let want = usize::try_from((reader.len() - at).min(PIECE as u64)).unwrap_or(PIECE);
        match reader.read_at(at, want).await {
            Ok(bytes) => {
                let next = at + bytes.len() as u64;
                Some((Ok::<_, std::io::Error>(bytes), (reader, next)))
            }
            Err(e) => {
                // A stored file that fails its check ends the stream early: never wrong bytes.
                tracing::error!(error = %e, "a recording failed while streaming");
                Some((
                    Err(std::io::Error::other("the recording could not be read")),
                    (reader, u64::MAX),
                ))
            }
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"{}\"",
        name.replace(['"', '\\'], "_")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
