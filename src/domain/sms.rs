//! A send request: recipients, text, sender and delivery options, validated together.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use super::{FieldErrors, PhoneNumber, Sender, SmsBody};

/// Most distinct recipients of one send, as one ACS request allows.
pub const MAX_RECIPIENTS: usize = 100;
/// Most characters of a delivery-report tag.
pub const TAG_MAX_CHARS: usize = 64;

/// One recipient or a list of them, as callers may write `to`. `Debug` shows the count only.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl fmt::Debug for OneOrMany {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(_) => f.write_str("OneOrMany(1 recipient)"),
            Self::Many(many) => write!(f, "OneOrMany({} recipients)", many.len()),
        }
    }
}

/// The JSON body of `POST /api/sms` and of one message in a batch, before validation.
///
/// Every field is optional here so that validation can report all missing fields at once.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SmsRequestBody {
    pub to: Option<OneOrMany>,
    pub message: Option<String>,
    pub from: Option<String>,
    #[serde(rename = "deliveryReport")]
    pub delivery_report: Option<bool>,
    pub tag: Option<String>,
}

impl fmt::Debug for SmsRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsRequestBody").finish_non_exhaustive()
    }
}

/// Text echoed in the delivery report: at most 64 characters, no control characters.
///
/// Callers may put an order or user id in it, so `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Tag(String);

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({} chars)", self.0.chars().count())
    }
}

impl Tag {
    /// # Errors
    /// The rule the tag breaks, without the tag.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > TAG_MAX_CHARS {
            return Err(format!("must be at most {TAG_MAX_CHARS} characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if raw.chars().any(super::message::is_bidi_control) {
            return Err(
                "must not contain bidirectional embedding, override or isolate characters".into(),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether ACS reports delivery, and the tag it echoes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryOptions {
    pub delivery_report: bool,
    pub tag: Option<Tag>,
}

/// A send that passed every rule: distinct recipients, text, sender and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRequest {
    pub recipients: Vec<PhoneNumber>,
    pub body: SmsBody,
    pub sender: Sender,
    pub options: DeliveryOptions,
}

impl SmsRequest {
    /// Validates `raw`; `from` falls back to `default_sender`.
    ///
    /// # Errors
    /// Every broken rule, with field paths relative to the body (`to[1]`, `message`).
    pub fn parse(
        raw: &SmsRequestBody,
        default_sender: Option<&Sender>,
        max_segments: u16,
    ) -> Result<Self, FieldErrors> {
        Self::parse_with_limit(raw, default_sender, max_segments, MAX_RECIPIENTS)
    }

    /// Like [`SmsRequest::parse`], with at most `max_recipients` distinct recipients (a
    /// message of a batch may list more than one ACS request takes).
    ///
    /// # Errors
    /// Every broken rule, with field paths relative to the body.
    pub fn parse_with_limit(
        raw: &SmsRequestBody,
        default_sender: Option<&Sender>,
        max_segments: u16,
        max_recipients: usize,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let recipients = parse_recipients(raw.to.as_ref(), max_recipients, &mut errors);

        let body = match raw.message.as_deref() {
            None => {
                errors.push("message", "is required");
                None
            }
            Some(text) => SmsBody::parse(text, max_segments)
                .map_err(|rule| errors.push("message", rule))
                .ok(),
        };

        let sender = match (raw.from.as_deref(), default_sender) {
            (Some(raw), _) => Sender::parse(raw)
                .map_err(|rule| errors.push("from", rule))
                .ok(),
            (None, Some(sender)) => Some(sender.clone()),
            (None, None) => {
                errors.push("from", "is required because SMS_FROM is not set");
                None
            }
        };

        let tag = raw.tag.as_deref().and_then(|raw| {
            Tag::parse(raw)
                .map_err(|rule| errors.push("tag", rule))
                .ok()
        });
        let options = DeliveryOptions {
            delivery_report: raw.delivery_report.unwrap_or(false),
            tag,
        };

        match (recipients, body, sender) {
            (Some(recipients), Some(body), Some(sender)) if errors.is_empty() => Ok(Self {
                recipients,
                body,
                sender,
                options,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_recipients(
    to: Option<&OneOrMany>,
    max_recipients: usize,
    errors: &mut FieldErrors,
) -> Option<Vec<PhoneNumber>> {
    let (raw, listed): (Vec<&str>, bool) = match to {
        None => {
            errors.push("to", "is required");
            return None;
        }
        Some(OneOrMany::One(one)) => (vec![one.as_str()], false),
        Some(OneOrMany::Many(many)) => (many.iter().map(String::as_str).collect(), true),
    };
    let before = errors.len();
    let mut seen = HashSet::new();
    let mut recipients = Vec::new();
    for (index, raw) in raw.iter().enumerate() {
        let field = if listed {
            format!("to[{index}]")
        } else {
            "to".into()
        };
        match PhoneNumber::parse(raw) {
            Ok(number) if seen.insert(number.clone()) => recipients.push(number),
            Ok(_) => {}
            Err(rule) => errors.push(field, rule),
        }
    }
    if errors.len() > before {
        return None;
    }
    if recipients.is_empty() {
        errors.push("to", "must list at least one recipient");
        return None;
    }
    if recipients.len() > max_recipients {
        errors.push(
            "to",
            format!("must list at most {max_recipients} distinct recipients"),
        );
        return None;
    }
    Some(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: &str = "+14255550123";
    const FROM: &str = "+18005550100";

    fn body(json: serde_json::Value) -> SmsRequestBody {
        serde_json::from_value(json).unwrap()
    }

    fn fields(json: serde_json::Value) -> Vec<String> {
        let sender = Sender::parse(FROM).unwrap();
        SmsRequest::parse(&body(json), Some(&sender), 10)
            .expect_err("request should be refused")
            .into_vec()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn one_number_or_a_list_are_accepted_and_duplicates_sent_once() {
        let sender = Sender::parse(FROM).unwrap();
        let one = body(serde_json::json!({"to": TO, "message": "hi"}));
        let many = body(serde_json::json!({"to": [TO, "+14255550124", TO], "message": "hi"}));

        let one = SmsRequest::parse(&one, Some(&sender), 10).unwrap();
        let many = SmsRequest::parse(&many, Some(&sender), 10).unwrap();

        assert_eq!(one.recipients.len(), 1);
        assert_eq!(many.recipients.len(), 2);
        assert_eq!(many.sender, sender);
        assert!(!many.options.delivery_report);
    }

    #[test]
    fn every_broken_rule_is_listed_with_its_field() {
        let got = fields(serde_json::json!({
            "to": [TO, "12345", "+0"], "message": "", "from": "bad sender!", "tag": "x\u{202E}y"
        }));

        assert_eq!(got, ["to[1]", "to[2]", "message", "from", "tag"]);
    }

    #[test]
    fn missing_fields_and_recipient_counts_are_refused() {
        let hundred_one: Vec<String> = (0..101).map(|i| format!("+1425555{i:04}")).collect();
        let hundred: Vec<String> = (0..100).map(|i| format!("+1425555{i:04}")).collect();
        let sender = Sender::parse(FROM).unwrap();

        assert_eq!(fields(serde_json::json!({})), ["to", "message"]);
        assert_eq!(
            fields(serde_json::json!({"to": [], "message": "hi"})),
            ["to"]
        );
        assert_eq!(
            fields(serde_json::json!({"to": hundred_one, "message": "hi"})),
            ["to"]
        );
        let ok = body(serde_json::json!({"to": hundred, "message": "hi"}));
        assert!(SmsRequest::parse(&ok, Some(&sender), 10).is_ok());
    }

    #[test]
    fn from_is_required_without_a_default_sender() {
        let raw = body(serde_json::json!({"to": TO, "message": "hi"}));

        let errors = SmsRequest::parse(&raw, None, 10).unwrap_err().into_vec();

        assert_eq!(errors[0].field, "from");
    }

    #[test]
    fn unknown_fields_are_refused_by_the_wire_shape() {
        let parsed: Result<SmsRequestBody, _> = serde_json::from_value(
            serde_json::json!({"to": TO, "message": "hi", "delivery": true}),
        );

        assert!(parsed.is_err());
    }

    #[test]
    fn validation_messages_never_repeat_the_value() {
        let errors = fields(
            serde_json::json!({"to": ["+1425555012x"], "message": "hi", "from": "Sender!!"}),
        );
        let sender = Sender::parse(FROM).unwrap();
        let raw =
            body(serde_json::json!({"to": ["+1425555012x"], "message": "hi", "from": "Sender!!"}));
        let messages = SmsRequest::parse(&raw, Some(&sender), 10).unwrap_err();

        assert_eq!(errors.len(), 2);
        for error in messages.iter() {
            assert!(!error.message.contains("1425555012x"));
            assert!(!error.message.contains("Sender!!"));
        }
    }
}
