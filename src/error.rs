//! `ApiError`, the one error type that becomes an HTTP response: an
//! `application/problem+json` body (RFC 9457) with a machine-readable `code`.
//!
//! Messages name fields and rules, never values. Server-side faults are logged once, here.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::acs::AcsError;
use crate::domain::{FieldError, FieldErrors};

const PROBLEM_JSON: &str = "application/problem+json";
/// Wait suggested to callers when ACS named none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Everything a route can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not JSON of the expected shape")]
    InvalidJson(String),
    #[error("the request breaks validation rules")]
    Validation(FieldErrors),
    #[error("the body is not application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than the route allows")]
    PayloadTooLarge { limit: usize },
    #[error("no such route or resource")]
    NotFound(&'static str),
    #[error("the method is not allowed on this route")]
    MethodNotAllowed,
    #[error("the idempotency key was used with a different body")]
    IdempotencyKeyReused,
    #[error("the request took too long")]
    Timeout,
    #[error(transparent)]
    Acs(#[from] AcsError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// Status, code, title, detail and `Retry-After` of this error.
    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Option<Duration>,
    ) {
        use StatusCode as S;
        match self {
            Self::InvalidJson(detail) => (
                S::BAD_REQUEST,
                "invalid_json",
                "Invalid JSON",
                detail.clone(),
                None,
            ),
            Self::Validation(errors) => (
                S::BAD_REQUEST,
                "validation_failed",
                "Validation failed",
                format!("{} field(s) break a rule; see errors", errors.len()),
                None,
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json, in UTF-8".into(),
                None,
            ),
            Self::PayloadTooLarge { limit } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                format!("the body must be at most {limit} bytes"),
                None,
            ),
            Self::NotFound(what) => (
                S::NOT_FOUND,
                "not_found",
                "Not found",
                format!("no such {what}"),
                None,
            ),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this route does not accept that method".into(),
                None,
            ),
            Self::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
                "this Idempotency-Key was already used with a different body".into(),
                None,
            ),
            Self::Timeout => (
                S::SERVICE_UNAVAILABLE,
                "request_timeout",
                "Request timed out",
                "the handler could not finish in time; retry with the same Idempotency-Key".into(),
                Some(DEFAULT_RETRY_AFTER),
            ),
            Self::Acs(error) => acs_parts(error),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal error",
                "the handler failed; the cause is in its log".into(),
                None,
            ),
        }
    }

    /// The problem document and headers, for routes that answer through the host protocol.
    pub fn to_problem(&self) -> (StatusCode, Problem, Option<Duration>) {
        let (status, code, title, detail, retry_after) = self.parts();
        let errors = match self {
            Self::Validation(errors) => errors.clone().into_vec(),
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: format!("urn:acs-sms-handler:problem:{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            errors,
        };
        (status, problem, retry_after)
    }

    /// Logs server-side faults once, with their cause chain; caller errors are not logged.
    fn log(&self) {
        match self {
            Self::Acs(error) => {
                let chain = cause_chain(error);
                if error.is_transient() {
                    tracing::warn!(error = %error, cause = %chain, status = error.status(), "ACS call failed");
                } else {
                    tracing::error!(error = %error, cause = %chain, status = error.status(), "ACS call failed");
                }
            }
            Self::Internal(reason) => tracing::error!(error = %reason, "request failed"),
            Self::Timeout => tracing::warn!("request timed out"),
            _ => {}
        }
    }
}

fn acs_parts(
    error: &AcsError,
) -> (
    StatusCode,
    &'static str,
    &'static str,
    String,
    Option<Duration>,
) {
    use StatusCode as S;
    let retry_after = Some(error.retry_after().unwrap_or(DEFAULT_RETRY_AFTER));
    match error {
        AcsError::Throttled { .. } => (
            S::TOO_MANY_REQUESTS,
            "acs_throttled",
            "ACS throttled the request",
            "ACS is throttling this resource; retry after the time in Retry-After".into(),
            retry_after,
        ),
        AcsError::Unavailable { .. }
        | AcsError::Timeout
        | AcsError::Connection(_)
        | AcsError::MalformedAnswer { .. } => (
            S::SERVICE_UNAVAILABLE,
            "acs_unavailable",
            "ACS unavailable",
            "ACS did not answer successfully after retries; retry later".into(),
            retry_after,
        ),
        AcsError::LocalOutbox(_) => (
            S::SERVICE_UNAVAILABLE,
            "outbox_unavailable",
            "Local outbox unavailable",
            "the local outbox file could not be written; check SMS_OUTBOX_PATH".into(),
            retry_after,
        ),
        AcsError::Credential(_) => (
            S::SERVICE_UNAVAILABLE,
            "credential_unavailable",
            "Credential unavailable",
            "no token for ACS could be obtained; retry later".into(),
            retry_after,
        ),
        AcsError::Forbidden { status } => (
            S::BAD_GATEWAY,
            "acs_forbidden",
            "ACS refused the credential",
            format!("ACS answered {status}: the app's identity lacks a role on the ACS resource, or a new role assignment has not propagated yet"),
            None,
        ),
        AcsError::NotFound => (S::NOT_FOUND, "not_found", "Not found", "ACS has no such resource".into(), None),
        AcsError::Rejected { status, code, message } => (
            S::BAD_GATEWAY,
            "acs_rejected",
            "ACS rejected the request",
            format!(
                "ACS answered {status} ({}): {}",
                code.as_deref().unwrap_or("no code"),
                message.as_deref().unwrap_or("no message")
            ),
            None,
        ),
        AcsError::InvalidResponse(_) => (
            S::BAD_GATEWAY,
            "acs_rejected",
            "ACS answered unexpectedly",
            "ACS answered with a body that does not match its contract".into(),
            None,
        ),
    }
}

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain.join(": ")
}

/// Whole seconds for `Retry-After`, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let (status, problem, retry_after) = self.to_problem();
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(wait) = retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(wait).max(1)),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acs::CredentialError;

    fn status_and_code(error: &ApiError) -> (u16, &'static str, bool) {
        let (status, problem, retry_after) = error.to_problem();
        (status.as_u16(), problem.code, retry_after.is_some())
    }

    #[test]
    fn every_arm_maps_to_its_documented_status_and_code() {
        let mut fields = FieldErrors::default();
        fields.push("to", "is required");
        let cases: Vec<(ApiError, (u16, &str, bool))> = vec![
            (
                ApiError::InvalidJson("x".into()),
                (400, "invalid_json", false),
            ),
            (
                ApiError::Validation(fields),
                (400, "validation_failed", false),
            ),
            (
                ApiError::UnsupportedMediaType,
                (415, "unsupported_media_type", false),
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                (413, "payload_too_large", false),
            ),
            (ApiError::NotFound("route"), (404, "not_found", false)),
            (
                ApiError::MethodNotAllowed,
                (405, "method_not_allowed", false),
            ),
            (
                ApiError::IdempotencyKeyReused,
                (422, "idempotency_key_reused", false),
            ),
            (ApiError::Timeout, (503, "request_timeout", true)),
            (
                ApiError::Internal("x".into()),
                (500, "internal_error", false),
            ),
            (
                AcsError::Throttled { retry_after: None }.into(),
                (429, "acs_throttled", true),
            ),
            (
                AcsError::Unavailable {
                    status: 503,
                    retry_after: None,
                }
                .into(),
                (503, "acs_unavailable", true),
            ),
            (AcsError::Timeout.into(), (503, "acs_unavailable", true)),
            (
                AcsError::LocalOutbox(std::io::ErrorKind::IsADirectory).into(),
                (503, "outbox_unavailable", true),
            ),
            (
                AcsError::Forbidden { status: 403 }.into(),
                (502, "acs_forbidden", false),
            ),
            (
                AcsError::Rejected {
                    status: 400,
                    code: None,
                    message: None,
                }
                .into(),
                (502, "acs_rejected", false),
            ),
            (
                AcsError::InvalidResponse("x".into()).into(),
                (502, "acs_rejected", false),
            ),
            (
                AcsError::MalformedAnswer { status: 202 }.into(),
                (503, "acs_unavailable", true),
            ),
            (AcsError::NotFound.into(), (404, "not_found", false)),
            (
                AcsError::Credential(CredentialError {
                    kind: "test",
                    reason: "down".into(),
                })
                .into(),
                (503, "credential_unavailable", true),
            ),
        ];
        for (error, expected) in cases {
            let name = format!("{error:?}");
            assert_eq!(status_and_code(&error), expected, "{name}");
        }
    }

    #[test]
    fn retry_after_passes_through_the_wait_acs_asked_for() {
        let error: ApiError = AcsError::Throttled {
            retry_after: Some(Duration::from_millis(2500)),
        }
        .into();

        let (_, _, retry_after) = error.to_problem();

        assert_eq!(retry_after_seconds(retry_after.unwrap()), 3);
    }

    #[test]
    fn validation_problems_list_every_field() {
        let mut fields = FieldErrors::default();
        fields.push("to[0]", "must be in E.164 form");
        fields.push("message", "is required");

        let (_, problem, _) = ApiError::Validation(fields).to_problem();
        let body = serde_json::to_value(&problem).unwrap();

        assert_eq!(body["errors"][0]["field"], "to[0]");
        assert_eq!(body["errors"][1]["field"], "message");
        assert_eq!(body["status"], 400);
    }
}
