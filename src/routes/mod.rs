//! HTTP routes, one file per function the Functions host exposes. Handlers translate HTTP to
//! domain calls and back; the rules live in `domain` and the calls in `acs`.

pub mod batches;
pub mod health;
pub mod identities;
pub mod queue;
pub mod sms;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads a JSON object body of at most `limit` bytes as `T`, also returning the raw bytes
/// (for an idempotency fingerprint, when the route needs one).
///
/// # Errors
/// `unsupported_media_type`, `payload_too_large` or `invalid_json`, naming no value.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(T, Bytes), ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = read_body(headers, body, limit).await?;
    Ok((parse_json(&bytes)?, bytes))
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
    let bytes = read_body(headers, body, limit).await?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(&bytes)
}

/// Reads at most `limit` bytes, refusing early a larger declared `Content-Length`.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::InvalidJson("the body ended before its declared length".into())
        }
    })
}

/// Parses bytes as a JSON object of type `T`. Duplicate keys are refused, not merged.
///
/// # Errors
/// `invalid_json` with the position or the field path, never the value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let starts_as_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !starts_as_object {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::InvalidJson("the body must be a JSON object".into()),
                Err(error) => syntax_error(&error),
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let typed = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ApiError::InvalidJson(shape_error(&error)))?;
    deserializer.end().map_err(|error| syntax_error(&error))?;
    Ok(typed)
}

/// Describes a body that is JSON but not of the expected shape, naming only fields the
/// handler defines: an unknown key is the caller's text and is never repeated.
pub fn shape_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    if !error.inner().is_data() {
        return syntax_detail(error.inner());
    }
    let segments: Vec<&serde_path_to_error::Segment> = error.path().iter().collect();
    let message = error.inner().to_string();
    let unknown = message.starts_with("unknown field");
    let known = if unknown {
        &segments[..segments.len().saturating_sub(1)]
    } else {
        &segments[..]
    };
    let path = field_path(known);
    if let Some(field) = missing_field(&message) {
        return if path.is_empty() {
            format!("the field `{field}` is missing")
        } else {
            format!("the field `{path}.{field}` is missing")
        };
    }
    match (unknown, path.is_empty()) {
        (true, true) => "the body has a field that is not allowed".to_owned(),
        (true, false) => format!("`{path}` has a field that is not allowed"),
        (false, true) if message.starts_with("duplicate field") => {
            "the body has a duplicate field".to_owned()
        }
        (false, true) => "the body does not have the expected shape".to_owned(),
        (false, false) if message.starts_with("duplicate field") => {
            format!("`{path}` has a duplicate field")
        }
        (false, false) => format!("the field `{path}` has the wrong type"),
    }
}

/// The field named by serde's "missing field `name`" message: one of ours, never input.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn field_path(segments: &[&serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    path
}

fn syntax_error(error: &serde_json::Error) -> ApiError {
    ApiError::InvalidJson(syntax_detail(error))
}

fn syntax_detail(error: &serde_json::Error) -> String {
    if error.to_string().starts_with("recursion limit exceeded") {
        return "the body nests deeper than 128 levels".to_owned();
    }
    format!(
        "the body is not valid JSON (line {}, column {})",
        error.line(),
        error.column()
    )
}

/// The body as canonical JSON (keys sorted), for idempotency fingerprints.
///
/// # Errors
/// `invalid_json` when the bytes are not JSON.
pub fn canonical_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| syntax_error(&error))
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
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    // JSON is UTF-8; a body declared in another charset would be read wrongly.
    let other_charset = value.split(';').skip(1).any(|parameter| {
        let Some((name, charset)) = parameter.split_once('=') else {
            return false;
        };
        let charset = charset.trim().trim_matches('"');
        name.trim().eq_ignore_ascii_case("charset")
            && !charset.eq_ignore_ascii_case("utf-8")
            && !charset.eq_ignore_ascii_case("utf8")
    });
    json && !other_charset
}
