//! Batches: the body of `POST /api/sms/batches`, and the version 1 queue message each part
//! of a batch becomes.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::sms::OneOrMany;
use super::JsonObject;
use super::{
    DeliveryOptions, FieldErrors, PhoneNumber, Sender, SmsBody, SmsRequest, SmsRequestBody, Tag,
};

/// Most recipients of one batch, over all its messages.
pub const BATCH_MAX_RECIPIENTS: usize = 10_000;
/// Most recipients of one queue message (one ACS request).
pub const PART_MAX_RECIPIENTS: usize = 100;

/// The body of `POST /api/sms/batches`, before validation.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequestBody {
    pub messages: Option<Vec<JsonObject<SmsRequestBody>>>,
    #[serde(rename = "deliveryReport")]
    pub delivery_report: Option<bool>,
}

impl fmt::Debug for BatchRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRequestBody").finish_non_exhaustive()
    }
}

/// A batch that passed every rule.
#[derive(Debug, Clone)]
pub struct Batch {
    pub messages: Vec<SmsRequest>,
}

impl Batch {
    /// Validates every message; a message's own `deliveryReport` wins over the batch's.
    ///
    /// # Errors
    /// Every broken rule, with paths like `messages[3].to[1]`.
    pub fn parse(
        raw: &BatchRequestBody,
        default_sender: Option<&Sender>,
        max_segments: u16,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let Some(raw_messages) = raw.messages.as_ref().filter(|m| !m.is_empty()) else {
            errors.push("messages", "must list at least one message");
            return Err(errors);
        };
        let mut messages = Vec::with_capacity(raw_messages.len());
        for (index, JsonObject(message)) in raw_messages.iter().enumerate() {
            let mut message = message.clone();
            message.delivery_report = message.delivery_report.or(raw.delivery_report);
            match SmsRequest::parse_with_limit(
                &message,
                default_sender,
                max_segments,
                BATCH_MAX_RECIPIENTS,
            ) {
                Ok(valid) => messages.push(valid),
                Err(found) => errors.extend_prefixed(&format!("messages[{index}]"), found),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let recipients: usize = messages.iter().map(|m| m.recipients.len()).sum();
        if recipients > BATCH_MAX_RECIPIENTS {
            errors.push(
                "messages",
                format!("must hold at most {BATCH_MAX_RECIPIENTS} recipients in all"),
            );
            return Err(errors);
        }
        Ok(Self { messages })
    }

    pub fn recipients(&self) -> usize {
        self.messages.iter().map(|m| m.recipients.len()).sum()
    }

    /// Splits the batch into queue messages of at most 100 recipients, numbered from 0.
    pub fn into_parts(self, batch_id: Uuid) -> Vec<QueueMessage> {
        let mut parts = Vec::new();
        for message in self.messages {
            for chunk in message.recipients.chunks(PART_MAX_RECIPIENTS) {
                parts.push(QueueMessage {
                    v: 1,
                    batch_id,
                    part: u32::try_from(parts.len()).unwrap_or(u32::MAX),
                    from: Some(message.sender.as_str().to_owned()),
                    message: message.body.as_str().to_owned(),
                    to: OneOrMany::Many(chunk.iter().map(|n| n.as_str().to_owned()).collect()),
                    tag: message.options.tag.as_ref().map(|t| t.as_str().to_owned()),
                    delivery_report: Some(message.options.delivery_report),
                });
            }
        }
        parts
    }
}

/// A queue message, version 1 (DESIGN §5). Producers other than the batch route may write
/// it too; fields not listed here are ignored.
#[derive(Clone, Serialize, Deserialize)]
pub struct QueueMessage {
    pub v: u32,
    #[serde(rename = "batchId")]
    pub batch_id: Uuid,
    pub part: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub message: String,
    pub to: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(
        rename = "deliveryReport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_report: Option<bool>,
}

impl fmt::Debug for QueueMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueMessage")
            .field("batch_id", &self.batch_id)
            .field("part", &self.part)
            .finish_non_exhaustive()
    }
}

/// A queue message checked recipient by recipient: the valid recipients can be sent, the
/// invalid ones are recorded. `Debug` shows counts, not recipients.
pub struct QueuePart {
    pub batch_id: Uuid,
    pub part: u32,
    /// The send, when the text and sender are valid and some recipient is.
    pub send: Option<(Sender, SmsBody, DeliveryOptions, Vec<PhoneNumber>)>,
    /// Recipients (as written) that cannot be sent, each with the rule it breaks.
    pub rejected: Vec<(String, String)>,
}

impl fmt::Debug for QueuePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sendable = self.send.as_ref().map_or(0, |(_, _, _, to)| to.len());
        f.debug_struct("QueuePart")
            .field("batch_id", &self.batch_id)
            .field("part", &self.part)
            .field("sendable", &sendable)
            .field("rejected", &self.rejected.len())
            .finish()
    }
}

impl QueueMessage {
    /// Checks a queue message: invalid recipients are set apart; an invalid text, sender or
    /// tag sets every recipient apart.
    ///
    /// # Errors
    /// When the message is not version 1 or lists more than 100 recipients.
    pub fn check(
        self,
        default_sender: Option<&Sender>,
        max_segments: u16,
    ) -> Result<QueuePart, String> {
        if self.v != 1 {
            return Err("only version 1 queue messages are understood".into());
        }
        let to = match self.to {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        };
        if to.is_empty() || to.len() > PART_MAX_RECIPIENTS {
            return Err(format!(
                "a queue message lists 1 to {PART_MAX_RECIPIENTS} recipients"
            ));
        }
        let mut rejected = Vec::new();
        let mut recipients: Vec<PhoneNumber> = Vec::new();
        for raw in to {
            match PhoneNumber::parse(&raw) {
                Ok(number) if !recipients.contains(&number) => recipients.push(number),
                Ok(_) => {}
                Err(rule) => rejected.push((raw, format!("to {rule}"))),
            }
        }
        let common = common_fields(
            self.from.as_deref(),
            &self.message,
            self.tag.as_deref(),
            default_sender,
            max_segments,
        );
        let send = match common {
            Ok((sender, body, tag)) if !recipients.is_empty() => {
                let options = DeliveryOptions {
                    delivery_report: self.delivery_report.unwrap_or(false),
                    tag,
                };
                Some((sender, body, options, recipients))
            }
            Ok(_) => None,
            Err(rule) => {
                rejected.extend(
                    recipients
                        .into_iter()
                        .map(|n| (n.as_str().to_owned(), rule.clone())),
                );
                None
            }
        };
        Ok(QueuePart {
            batch_id: self.batch_id,
            part: self.part,
            send,
            rejected,
        })
    }
}

fn common_fields(
    from: Option<&str>,
    message: &str,
    tag: Option<&str>,
    default_sender: Option<&Sender>,
    max_segments: u16,
) -> Result<(Sender, SmsBody, Option<Tag>), String> {
    let sender = match (from, default_sender) {
        (Some(raw), _) => Sender::parse(raw).map_err(|rule| format!("from {rule}"))?,
        (None, Some(sender)) => sender.clone(),
        (None, None) => return Err("from is required because SMS_FROM is not set".into()),
    };
    let body = SmsBody::parse(message, max_segments).map_err(|rule| format!("message {rule}"))?;
    let tag = tag
        .map(Tag::parse)
        .transpose()
        .map_err(|rule| format!("tag {rule}"))?;
    Ok((sender, body, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(json: serde_json::Value) -> Result<Batch, FieldErrors> {
        let raw: BatchRequestBody = serde_json::from_value(json).unwrap();
        Batch::parse(&raw, Some(&Sender::parse("+18005550100").unwrap()), 10)
    }

    fn numbers(count: usize, offset: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("+1425{:07}", i + offset))
            .collect()
    }

    #[test]
    fn a_batch_of_250_recipients_becomes_3_parts_of_at_most_100() {
        let valid = batch(json!({"messages": [{"to": numbers(250, 0), "message": "hi"}]})).unwrap();

        let parts = valid.into_parts(Uuid::nil());

        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| match &p.to {
                OneOrMany::Many(m) => m.len(),
                OneOrMany::One(_) => 1,
            })
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(parts.iter().map(|p| p.part).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn one_bad_message_rejects_the_batch_naming_every_broken_field() {
        let errors = batch(json!({"messages": [
            {"to": ["+14255550123"], "message": "ok"},
            {"to": ["bad", "+14255550124"], "message": ""},
        ]}))
        .unwrap_err();

        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["messages[1].to[0]", "messages[1].message"]);
    }

    #[test]
    fn batches_are_capped_at_10000_recipients() {
        let messages: Vec<_> = (0..101)
            .map(|i| json!({"to": numbers(100, i * 100), "message": "hi"}))
            .collect();
        let at_cap: Vec<_> = (0..100)
            .map(|i| json!({"to": numbers(100, i * 100), "message": "hi"}))
            .collect();

        assert!(batch(json!({"messages": messages})).is_err());
        assert_eq!(
            batch(json!({"messages": at_cap})).unwrap().recipients(),
            10_000
        );
        assert!(batch(json!({"messages": []})).is_err());
        assert!(batch(json!({})).is_err());
    }

    #[test]
    fn the_largest_part_stays_well_under_the_64_kb_queue_limit() {
        let text = "😀".repeat(2048);
        let raw: BatchRequestBody = serde_json::from_value(
            json!({"messages": [{"to": numbers(100, 0), "message": text, "tag": "t".repeat(64)}]}),
        )
        .unwrap();
        let valid = Batch::parse(&raw, Some(&Sender::parse("+18005550100").unwrap()), 255).unwrap();

        let part = &valid.into_parts(Uuid::new_v4())[0];
        let encoded = serde_json::to_string(part).unwrap();

        // The queue stores base64, a third larger.
        assert!(encoded.len() * 4 / 3 < 32 * 1024, "{} bytes", encoded.len());
    }

    #[test]
    fn queue_messages_set_invalid_recipients_apart() {
        let message: QueueMessage = serde_json::from_value(json!({
            "v": 1, "batchId": Uuid::nil(), "part": 0, "message": "hi",
            "to": ["+14255550123", "0042", "+14255550123"], "extra": "ignored"
        }))
        .unwrap();

        let part = message
            .check(Some(&Sender::parse("+18005550100").unwrap()), 10)
            .unwrap();

        let (_, _, _, recipients) = part.send.unwrap();
        assert_eq!(recipients.len(), 1);
        assert_eq!(part.rejected.len(), 1);
        assert_eq!(part.rejected[0].0, "0042");
    }

    #[test]
    fn a_queue_message_with_a_bad_text_sets_every_recipient_apart() {
        let message: QueueMessage = serde_json::from_value(json!({
            "v": 1, "batchId": Uuid::nil(), "part": 4, "message": "", "to": ["+14255550123", "+14255550124"]
        }))
        .unwrap();

        let part = message.check(None, 10).unwrap();

        assert!(part.send.is_none());
        assert_eq!(part.rejected.len(), 2);
    }

    #[test]
    fn other_versions_are_refused() {
        let message: QueueMessage = serde_json::from_value(json!({
            "v": 2, "batchId": Uuid::nil(), "part": 0, "message": "hi", "to": ["+14255550123"]
        }))
        .unwrap();

        assert!(message.check(None, 10).is_err());
    }
}
