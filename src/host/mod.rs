//! The Functions host protocol for invocations that are not forwarded: the
//! `{"Data": …, "Metadata": …}` request and the `{"Outputs": …, "Logs": …, "ReturnValue": …}`
//! answer, in one place.
//!
//! The host JSON-encodes string values a second time, sends numbers as strings and queue
//! bytes as base64; every reader here accepts both the encoded and the plain form.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// One invocation as the host sends it. `Debug` shows binding and metadata names only: the
/// values hold requests and queue messages.
#[derive(Deserialize)]
pub struct Invocation {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

/// The answer to an invocation. Outputs are written by the host only when the status is 2xx.
/// `Debug` shows output names and the number of log lines.
#[derive(Default, Serialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationResponse {
    /// Sets an output binding to queue messages, each a string of compact JSON (the host
    /// enqueues one message per array element).
    pub fn queue_messages(&mut self, binding: &str, messages: Vec<String>) {
        if !messages.is_empty() {
            let values = messages.into_iter().map(Value::String).collect();
            self.outputs
                .insert(binding.to_owned(), Value::Array(values));
        }
    }

    /// Sets the `http` output binding.
    pub fn http(&mut self, binding: &str, response: HttpOutput) {
        let value = serde_json::to_value(response).unwrap_or(Value::Null);
        self.outputs.insert(binding.to_owned(), value);
    }
}

/// An `http` output binding: the response the caller gets. `Debug` leaves out the body.
#[derive(Serialize)]
pub struct HttpOutput {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub headers: HashMap<String, String>,
    /// The body as a string, so the host sends it unchanged with our `Content-Type`.
    pub body: String,
}

/// `Data.req` of an HTTP trigger that is not forwarded. `Debug` shows the method, header
/// names and the body's size: header values may hold a function key, the body personal data.
#[derive(Deserialize)]
pub struct HttpRequestData {
    #[serde(rename = "Method", default)]
    pub method: String,
    #[serde(rename = "Headers", default)]
    headers: Map<String, Value>,
    #[serde(rename = "Body", default)]
    body: Option<Value>,
}

impl HttpRequestData {
    /// A header's first value, by case-insensitive name; values may be arrays or strings.
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))?;
        match value {
            Value::String(text) => Some(text),
            Value::Array(items) => items.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// The raw body bytes: a string as sent, or base64 for binary content types.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Some(Value::String(text)) => text.as_bytes().to_vec(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => other.to_string().into_bytes(),
        }
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("metadata", &self.metadata.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for InvocationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationResponse")
            .field("outputs", &self.outputs.keys().collect::<Vec<_>>())
            .field("logs", &self.logs.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for HttpOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOutput")
            .field("status_code", &self.status_code)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for HttpRequestData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequestData")
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_bytes", &self.body_bytes().len())
            .finish()
    }
}

/// Why a trigger value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the invocation has no {0} binding data")]
    Missing(&'static str),
    #[error("the {0} binding data has an unexpected type")]
    WrongType(&'static str),
}

/// The bytes of a queue message, whatever form the host sent: base64 (`dataType: binary`),
/// a JSON-encoded string, a plain string, or an object.
///
/// # Errors
/// When the binding is absent or is neither a string nor an object.
pub fn queue_item_bytes(
    data: &Map<String, Value>,
    binding: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    let value = data.get(binding).ok_or(DecodeError::Missing(binding))?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value.to_string().into_bytes()),
        Value::String(text) => Ok(decode_string_item(text)),
        _ => Err(DecodeError::WrongType(binding)),
    }
}

fn decode_string_item(text: &str) -> Vec<u8> {
    match serde_json::from_str::<Value>(text) {
        // A JSON-encoded string: unwrap it once.
        Ok(Value::String(inner)) => return inner.into_bytes(),
        // The message text itself (a host that did not encode it again).
        Ok(Value::Object(_)) => return text.as_bytes().to_vec(),
        _ => {}
    }
    match BASE64.decode(text.trim()) {
        Ok(bytes) => bytes,
        Err(_) => text.as_bytes().to_vec(),
    }
}

/// A metadata value as text, whether the host quoted it again or not.
pub fn metadata_text(metadata: &Map<String, Value>, name: &str) -> Option<String> {
    match metadata.get(name)? {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::String(inner)) => Some(inner),
            _ => Some(text.clone()),
        },
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A metadata value as a whole number (`"1"`, `1` or `"\"1\""`).
pub fn metadata_u64(metadata: &Map<String, Value>, name: &str) -> Option<u64> {
    metadata_text(metadata, name)?.trim().parse().ok()
}

/// A metadata value as a date (ISO 8601 with an offset).
pub fn metadata_time(metadata: &Map<String, Value>, name: &str) -> Option<OffsetDateTime> {
    let text = metadata_text(metadata, name)?;
    OffsetDateTime::parse(
        text.trim(),
        &time::format_description::well_known::Iso8601::DEFAULT,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MESSAGE: &str = r#"{"to":["+14255550123"],"message":"hi"}"#;

    fn data(value: &Value) -> Map<String, Value> {
        let Value::Object(map) = json!({ "queueItem": value }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn queue_items_decode_from_every_form_the_host_sends() {
        let encoded = serde_json::to_string(MESSAGE).unwrap();
        let forms = [
            json!(BASE64.encode(MESSAGE)),
            json!(encoded),
            json!(MESSAGE),
            serde_json::from_str::<Value>(MESSAGE).unwrap(),
        ];
        for form in forms {
            let bytes = queue_item_bytes(&data(&form.clone()), "queueItem").unwrap();
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed["message"], "hi", "{form}");
        }
    }

    #[test]
    fn plain_text_items_stay_text_and_missing_items_are_reported() {
        let text =
            queue_item_bytes(&data(&json!("\"Hello from the queue\"")), "queueItem").unwrap();

        assert_eq!(text, b"Hello from the queue");
        assert_eq!(
            queue_item_bytes(&Map::new(), "queueItem"),
            Err(DecodeError::Missing("queueItem"))
        );
        assert_eq!(
            queue_item_bytes(&data(&json!(5)), "queueItem"),
            Err(DecodeError::WrongType("queueItem"))
        );
    }

    #[test]
    fn metadata_reads_quoted_and_plain_values() {
        let Value::Object(metadata) = json!({
            "DequeueCount": "3", "Plain": 4, "Id": "\"5f2c\"", "Bare": "abc",
            "InsertionTime": "2025-06-02T09:15:03+00:00", "Quoted": "\"2025-06-02T09:15:03+00:00\""
        }) else {
            unreachable!()
        };

        assert_eq!(metadata_u64(&metadata, "DequeueCount"), Some(3));
        assert_eq!(metadata_u64(&metadata, "Plain"), Some(4));
        assert_eq!(metadata_text(&metadata, "Id").as_deref(), Some("5f2c"));
        assert_eq!(metadata_text(&metadata, "Bare").as_deref(), Some("abc"));
        let inserted = metadata_time(&metadata, "InsertionTime").unwrap();
        assert_eq!(inserted.unix_timestamp(), 1_748_855_703);
        assert_eq!(metadata_time(&metadata, "Quoted"), Some(inserted));
        assert_eq!(metadata_u64(&metadata, "Missing"), None);
    }

    #[test]
    fn http_request_headers_are_case_insensitive_and_arrays_or_strings() {
        let request: HttpRequestData = serde_json::from_value(json!({
            "Method": "POST", "Headers": {"Content-Type": ["application/json"], "x-one": "v"},
            "Body": "{\"a\":1}"
        }))
        .unwrap();

        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("X-ONE"), Some("v"));
        assert_eq!(request.body_bytes(), b"{\"a\":1}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels deep.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[0-9 +-]{0,24}".prop_map(Value::String),
            "\"[0-9T:+-]{0,30}\"".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn binding(value: Value) -> Map<String, Value> {
        Map::from_iter([("queueItem".to_owned(), value)])
    }

    proptest! {
        #[test]
        fn queue_items_of_any_json_never_panic(value in json()) {
            let _ = queue_item_bytes(&binding(value), "queueItem");
        }

        #[test]
        fn metadata_readers_never_panic_on_any_json(value in json(), name in "[A-Za-z]{1,12}") {
            let metadata = Map::from_iter([(name.clone(), value)]);

            let _ = metadata_text(&metadata, &name);
            let _ = metadata_u64(&metadata, &name);
            let _ = metadata_time(&metadata, &name);
        }

        #[test]
        fn base64_queue_items_decode_to_the_original_bytes(bytes in any::<Vec<u8>>()) {
            let item = Value::String(BASE64.encode(&bytes));

            prop_assert_eq!(queue_item_bytes(&binding(item), "queueItem").unwrap(), bytes);
        }

        #[test]
        fn json_encoded_text_items_decode_to_the_original_text(text in any::<String>()) {
            let item = Value::String(serde_json::to_string(&text).unwrap());

            prop_assert_eq!(queue_item_bytes(&binding(item), "queueItem").unwrap(), text.into_bytes());
        }

        #[test]
        fn whole_numbers_are_read_in_every_form_the_host_sends(number in any::<u64>()) {
            for form in [
                Value::from(number),
                Value::String(number.to_string()),
                Value::String(format!("\"{number}\"")),
            ] {
                let metadata = Map::from_iter([("DequeueCount".to_owned(), form)]);
                prop_assert_eq!(metadata_u64(&metadata, "DequeueCount"), Some(number));
            }
        }
    }
}
