//! `POST /SendSmsFromQueue`: one queue message of up to 100 recipients, sent through ACS.
//!
//! The promise: every recipient ends accepted by ACS or recorded on the failed queue with
//! its reason, and none gets the same text twice when the host redelivers the message.
//!
//! - Each recipient's repeatability id is derived from (batch, part, recipient) and its
//!   first-sent time is the message's insertion time, so every try of the message sends the
//!   same ids and ACS deduplicates inside its repeatability window. Outcomes already known on
//!   this instance are not sent again at all.
//! - Permanent failures (invalid number or sender, ACS 400 for a recipient or the request,
//!   a message that cannot be read) end the invocation with 200 and a failure record.
//! - Transient failures (429, 5xx, timeouts, no token, ACS refusing the credential while a
//!   role propagates) fail the invocation so the host delivers the message again after
//!   `visibilityTimeout`. On the last delivery (`maxDequeueCount`), what is still open is
//!   recorded as failed instead, so nothing is lost to the poison queue: as
//!   `transient_failures_exhausted` when ACS's answer failed the recipient, as
//!   `outcome_unknown` when the whole request got no usable answer (an earlier delivery,
//!   perhaps on another instance, may have had it accepted).
//! - Outputs are written only when an invocation succeeds, so failure records of a failed
//!   invocation are produced again by the try that succeeds.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::acs::sms::{Recipient, RecipientFailure, RecipientResult, SmsSend};
use crate::acs::AcsError;
use crate::domain::{JsonObject, PhoneNumber, QueueMessage, QueuePart};
use crate::host::{
    metadata_text, metadata_time, metadata_u64, queue_item_bytes, InvocationResponse,
};
use crate::idempotency::LedgerEntry;
use crate::startup::AppState;

/// Deliveries of one message before the host moves it to the poison queue; equal to
/// `extensions.queues.maxDequeueCount` in `host.json`.
pub const MAX_DELIVERIES: u64 = 5;
/// The trigger binding in `function-definitions/SendSmsFromQueue/function.json`.
const TRIGGER: &str = "queueItem";
/// The failure queue output binding in the same file.
const FAILED_OUTPUT: &str = "failed";
/// Namespace of repeatability ids of queue sends.
const QUEUE_NAMESPACE: Uuid = Uuid::from_u128(0x2d9e_57a4_0c13_4f8b_a6d0_91be_3c47_5f02);

/// One line on the failed queue: which recipient, and why it was not sent. `Debug` leaves
/// out the recipient and ACS's message.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRecord {
    pub v: u32,
    pub batch_id: Option<Uuid>,
    pub part: Option<u32>,
    /// The recipient as the message wrote it; absent when the message could not be read.
    pub recipient: Option<String>,
    /// A machine-readable reason, such as `invalid_recipient` or `recipient_rejected`.
    pub reason: String,
    pub detail: String,
    pub acs_status: Option<u16>,
    pub dequeue_count: u64,
    pub queue_message_id: Option<String>,
    pub recorded_at: String,
}

impl std::fmt::Debug for FailureRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureRecord")
            .field("batch_id", &self.batch_id)
            .field("part", &self.part)
            .field("reason", &self.reason)
            .field("acs_status", &self.acs_status)
            .field("dequeue_count", &self.dequeue_count)
            .finish_non_exhaustive()
    }
}

/// The queue message's delivery facts from `Metadata`.
struct Delivery {
    dequeue_count: u64,
    message_id: Option<String>,
    first_sent: SystemTime,
}

impl Delivery {
    fn read(metadata: &Map<String, Value>) -> Self {
        let first_sent = metadata_time(metadata, "InsertionTime")
            .map(|time| {
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(time.unix_timestamp()).unwrap_or(0))
            })
            .unwrap_or_else(SystemTime::now);
        Self {
            dequeue_count: metadata_u64(metadata, "DequeueCount").unwrap_or(1),
            message_id: metadata_text(metadata, "Id"),
            first_sent,
        }
    }

    fn is_last(&self) -> bool {
        self.dequeue_count >= MAX_DELIVERIES
    }

    fn record(
        &self,
        part: Option<&QueuePart>,
        recipient: Option<String>,
        reason: &str,
        detail: String,
        acs_status: Option<u16>,
    ) -> FailureRecord {
        FailureRecord {
            v: 1,
            batch_id: part.map(|p| p.batch_id),
            part: part.map(|p| p.part),
            recipient,
            reason: reason.to_owned(),
            detail,
            acs_status,
            dequeue_count: self.dequeue_count,
            queue_message_id: self.message_id.clone(),
            recorded_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// How one invocation ends.
enum Ending {
    /// 200: every recipient is accepted or recorded.
    Done {
        accepted: usize,
        failures: Vec<FailureRecord>,
    },
    /// Non-2xx: the host delivers the message again.
    Retry { reason: String },
}

/// Sends one queue message.
pub async fn send_sms_from_queue(State(state): State<AppState>, body: Bytes) -> Response {
    let Ok(invocation) = serde_json::from_slice::<crate::host::Invocation>(&body) else {
        return super::batches::unreadable_invocation();
    };
    let delivery = Delivery::read(&invocation.metadata);

    let ending = match read_part(&state, &invocation.data) {
        Ok(part) => process(&state, &delivery, part).await,
        Err((reason, detail)) => Ending::Done {
            accepted: 0,
            failures: vec![delivery.record(None, None, reason, detail, None)],
        },
    };

    finish(&delivery, ending)
}

fn read_part(
    state: &AppState,
    data: &Map<String, Value>,
) -> Result<QueuePart, (&'static str, String)> {
    let bytes =
        queue_item_bytes(data, TRIGGER).map_err(|e| ("unreadable_message", e.to_string()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let JsonObject(message): JsonObject<QueueMessage> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let detail = format!(
                "the message is not a version 1 SMS queue message: {}",
                super::shape_error(&error)
            );
            ("not_a_version_1_message", detail)
        })?;
    message
        .check(state.sms.default_sender.as_ref(), state.sms.max_segments)
        .map_err(|rule| ("not_a_version_1_message", rule))
}

async fn process(state: &AppState, delivery: &Delivery, part: QueuePart) -> Ending {
    let mut failures: Vec<FailureRecord> = part
        .rejected
        .iter()
        .map(|(raw, rule)| {
            delivery.record(
                Some(&part),
                Some(raw.clone()),
                "invalid_recipient",
                rule.clone(),
                None,
            )
        })
        .collect();
    let Some((sender, body, options, recipients)) = part.send.clone() else {
        return Ending::Done {
            accepted: 0,
            failures,
        };
    };

    let mut accepted = 0;
    let mut open = Vec::new();
    for to in recipients {
        let id = repeatability_id(&part, &to);
        match state.ledger.get(&id) {
            Some(LedgerEntry::Accepted(_)) => accepted += 1,
            Some(LedgerEntry::Failed {
                reason,
                detail,
                acs_status,
            }) => {
                failures.push(delivery.record(
                    Some(&part),
                    Some(to.as_str().to_owned()),
                    &reason,
                    detail,
                    acs_status,
                ));
            }
            None => open.push(Recipient {
                to,
                repeatability_id: id,
                first_sent: delivery.first_sent,
            }),
        }
    }
    if open.is_empty() {
        return Ending::Done { accepted, failures };
    }
    let send = SmsSend {
        sender,
        body,
        options,
        recipients: open,
    };

    let outcomes = match state.sms_client.send(&send, &state.retry.background).await {
        Ok(outcomes) => outcomes,
        Err(error) => {
            return whole_request_failed(delivery, &part, &send, &error, accepted, failures)
        }
    };
    let mut transient = Vec::new();
    for outcome in outcomes {
        let id = outcome.recipient.repeatability_id;
        match outcome.result {
            RecipientResult::Accepted { message_id } => {
                state.ledger.record(id, LedgerEntry::Accepted(message_id));
                accepted += 1;
            }
            RecipientResult::Failed(failure) if failure.retryable => {
                transient.push((outcome.recipient, failure))
            }
            RecipientResult::Failed(failure) => {
                failures.push(failure_record(
                    delivery,
                    &part,
                    &outcome.recipient.to,
                    &failure,
                ));
                let entry = LedgerEntry::Failed {
                    reason: failure.code,
                    detail: failure.message,
                    acs_status: Some(failure.http_status),
                };
                state.ledger.record(id, entry);
            }
        }
    }
    if transient.is_empty() {
        return Ending::Done { accepted, failures };
    }
    if !delivery.is_last() {
        return Ending::Retry {
            reason: format!("{} recipients failed transiently", transient.len()),
        };
    }
    failures.extend(transient.iter().map(|(recipient, failure)| {
        let mut record = failure_record(delivery, &part, &recipient.to, failure);
        record.reason = "transient_failures_exhausted".into();
        record
    }));
    Ending::Done { accepted, failures }
}

fn whole_request_failed(
    delivery: &Delivery,
    part: &QueuePart,
    send: &SmsSend,
    error: &AcsError,
    accepted: usize,
    mut failures: Vec<FailureRecord>,
) -> Ending {
    // Refused credentials usually mean a role assignment that has not propagated yet.
    let transient = error.is_transient()
        || matches!(
            error,
            AcsError::Forbidden { .. } | AcsError::InvalidResponse(_)
        );
    if transient && !delivery.is_last() {
        return Ending::Retry {
            reason: format!("ACS call failed: {error}"),
        };
    }
    // On the last delivery a transient failure of the whole request leaves each open
    // recipient's outcome unknown: an earlier delivery, perhaps on another instance whose
    // ledger this one cannot see, may have got it accepted. The record says so, so that
    // nobody resends it believing it was never sent.
    let (reason, detail) = if transient {
        (
            "outcome_unknown",
            format!(
                "ACS gave no usable answer on the last delivery ({error}); an earlier \
                 delivery may have had this recipient accepted, so a resend may send it twice"
            ),
        )
    } else {
        ("acs_rejected", error.to_string())
    };
    failures.extend(send.recipients.iter().map(|recipient| {
        delivery.record(
            Some(part),
            Some(recipient.to.as_str().to_owned()),
            reason,
            detail.clone(),
            error.status(),
        )
    }));
    Ending::Done { accepted, failures }
}

fn failure_record(
    delivery: &Delivery,
    part: &QueuePart,
    to: &PhoneNumber,
    failure: &RecipientFailure,
) -> FailureRecord {
    delivery.record(
        Some(part),
        Some(to.as_str().to_owned()),
        &failure.code,
        failure.message.clone(),
        Some(failure.http_status),
    )
}

/// The repeatability id of one recipient of one part of a batch: the same on every try.
pub fn repeatability_id(part: &QueuePart, to: &PhoneNumber) -> Uuid {
    let name = format!("{}\n{}\n{}", part.batch_id, part.part, to.as_str());
    Uuid::new_v5(&QUEUE_NAMESPACE, name.as_bytes())
}

fn finish(delivery: &Delivery, ending: Ending) -> Response {
    let mut answer = InvocationResponse::default();
    match ending {
        Ending::Done { accepted, failures } => {
            tracing::info!(
                dequeue_count = delivery.dequeue_count,
                accepted,
                failed = failures.len(),
                "queue message done"
            );
            answer.logs.push(format!(
                "{accepted} recipients accepted, {} recorded as failed",
                failures.len()
            ));
            let records = failures
                .iter()
                .filter_map(|record| serde_json::to_string(record).ok())
                .collect();
            answer.queue_messages(FAILED_OUTPUT, records);
            (StatusCode::OK, Json(answer)).into_response()
        }
        Ending::Retry { reason } => {
            tracing::warn!(dequeue_count = delivery.dequeue_count, reason = %reason, "queue message given back for another delivery");
            answer.logs.push(format!(
                "giving the message back for another delivery: {reason}"
            ));
            (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response()
        }
    }
}
