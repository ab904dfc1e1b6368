//! The ACS SMS API, `POST {endpoint}/sms?api-version=2021-03-07`, and its results per
//! recipient.
//!
//! Wire types mirror the official 2021-03-07 document. Every recipient carries a
//! repeatability id and first-sent time that stay the same on every attempt, so ACS sends a
//! text at most once however often the request is repeated inside its window.

use std::time::SystemTime;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::AcsError;
use super::http::AcsHttp;
use super::outbox::Outbox;
use super::retry::RetryPolicy;
use crate::domain::{DeliveryOptions, PhoneNumber, Sender, SmsBody};

/// The SMS API version every official SDK sends.
pub const SMS_API_VERSION: &str = "2021-03-07";

/// One recipient of a send, with the ids that make repeats safe.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub to: PhoneNumber,
    pub repeatability_id: Uuid,
    pub first_sent: SystemTime,
}

/// One message to up to 100 recipients.
#[derive(Debug, Clone)]
pub struct SmsSend {
    pub sender: Sender,
    pub body: SmsBody,
    pub options: DeliveryOptions,
    pub recipients: Vec<Recipient>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    /// ACS queued the text.
    Accepted { message_id: String },
    /// ACS did not queue the text.
    Failed(RecipientFailure),
}

/// Why ACS did not queue a text for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientFailure {
    /// The status ACS gave this recipient, or of the whole request.
    pub http_status: u16,
    /// A short machine-readable reason.
    pub code: String,
    /// ACS's own message; for the caller only, never logged.
    pub message: String,
    pub retryable: bool,
}

/// A recipient and its result.
#[derive(Debug, Clone)]
pub struct RecipientOutcome {
    pub recipient: Recipient,
    pub result: RecipientResult,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendMessageRequest<'a> {
    from: &'a str,
    sms_recipients: Vec<SmsRecipient<'a>>,
    message: &'a str,
    sms_send_options: SmsSendOptions<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SmsRecipient<'a> {
    to: &'a str,
    repeatability_request_id: String,
    repeatability_first_sent: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SmsSendOptions<'a> {
    enable_delivery_report: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
}

/// `SmsSendResponse` of the official document.
#[derive(Debug, Deserialize)]
pub(crate) struct SmsSendResponse {
    pub value: Vec<SmsSendResponseItem>,
}

/// `SmsSendResponseItem` of the official document. `Debug` leaves out the number.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SmsSendResponseItem {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub http_status_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeatability_result: Option<String>,
    pub successful: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl std::fmt::Debug for SmsSendResponseItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSendResponseItem")
            .field("message_id", &self.message_id)
            .field("http_status_code", &self.http_status_code)
            .field("repeatability_result", &self.repeatability_result)
            .field("successful", &self.successful)
            .finish_non_exhaustive()
    }
}

/// The JSON body of one send, exactly as it goes to ACS (and to the local outbox).
pub(crate) fn request_body(send: &SmsSend) -> Vec<u8> {
    let request = SendMessageRequest {
        from: send.sender.as_str(),
        sms_recipients: send
            .recipients
            .iter()
            .map(|recipient| SmsRecipient {
                to: recipient.to.as_str(),
                repeatability_request_id: recipient.repeatability_id.to_string(),
                repeatability_first_sent: httpdate::fmt_http_date(recipient.first_sent),
            })
            .collect(),
        message: send.body.as_str(),
        sms_send_options: SmsSendOptions {
            enable_delivery_report: send.options.delivery_report,
            tag: send.options.tag.as_ref().map(|tag| tag.as_str()),
        },
    };
    serde_json::to_vec(&request).expect("a send request always serializes")
}

/// Sends SMS through ACS, or records them in the local outbox.
#[derive(Debug, Clone)]
pub enum SmsClient {
    Acs(AcsHttp),
    Outbox(Outbox),
}

impl SmsClient {
    /// Sends `send` and returns one outcome per recipient, in order.
    ///
    /// Recipients whose result inside the 202 is transient (429 or 5xx) are sent again, with
    /// the same repeatability ids, while `policy` allows; what remains is reported failed.
    ///
    /// # Errors
    /// When the first request fails as a whole; nothing was accepted then.
    pub async fn send(
        &self,
        send: &SmsSend,
        policy: &RetryPolicy,
    ) -> Result<Vec<RecipientOutcome>, AcsError> {
        let started = tokio::time::Instant::now();
        let mut outcomes = self.send_once(send, policy).await?;
        let mut round = 1;
        loop {
            let pending: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, outcome)| is_retryable(&outcome.result))
                .map(|(index, _)| index)
                .collect();
            if pending.is_empty() || round >= policy.max_attempts {
                return Ok(outcomes);
            }
            let wait = policy.backoff(round);
            if started.elapsed() + wait > policy.budget {
                return Ok(outcomes);
            }
            tracing::warn!(
                recipients = pending.len(),
                round,
                "ACS failed some recipients transiently; sending those again"
            );
            tokio::time::sleep(wait).await;
            let again = SmsSend {
                recipients: pending
                    .iter()
                    .map(|&i| outcomes[i].recipient.clone())
                    .collect(),
                ..send.clone()
            };
            // The rounds share the call's budget rather than starting a new one each.
            let remaining = policy.budget.saturating_sub(started.elapsed());
            let round_policy = RetryPolicy {
                budget: remaining,
                attempt_timeout: policy.attempt_timeout.min(remaining),
                ..*policy
            };
            let Ok(retried) = self.send_once(&again, &round_policy).await else {
                return Ok(outcomes);
            };
            for (slot, outcome) in pending.into_iter().zip(retried) {
                outcomes[slot] = outcome;
            }
            round += 1;
        }
    }

    async fn send_once(
        &self,
        send: &SmsSend,
        policy: &RetryPolicy,
    ) -> Result<Vec<RecipientOutcome>, AcsError> {
        let body = request_body(send);
        let items = match self {
            Self::Acs(http) => {
                let path = format!("sms?api-version={SMS_API_VERSION}");
                let parsed: SmsSendResponse = http
                    .send_json("sms.send", Method::POST, &path, Some(body), policy)
                    .await?;
                parsed.value
            }
            Self::Outbox(outbox) => outbox.record_sms(send, &body).await?,
        };
        Ok(match_results(send, items))
    }
}

fn is_retryable(result: &RecipientResult) -> bool {
    matches!(result, RecipientResult::Failed(failure) if failure.retryable)
}

/// Pairs ACS's items with our recipients: by number, then by position when the counts agree.
fn match_results(send: &SmsSend, items: Vec<SmsSendResponseItem>) -> Vec<RecipientOutcome> {
    let same_len = items.len() == send.recipients.len();
    let mut items: Vec<Option<SmsSendResponseItem>> = items.into_iter().map(Some).collect();
    send.recipients
        .iter()
        .enumerate()
        .map(|(index, recipient)| {
            let digits = recipient.to.as_str().trim_start_matches('+');
            let by_number = items.iter().position(|item| {
                item.as_ref()
                    .is_some_and(|item| item.to.trim_start_matches('+') == digits)
            });
            let slot = by_number.or(if same_len { Some(index) } else { None });
            let item = slot.and_then(|slot| items.get_mut(slot).and_then(Option::take));
            RecipientOutcome {
                recipient: recipient.clone(),
                result: item.map_or_else(missing_result, item_result),
            }
        })
        .collect()
}

fn missing_result() -> RecipientResult {
    RecipientResult::Failed(RecipientFailure {
        http_status: 502,
        code: "acs_no_result".into(),
        message: "ACS returned no result for this recipient".into(),
        retryable: true,
    })
}

fn item_result(item: SmsSendResponseItem) -> RecipientResult {
    if item.successful {
        if let Some(message_id) = item.message_id.filter(|id| !id.is_empty()) {
            return RecipientResult::Accepted { message_id };
        }
    }
    let status = u16::try_from(item.http_status_code).unwrap_or(0);
    let (code, retryable) = match status {
        429 => ("acs_throttled", true),
        408 | 500..=599 => ("acs_unavailable", true),
        _ if item.repeatability_result.as_deref() == Some("rejected") => {
            ("repeatability_rejected", false)
        }
        _ if item.successful => ("acs_no_message_id", false),
        _ => ("recipient_rejected", false),
    };
    RecipientResult::Failed(RecipientFailure {
        http_status: if status == 0 { 502 } else { status },
        code: code.into(),
        message: item
            .error_message
            .unwrap_or_else(|| "ACS did not accept this recipient".into()),
        retryable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(numbers: &[&str]) -> SmsSend {
        SmsSend {
            sender: Sender::parse("+18005550100").unwrap(),
            body: SmsBody::parse("hello", 10).unwrap(),
            options: DeliveryOptions::default(),
            recipients: numbers
                .iter()
                .map(|n| Recipient {
                    to: PhoneNumber::parse(n).unwrap(),
                    repeatability_id: Uuid::new_v4(),
                    first_sent: SystemTime::UNIX_EPOCH,
                })
                .collect(),
        }
    }

    fn item(to: &str, status: i64, ok: bool) -> SmsSendResponseItem {
        SmsSendResponseItem {
            to: to.into(),
            message_id: ok.then(|| format!("Outgoing_{to}")),
            http_status_code: status,
            repeatability_result: None,
            successful: ok,
            error_message: (!ok).then(|| "Invalid To phone number format.".into()),
        }
    }

    #[test]
    fn request_body_follows_the_official_shape() {
        let mut request = send(&["+14255550123"]);
        request.options.delivery_report = true;

        let body: serde_json::Value = serde_json::from_slice(&request_body(&request)).unwrap();

        assert_eq!(body["from"], "+18005550100");
        assert_eq!(body["message"], "hello");
        assert_eq!(
            body["smsSendOptions"],
            serde_json::json!({"enableDeliveryReport": true})
        );
        let recipient = &body["smsRecipients"][0];
        assert_eq!(recipient["to"], "+14255550123");
        assert_eq!(
            recipient["repeatabilityRequestId"].as_str().unwrap().len(),
            36
        );
        assert_eq!(
            recipient["repeatabilityFirstSent"],
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn results_are_matched_by_number_whatever_their_order() {
        let request = send(&["+14255550123", "+14255550124"]);
        let items = vec![
            item("+14255550124", 400, false),
            item("14255550123", 202, true),
        ];

        let outcomes = match_results(&request, items);

        assert!(matches!(
            outcomes[0].result,
            RecipientResult::Accepted { .. }
        ));
        let RecipientResult::Failed(failure) = &outcomes[1].result else {
            panic!()
        };
        assert_eq!((failure.http_status, failure.retryable), (400, false));
    }

    #[test]
    fn per_recipient_statuses_map_to_retryable_or_permanent_failures() {
        let cases = [
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (0, false),
        ];
        for (status, retryable) in cases {
            let RecipientResult::Failed(failure) = item_result(item("+1", status, false)) else {
                panic!()
            };
            assert_eq!(failure.retryable, retryable, "{status}");
        }
    }

    #[test]
    fn debug_output_of_an_answer_item_leaves_out_the_number() {
        let mut answer = item("+14255550123", 202, true);
        answer.message_id = Some("Outgoing_20250602_0a1b".into());

        let shown = format!("{answer:?}");

        assert!(!shown.contains("4255550123"), "{shown}");
    }

    #[test]
    fn a_recipient_missing_from_the_answer_is_failed_and_retryable() {
        let request = send(&["+14255550123", "+14255550124"]);

        let outcomes = match_results(&request, vec![item("+14255550123", 202, true)]);

        assert_eq!(outcomes[1].result, missing_result());
    }
}
