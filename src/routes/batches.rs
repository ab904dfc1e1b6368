//! `POST /EnqueueSmsBatch` (public route `POST /api/sms/batches`): validate a whole batch,
//! then split it into queue messages of at most 100 recipients.
//!
//! The function has a queue output, so the host does not forward it: the request arrives in
//! `Data.req` of an invocation, and the answer goes back through `Outputs.res`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Batch, BatchRequestBody};
use crate::error::{retry_after_seconds, ApiError};
use crate::host::{HttpOutput, HttpRequestData, Invocation, InvocationResponse};
use crate::startup::AppState;

/// Largest batch body: 10,000 recipients with their texts fit with room to spare.
pub const BATCH_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// The `http` output binding in `function-definitions/EnqueueSmsBatch/function.json`.
const HTTP_OUTPUT: &str = "res";
/// The `queue` output binding in the same file.
const QUEUE_OUTPUT: &str = "outbox";

/// The answer to an accepted batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAccepted {
    pub batch_id: Uuid,
    pub queue_messages: usize,
    pub recipients: usize,
}

/// Validates a batch and enqueues its parts, or answers with a problem and enqueues nothing.
pub async fn enqueue_sms_batch(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut answer = InvocationResponse::default();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() != StatusCode::PAYLOAD_TOO_LARGE => {
            return unreadable_invocation();
        }
        Err(_) => {
            // The invocation carries the caller's body, so an oversized invocation means a
            // body far over the batch limit.
            let error = ApiError::PayloadTooLarge {
                limit: BATCH_BODY_LIMIT,
            };
            answer.logs.push(format!("batch refused: {error}"));
            answer.http(HTTP_OUTPUT, problem_output(&error));
            return (StatusCode::OK, Json(answer)).into_response();
        }
    };
    let Ok(invocation) = serde_json::from_slice::<Invocation>(&body) else {
        return unreadable_invocation();
    };

    match enqueue(&state, &invocation) {
        Ok((accepted, messages)) => {
            tracing::info!(
                batch_id = %accepted.batch_id,
                queue_messages = accepted.queue_messages,
                recipients = accepted.recipients,
                "batch enqueued"
            );
            answer.logs.push(format!(
                "batch {} enqueued: {} recipients in {} queue messages",
                accepted.batch_id, accepted.recipients, accepted.queue_messages
            ));
            answer.http(HTTP_OUTPUT, json_output(StatusCode::ACCEPTED, &accepted));
            answer.queue_messages(QUEUE_OUTPUT, messages);
        }
        Err(error) => {
            answer.logs.push(format!("batch refused: {error}"));
            answer.http(HTTP_OUTPUT, problem_output(&error));
        }
    }
    (StatusCode::OK, Json(answer)).into_response()
}

fn enqueue(
    state: &AppState,
    invocation: &Invocation,
) -> Result<(BatchAccepted, Vec<String>), ApiError> {
    let request: HttpRequestData = invocation
        .data
        .get("req")
        .cloned()
        .and_then(|req| serde_json::from_value(req).ok())
        .ok_or_else(|| ApiError::InvalidJson("the invocation holds no HTTP request".into()))?;
    let content_type = request.header("content-type").unwrap_or_default();
    if !super::is_json_content_type(content_type) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = request.body_bytes();
    if bytes.len() > BATCH_BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge {
            limit: BATCH_BODY_LIMIT,
        });
    }
    let raw = super::parse_json::<BatchRequestBody>(&bytes)?;
    let batch = Batch::parse(
        &raw,
        state.sms.default_sender.as_ref(),
        state.sms.max_segments,
    )
    .map_err(ApiError::Validation)?;

    let batch_id = Uuid::new_v4();
    let recipients = batch.recipients();
    let messages: Vec<String> = batch
        .into_parts(batch_id)
        .iter()
        .map(|part| serde_json::to_string(part).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    let accepted = BatchAccepted {
        batch_id,
        queue_messages: messages.len(),
        recipients,
    };
    Ok((accepted, messages))
}

/// An `http` output with a JSON body.
pub fn json_output(status: StatusCode, body: &impl Serialize) -> HttpOutput {
    HttpOutput {
        status_code: status.as_u16(),
        headers: HashMap::from([("Content-Type".to_owned(), "application/json".to_owned())]),
        body: serde_json::to_string(body).unwrap_or_default(),
    }
}

/// An `http` output with a problem document, as `ApiError` answers forwarded requests.
pub fn problem_output(error: &ApiError) -> HttpOutput {
    let (status, problem, retry_after) = error.to_problem();
    let mut headers = HashMap::from([(
        "Content-Type".to_owned(),
        "application/problem+json".to_owned(),
    )]);
    if let Some(wait) = retry_after {
        headers.insert(
            "Retry-After".to_owned(),
            retry_after_seconds(wait).max(1).to_string(),
        );
    }
    HttpOutput {
        status_code: status.as_u16(),
        headers,
        body: serde_json::to_string(&problem).unwrap_or_default(),
    }
}

/// The host always sends a JSON invocation; anything else is answered 400, still as JSON.
pub fn unreadable_invocation() -> Response {
    let mut answer = InvocationResponse::default();
    answer
        .logs
        .push("the request is not a Functions host invocation".into());
    (StatusCode::BAD_REQUEST, Json(answer)).into_response()
}
