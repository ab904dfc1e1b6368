//! HTTP routes, one file per function the Functions host exposes. Handlers translate HTTP to
//! domain calls and back; the rules live in `domain` and the calls in `acs`.

pub mod batches;
pub mod health;
pub mod identities;
pub mod queue;
pub mod sms;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads a JSON object body of at most `limit` bytes as `T`, also returning it as a
/// canonical JSON value (keys sorted) for idempotency fingerprints.
///
/// # Errors
/// `unsupported_media_type`, `payload_too_large` or `invalid_json`, naming no value.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(T, serde_json::Value), ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    parse_json(&bytes)
}

/// Like [`read_json`], for routes whose body is optional: an empty body reads as
/// `T::default()` whatever its content type; any other body must be a JSON object.
///
/// # Errors
/// `payload_too_large`, `unsupported_media_type` or `invalid_json`, naming no value.
pub async fn read_optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(&bytes).map(|(typed, _)| typed)
}

/// Parses bytes as a JSON object, then as `T`.
///
/// # Errors
/// `invalid_json` with the position or the field path, never the value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, serde_json::Value), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::InvalidJson(format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    }
    // Typed parsing reads the bytes again, so duplicate keys are refused rather than merged.
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let typed = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let detail = if path == "." {
            "the body has a field that is not allowed or a duplicate field".to_owned()
        } else {
            format!("the field `{path}` has the wrong type or is not allowed")
        };
        ApiError::InvalidJson(detail)
    })?;
    Ok((typed, value))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_content_type)
}

/// Whether a `Content-Type` value names JSON (`application/json` or `application/*+json`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}
