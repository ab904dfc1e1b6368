//! Privacy under failure: `Debug` of every type that holds personal data or a secret
//! redacts it; logs at debug level, through 429s, 503s, resets, timeouts and identity
//! failures, hold no number, text, token, key, identity header or function key; a panic
//! is logged with its location and without its message.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use acs_sms_handler::acs::auth::AccessKey;
use acs_sms_handler::acs::{AccessToken, AcsError};
use acs_sms_handler::config::TelemetrySettings;
use acs_sms_handler::domain::{
    PhoneNumber, QueueMessage, Sender, SmsBody, SmsRequest, SmsRequestBody,
};
use acs_sms_handler::telemetry;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::{
    acs_vars, Handler, MockAcs, MockIdentity, Reply, ACCESS_KEY_B64, IDENTITY_HEADER, MI_TOKEN,
};
use crate::identity::managed_identity;
use crate::queue::queue_invocation;
use crate::support::{spawn_faulty, SLOW};

/// Numbers and a text that must never appear in a log line or `Debug` output.
const NUMBER_A: &str = "+14255550187";
const NUMBER_B: &str = "+14255550193";
const BAD_NUMBER: &str = "+1 425 555 0171";
const TEXT: &str = "Your secret code is 31-41-59";
const TAG: &str = "user-8841-order";

/// What a log scan looks for: each personal datum and secret, as it could be printed.
fn secrets() -> Vec<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACCESS_KEY_B64)
        .unwrap();
    vec![
        NUMBER_A[1..].to_owned(),
        NUMBER_B[1..].to_owned(),
        "425 555 0171".to_owned(),
        TEXT.to_owned(),
        "31-41-59".to_owned(),
        TAG.to_owned(),
        MI_TOKEN.to_owned(),
        IDENTITY_HEADER.to_owned(),
        ACCESS_KEY_B64.to_owned(),
        String::from_utf8(key).unwrap(),
        "function-key-value".to_owned(),
    ]
}

fn assert_free_of_secrets(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(&secret), "{what} holds {secret}:\n{text}");
    }
}

#[test]
fn debug_output_of_every_type_with_personal_data_or_a_secret_redacts_it() {
    let number = PhoneNumber::parse(NUMBER_A).unwrap();
    let sender = Sender::parse(NUMBER_B).unwrap();
    let body = SmsBody::parse(TEXT, 10).unwrap();
    let raw: SmsRequestBody = serde_json::from_value(json!({
        "to": [NUMBER_A, NUMBER_B], "message": TEXT, "from": NUMBER_B, "tag": TAG
    }))
    .unwrap();
    let request = SmsRequest::parse(&raw, None, 10).unwrap();
    let queued: QueueMessage = serde_json::from_value(json!({
        "v": 1, "batchId": uuid::Uuid::nil(), "part": 0, "from": NUMBER_B,
        "message": TEXT, "to": [NUMBER_A, BAD_NUMBER], "tag": TAG
    }))
    .unwrap();
    let part = queued.clone().check(None, 10).unwrap();
    let token = AccessToken::new(MI_TOKEN, SystemTime::now());
    let key = AccessKey::from_base64(ACCESS_KEY_B64).unwrap();
    let stored = acs_sms_handler::idempotency::StoredResponse {
        status: 202,
        body: bytes::Bytes::from(json!({"results": [{"to": NUMBER_A}]}).to_string()),
    };
    let invocation: acs_sms_handler::host::Invocation =
        serde_json::from_value(json!({"Data": {"req": invocation_data_req()}, "Metadata": {}}))
            .unwrap();
    let request_data: acs_sms_handler::host::HttpRequestData =
        serde_json::from_value(invocation_data_req()).unwrap();

    let shown = [
        format!("{number:?}"),
        format!("{sender:?}"),
        format!("{body:?}"),
        format!("{raw:?}"),
        format!("{request:?}"),
        format!("{queued:?}"),
        format!("{part:?}"),
        format!("{token:?}"),
        format!("{key:?}"),
        format!("{stored:?}"),
        format!("{invocation:?}"),
        format!("{request_data:?}"),
    ];

    for text in &shown {
        assert_free_of_secrets("Debug output", text);
    }
    assert_eq!(shown[0], "PhoneNumber(+142***187)");
}

/// `Data.req` of an invocation carrying a function key and a send.
fn invocation_data_req() -> Value {
    json!({"Method": "POST", "Headers": {"x-functions-key": ["function-key-value"]},
           "Body": json!({"to": NUMBER_A, "message": TEXT}).to_string()})
}

/// Sends through every kind of fault: bad input, a permanent and a transient per-recipient
/// failure, idempotent retries, a query with a function key, and a queue message.
async fn exercise(client: &reqwest::Client, base: &str) -> Vec<String> {
    let url = format!("{base}/api/sms");
    let mut invocation_logs = Vec::new();
    let bodies = [
        json!({"to": [NUMBER_A, NUMBER_B], "message": TEXT, "tag": TAG}),
        json!({"to": [BAD_NUMBER, NUMBER_A], "message": TEXT}),
        json!({"to": NUMBER_A, "message": format!("{TEXT}\u{0}")}),
        json!({"to": NUMBER_A, "message": TEXT, "unknown": NUMBER_B}),
    ];
    for (index, body) in bodies.iter().enumerate() {
        for _ in 0..2 {
            client
                .post(&url)
                .header("idempotency-key", format!("privacy-{index}"))
                .json(body)
                .send()
                .await
                .unwrap();
        }
    }
    client
        .post(format!("{url}?code=function-key-value"))
        .header("x-functions-key", "function-key-value")
        .json(&json!({"to": NUMBER_B, "message": TEXT}))
        .send()
        .await
        .unwrap();
    let message = json!({"v": 1, "batchId": uuid::Uuid::new_v4(), "part": 0, "message": TEXT,
                         "to": [NUMBER_A, NUMBER_B, BAD_NUMBER], "tag": TAG})
    .to_string();
    for count in [1, 5] {
        let answer: Value = client
            .post(format!("{base}/SendSmsFromQueue"))
            .json(&queue_invocation(message.as_bytes(), count, "privacy"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        invocation_logs.push(answer["Logs"].to_string());
    }
    invocation_logs
}

/// A fault for each kind of request the exercise makes, several times over.
fn fault_script(slow: bool) -> Vec<Reply> {
    let mut script = vec![
        Reply::Status(429, Some(120)),
        Reply::Status(429, Some(0)),
        Reply::Status(503, None),
        Reply::Reset,
        Reply::Malformed,
        Reply::FailRecipients(vec![(NUMBER_B, 400)]),
        Reply::FailRecipients(vec![(NUMBER_A, 503)]),
        Reply::AcceptThenReset,
        Reply::Status(500, None),
        Reply::Status(401, None),
        Reply::Status(400, None),
    ];
    if slow {
        script.insert(2, Reply::Delay(SLOW));
        script.push(Reply::Delay(SLOW));
    }
    script
}

#[tokio::test]
async fn binary_logs_at_debug_hold_no_personal_data_or_secret_through_faults() {
    let identity = MockIdentity::start().await;
    let acs = MockAcs::start().await;
    let mut vars = managed_identity(&identity, &acs);
    vars.push(("RUST_LOG", "debug".to_owned()));
    let with_identity = Handler::start(&vars);
    let keyed_acs = MockAcs::start().await;
    let mut vars = acs_vars(&keyed_acs.endpoint());
    vars.push(("RUST_LOG", "debug".to_owned()));
    vars.push(("LOG_FORMAT", "text".to_owned()));
    let with_key = Handler::start(&vars);
    identity.fail_next(4);
    acs.script(fault_script(false));
    keyed_acs.script(fault_script(false));
    let client = crate::common::client();

    let mut logs = exercise(&client, &with_identity.url("")).await;
    logs.extend(exercise(&client, &with_key.url("")).await);

    let output = format!("{}\n{}", with_identity.output(), with_key.output());
    assert!(
        output.contains("ACS call failed"),
        "faults were logged: {output}"
    );
    assert!(
        output.contains("token request failed"),
        "identity failures were logged"
    );
    assert!(output.contains("DEBUG") || output.contains("\"level\":\"DEBUG\""));
    assert_free_of_secrets("the binary's log", &output);
    assert_free_of_secrets("the invocation logs", &logs.join("\n"));
}

/// A log sink for tests.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn subscriber(&self, json: bool) -> Box<dyn tracing::Subscriber + Send + Sync> {
        let settings = TelemetrySettings {
            filter: "debug".to_owned(),
            json,
            ansi: false,
        };
        let sink = self.clone();
        telemetry::subscriber(&settings, move || sink.clone())
    }
}

// One thread, so the scoped subscriber sees the app's and the mock's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn in_process_logs_at_debug_hold_no_personal_data_through_timeouts_and_faults() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.subscriber(true));
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;
    acs.script(fault_script(true));
    acs.script(vec![Reply::Delay(SLOW); 4]);

    let logs = exercise(&app.client, &app.base).await;

    let output = capture.text();
    assert!(
        output.contains("ACS did not answer in time"),
        "timeouts were logged: {output}"
    );
    assert!(output.contains("\"level\":\"DEBUG\""));
    assert_free_of_secrets("the log", &output);
    assert_free_of_secrets("the invocation logs", &logs.join("\n"));
}

#[test]
fn a_panic_is_logged_with_its_location_and_without_its_message() {
    let capture = Capture::default();
    let previous = std::panic::take_hook();
    telemetry::install_panic_hook();

    let outcome = tracing::subscriber::with_default(capture.subscriber(false), || {
        std::panic::catch_unwind(|| {
            let token = AccessToken::new(MI_TOKEN, SystemTime::now() + Duration::from_secs(60));
            panic!("failed for {NUMBER_A} with {}", token.secret());
        })
    });
    std::panic::set_hook(previous);

    assert!(outcome.is_err());
    let output = capture.text();
    assert!(output.contains("the handler panicked"), "{output}");
    assert!(
        output.contains("privacy.rs:"),
        "the location is logged: {output}"
    );
    assert_free_of_secrets("the panic log", &output);
}

#[test]
fn acs_errors_never_carry_a_request_value() {
    let error = AcsError::Rejected {
        status: 400,
        code: Some("InvalidInput".into()),
        message: Some(format!("bad number {NUMBER_A}")),
    };

    assert_free_of_secrets("an ACS error", &error.to_string());
}
