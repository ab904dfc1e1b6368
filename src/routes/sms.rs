//! `POST /api/sms` (function `SendSms`, forwarded): send one message to one or many
//! recipients now, and answer with a result per recipient.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::acs::sms::{Recipient, RecipientOutcome, RecipientResult, SmsSend};
use crate::domain::{Encoding, SmsRequest, SmsRequestBody};
use crate::error::ApiError;
use crate::idempotency::{Claim, IdempotencyKey, StoredResponse, REPLAYED_HEADER};
use crate::startup::AppState;

/// Largest body `POST /api/sms` accepts: 100 recipients and 2048 characters of 4-byte text
/// fit with room to spare.
pub const SEND_BODY_LIMIT: usize = 64 * 1024;
/// Scope of this route's idempotency keys and repeatability ids.
const ROUTE: &str = "sms";

/// The answer of a send: encoding, segments and one result per recipient.
#[derive(Debug, Serialize)]
pub struct SendSmsResponse {
    pub encoding: Encoding,
    pub segments: u16,
    pub results: Vec<RecipientReport>,
}

/// One recipient's result as callers read it. `Debug` leaves out the number.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientReport {
    pub to: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RecipientError>,
}

impl std::fmt::Debug for RecipientReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientReport")
            .field("status", &self.status)
            .field("message_id", &self.message_id)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl RecipientReport {
    /// Whether this recipient failed in a way that a retry may fix.
    pub fn is_retryable(&self) -> bool {
        self.error.as_ref().is_some_and(|error| error.retryable)
    }
}

/// Why a recipient failed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientError {
    pub code: String,
    pub message: String,
    pub http_status: u16,
    pub retryable: bool,
}

/// Sends one SMS to every recipient of the request.
pub async fn send_sms(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::from_headers(&headers);
    let (raw, bytes) = super::read_json::<SmsRequestBody>(&headers, body, SEND_BODY_LIMIT).await?;
    let request = SmsRequest::parse(
        &raw,
        state.sms.default_sender.as_ref(),
        state.sms.max_segments,
    );
    // Every broken rule at once: the header's and the body's.
    let (key, request) = match (key, request) {
        (Ok(key), Ok(request)) => (key, request),
        (key, request) => {
            let mut errors = key.err().unwrap_or_default();
            errors.extend(request.err().unwrap_or_default());
            return Err(ApiError::Validation(errors));
        }
    };

    let Some(key) = key else {
        let send = plan_send(request, None, SystemTime::now());
        let (status, body) = execute(&state, &send).await?;
        return Ok((status, Json(body)).into_response());
    };
    let canonical = super::canonical_json(&bytes)?;
    let ticket = match state.idempotency.claim(ROUTE, &key, &canonical).await {
        Claim::Run(ticket) => ticket,
        Claim::Replay(stored) => return Ok(replay(stored)),
        Claim::Conflict => return Err(ApiError::IdempotencyKeyReused),
    };
    let send = plan_send(request, Some(&key), ticket.first_sent);
    let (status, body) = execute(&state, &send).await?;

    let worth_retrying = body.results.iter().any(RecipientReport::is_retryable);
    let body = bytes::Bytes::from(
        serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    // An answer with a transient failure is not kept: a retry with the key sends those
    // recipients again, and ACS deduplicates the others by their repeatability ids.
    if !worth_retrying {
        ticket.complete(StoredResponse {
            status: status.as_u16(),
            body: body.clone(),
        });
    }
    Ok(json_response(status, body))
}

/// Gives every recipient its repeatability id: derived from the idempotency key when there
/// is one, so a retried request reuses it, else random.
pub fn plan_send(
    request: SmsRequest,
    key: Option<&IdempotencyKey>,
    first_sent: SystemTime,
) -> SmsSend {
    let recipients = request
        .recipients
        .into_iter()
        .map(|to| Recipient {
            repeatability_id: key.map_or_else(Uuid::new_v4, |key| key.repeatability_id(ROUTE, &to)),
            first_sent,
            to,
        })
        .collect();
    SmsSend {
        sender: request.sender,
        body: request.body,
        options: request.options,
        recipients,
    }
}

async fn execute(
    state: &AppState,
    send: &SmsSend,
) -> Result<(StatusCode, SendSmsResponse), ApiError> {
    let outcomes = state
        .sms_client
        .send(send, &state.retry.interactive)
        .await?;
    let accepted = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.result, RecipientResult::Accepted { .. }))
        .count();
    let failed = outcomes.len() - accepted;
    tracing::debug!(
        recipients = outcomes.len(),
        accepted,
        failed,
        segments = send.body.segments(),
        encoding = send.body.encoding().label(),
        "SMS send finished"
    );
    let status = if failed == 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::MULTI_STATUS
    };
    let body = SendSmsResponse {
        encoding: send.body.encoding(),
        segments: send.body.segments(),
        results: outcomes.into_iter().map(report).collect(),
    };
    Ok((status, body))
}

fn report(outcome: RecipientOutcome) -> RecipientReport {
    let to = outcome.recipient.to.as_str().to_owned();
    match outcome.result {
        RecipientResult::Accepted { message_id } => RecipientReport {
            to,
            status: "accepted",
            message_id: Some(message_id),
            error: None,
        },
        RecipientResult::Failed(failure) => RecipientReport {
            to,
            status: "failed",
            message_id: None,
            error: Some(RecipientError {
                code: failure.code,
                message: failure.message,
                http_status: failure.http_status,
                retryable: failure.retryable,
            }),
        },
    }
}

fn json_response(status: StatusCode, body: bytes::Bytes) -> Response {
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (status, content_type, body).into_response()
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, stored.body);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
