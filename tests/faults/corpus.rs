//! Hostile input for `POST /api/sms`, `/EnqueueSmsBatch` and `/SendSmsFromQueue`: emoji and
//! look-alike digits, combining marks, right-to-left text with bidirectional overrides, NUL,
//! escaped lone surrogates, 10,000-deep nesting, huge numbers, duplicate keys, wrong types,
//! very long strings and invalid UTF-8. Each gets a clear 4xx problem (or, for the queue
//! function, failure records) and sends nothing. Text that is odd but valid is sent as is.

use serde_json::{json, Value};

use crate::common::{MockAcs, RECIPIENT};
use crate::queue::queue_invocation;
use crate::support::{read_answer, spawn_faulty, Answer};

fn deep(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

/// Bodies for `POST /api/sms` that must be refused, each named.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let json = |value: Value| value.to_string().into_bytes();
    let text = |raw: String| raw.into_bytes();
    vec![
        (
            "emoji in a number",
            json(json!({"to": "+1425555😀123", "message": "hi"})),
        ),
        (
            "keycap digits",
            json(json!({"to": "+1\u{FE0F}\u{20E3}4255550123", "message": "hi"})),
        ),
        (
            "full-width digits",
            json(json!({"to": "+１４２５５５５０１２３", "message": "hi"})),
        ),
        (
            "Arabic-Indic digits",
            json(json!({"to": "+١٤٢٥٥٥٥٠١٢٣", "message": "hi"})),
        ),
        (
            "combining mark on a digit",
            json(json!({"to": "+14255550123\u{0301}", "message": "hi"})),
        ),
        (
            "combining marks past the length limit",
            json(json!({"to": RECIPIENT, "message": format!("a{}", "\u{0301}".repeat(2100))})),
        ),
        (
            "emoji past the segment limit",
            json(json!({"to": RECIPIENT, "message": "😀".repeat(400)})),
        ),
        (
            "emoji in an alphanumeric sender",
            json(json!({"to": RECIPIENT, "message": "hi", "from": "Shop😀"})),
        ),
        (
            "right-to-left override in the text",
            json(json!({"to": RECIPIENT, "message": "Pay \u{202E}0001$\u{202C} now"})),
        ),
        (
            "right-to-left isolate around Arabic",
            json(json!({"to": RECIPIENT, "message": "\u{2067}رمزك 1234\u{2069}"})),
        ),
        (
            "right-to-left override in a number",
            json(json!({"to": "+\u{202E}3210555524", "message": "hi"})),
        ),
        (
            "NUL in the text",
            json(json!({"to": RECIPIENT, "message": "code\u{0}1234"})),
        ),
        (
            "NUL in a number",
            json(json!({"to": "+1425555\u{0}0123", "message": "hi"})),
        ),
        (
            "NUL in a key",
            text(format!(r#"{{"to\u0000":"{RECIPIENT}","message":"hi"}}"#)),
        ),
        (
            "escaped lone high surrogate",
            text(format!(r#"{{"to":"{RECIPIENT}","message":"a\ud800b"}}"#)),
        ),
        (
            "escaped lone low surrogate",
            text(format!(r#"{{"to":"{RECIPIENT}","message":"\udc00"}}"#)),
        ),
        (
            "escaped lone surrogate in a key",
            text(format!(r#"{{"to":"{RECIPIENT}","\ud800":"hi"}}"#)),
        ),
        ("10,000-deep arrays", text(deep(10_000, "[", "]"))),
        ("10,000-deep objects", text(deep(10_000, "{\"a\":", "}"))),
        (
            "10,000-deep value of a field",
            text(format!(
                r#"{{"to":{},"message":"hi"}}"#,
                deep(10_000, "[", "]")
            )),
        ),
        (
            "huge exponent",
            text(format!(
                r#"{{"to":"{RECIPIENT}","message":"hi","deliveryReport":1e999}}"#
            )),
        ),
        (
            "huge integer",
            text(format!(r#"{{"to":{},"message":"hi"}}"#, "9".repeat(5_000))),
        ),
        (
            "number where text belongs",
            text(format!(
                r#"{{"to":"{RECIPIENT}","message":12345678901234567890}}"#
            )),
        ),
        (
            "duplicate to",
            text(format!(
                r#"{{"to":"{RECIPIENT}","to":"+14255550124","message":"hi"}}"#
            )),
        ),
        (
            "duplicate message",
            text(format!(
                r#"{{"to":"{RECIPIENT}","message":"a","message":"b"}}"#
            )),
        ),
        (
            "object for a number",
            json(json!({"to": {"number": RECIPIENT}, "message": "hi"})),
        ),
        (
            "list for the text",
            json(json!({"to": RECIPIENT, "message": ["hi"]})),
        ),
        (
            "boolean for a number",
            json(json!({"to": true, "message": "hi"})),
        ),
        (
            "text for a boolean",
            json(json!({"to": RECIPIENT, "message": "hi", "deliveryReport": "true"})),
        ),
        ("nulls", json(json!({"to": null, "message": null}))),
        ("a bare string", json(json!("+14255550123"))),
        ("null", text("null".into())),
        ("empty", Vec::new()),
        (
            "very long text",
            json(json!({"to": RECIPIENT, "message": "a".repeat(60_000)})),
        ),
        (
            "very long number",
            json(json!({"to": format!("+1{}", "4".repeat(50_000)), "message": "hi"})),
        ),
        (
            "very long tag",
            json(json!({"to": RECIPIENT, "message": "hi", "tag": "t".repeat(10_000)})),
        ),
        (
            "invalid UTF-8 in the text",
            [b"{\"to\":\"+14255550123\",\"message\":\"\xff\xfe\"}".as_slice()].concat(),
        ),
        (
            "overlong UTF-8",
            [b"{\"to\":\"+14255550123\",\"message\":\"\xc0\xaf\"}".as_slice()].concat(),
        ),
        (
            "UTF-8 byte order mark",
            [
                b"\xef\xbb\xbf".as_slice(),
                &json(json!({"to": RECIPIENT, "message": "hi"})),
            ]
            .concat(),
        ),
    ]
}

/// Odd text that is valid: sent exactly as written.
fn odd_but_valid_texts() -> Vec<&'static str> {
    vec![
        "Your code 😀👍🏽 1234",
        "Ze\u{0301}ro ca\u{0327}va Z\u{0335}\u{0321}a\u{0336}l\u{0337}g\u{0338}o",
        "رمزك هو \u{200F}1234\u{200E} شكرا",
        "שלום \u{200F}עולם",
        "line\u{2028}separator\u{2029}paragraph",
        "tab-free \u{00A0}no-break\u{2009}thin",
    ]
}

#[tokio::test]
async fn hostile_send_bodies_get_a_clear_4xx_problem_and_send_nothing() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;

    for (name, body) in hostile_bodies() {
        let response = app
            .client
            .post(app.url("/api/sms"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answer = read_answer(status, &headers, &response.bytes().await.unwrap());

        assert!(
            matches!(
                answer,
                Answer::Problem {
                    status: 400..=499,
                    ..
                }
            ),
            "{name}: {answer:?}"
        );
    }

    assert!(acs.requests().is_empty());
}

#[tokio::test]
async fn odd_but_valid_text_is_sent_exactly_as_written() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;

    for text in odd_but_valid_texts() {
        let response = app
            .client
            .post(app.url("/api/sms"))
            .json(&json!({"to": RECIPIENT, "message": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{text}");
    }

    let sent: Vec<String> = acs
        .requests()
        .iter()
        .map(|r| r.json()["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, odd_but_valid_texts());
}

/// An `EnqueueSmsBatch` invocation whose request body is `body`, as the host would send a
/// body it received: as text (invalid UTF-8 arrives replaced, as the host decodes it).
fn batch_invocation(body: &[u8]) -> Value {
    json!({
        "Data": {"req": {
            "Method": "POST",
            "Headers": {"Content-Type": ["application/json"]},
            "Body": String::from_utf8_lossy(body),
        }},
        "Metadata": {}
    })
}

#[tokio::test]
async fn hostile_batch_bodies_get_a_clear_4xx_problem_and_enqueue_nothing() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;
    let mut bodies = hostile_bodies();
    // Each hostile message inside a batch too, wrapped as text so duplicate keys survive.
    // Invalid UTF-8 is left out: the host hands over text, with such bytes already replaced.
    for (name, body) in hostile_bodies() {
        if let Ok(message) = std::str::from_utf8(&body) {
            if message.starts_with('{') {
                let batch = format!(r#"{{"messages":[{message}]}}"#);
                bodies.push((name, batch.into_bytes()));
            }
        }
    }

    for (name, body) in bodies {
        let (status, answer) = app
            .invoke("EnqueueSmsBatch", &batch_invocation(&body))
            .await;

        assert_eq!(status, 200, "{name}");
        let res = &answer["Outputs"]["res"];
        let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        let code = res["statusCode"].as_u64().unwrap();
        assert!((400..500).contains(&code), "{name}: {res}");
        assert_eq!(
            res["headers"]["Content-Type"], "application/problem+json",
            "{name}"
        );
        assert!(
            crate::support::KNOWN_CODES.contains(&problem["code"].as_str().unwrap()),
            "{name}"
        );
        assert!(
            answer["Outputs"].get("outbox").is_none(),
            "{name}: nothing enqueued"
        );
    }
    assert!(acs.requests().is_empty());
}

#[tokio::test]
async fn invocations_that_are_not_json_or_too_deep_are_refused_as_json() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;
    let deep_data = format!(
        r#"{{"Data":{{"req":{}}},"Metadata":{{}}}}"#,
        deep(10_000, "[", "]")
    );
    let cases: Vec<Vec<u8>> = vec![
        b"{\"Data\":{\"req\":{\"Body\":\"\xff\"}},\"Metadata\":{}}".to_vec(),
        deep_data.into_bytes(),
        b"not json".to_vec(),
    ];

    for function in ["EnqueueSmsBatch", "SendSmsFromQueue"] {
        for body in &cases {
            let response = app
                .client
                .post(app.url(&format!("/{function}")))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{function}");
            let answer: Value = response.json().await.unwrap();
            assert!(
                answer["Outputs"].as_object().unwrap().is_empty(),
                "{function}"
            );
        }
    }
    assert!(acs.requests().is_empty());
}

/// Queue messages that must end in failure records, each named.
fn hostile_queue_messages() -> Vec<(&'static str, Vec<u8>)> {
    let v1 = |to: Value, message: &str| {
        json!({"v": 1, "batchId": uuid::Uuid::new_v4(), "part": 0, "from": "+18005550100",
               "message": message, "to": to})
        .to_string()
        .into_bytes()
    };
    let text = |raw: String| raw.into_bytes();
    let id = uuid::Uuid::new_v4();
    vec![
        (
            "look-alike digits",
            v1(
                json!([
                    "+1425555😀123",
                    "+１４２５５５５０１２３",
                    "+14255550123\u{0301}"
                ]),
                "hi",
            ),
        ),
        (
            "bidi override in a number",
            v1(json!(["+\u{202E}3210555524"]), "hi"),
        ),
        (
            "bidi override in the text",
            v1(json!([RECIPIENT]), "Pay \u{202E}0001$\u{202C}"),
        ),
        ("NUL in the text", v1(json!([RECIPIENT]), "code\u{0}")),
        (
            "very long text",
            v1(json!([RECIPIENT]), &"a".repeat(100_000)),
        ),
        (
            "101 recipients",
            v1(
                json!((0..101)
                    .map(|i| format!("+1425555{i:04}"))
                    .collect::<Vec<_>>()),
                "hi",
            ),
        ),
        (
            "escaped lone surrogate",
            text(format!(
                r#"{{"v":1,"batchId":"{id}","part":0,"message":"\ud800","to":["{RECIPIENT}"]}}"#
            )),
        ),
        ("10,000-deep nesting", text(deep(10_000, "[", "]"))),
        (
            "huge version",
            text(format!(
                r#"{{"v":1e400,"batchId":"{id}","part":0,"message":"hi","to":["{RECIPIENT}"]}}"#
            )),
        ),
        (
            "huge part",
            text(format!(
                r#"{{"v":1,"batchId":"{id}","part":99999999999999999999,"message":"hi","to":["{RECIPIENT}"]}}"#
            )),
        ),
        (
            "duplicate to",
            text(format!(
                r#"{{"v":1,"batchId":"{id}","part":0,"message":"hi","to":["{RECIPIENT}"],"to":["+14255550124"]}}"#
            )),
        ),
        (
            "number for the recipients",
            text(format!(
                r#"{{"v":1,"batchId":"{id}","part":0,"message":"hi","to":5}}"#
            )),
        ),
        (
            "list for the text",
            text(format!(
                r#"{{"v":1,"batchId":"{id}","part":0,"message":["hi"],"to":["{RECIPIENT}"]}}"#
            )),
        ),
        (
            "invalid UTF-8",
            b"{\"v\":1,\"message\":\"\xff\",\"to\":[]}".to_vec(),
        ),
        ("plain text", b"Hello there".to_vec()),
        ("empty", Vec::new()),
    ]
}

#[tokio::test]
async fn hostile_queue_messages_end_in_failure_records_and_send_nothing() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;

    for (name, message) in hostile_queue_messages() {
        let (status, answer) = app
            .invoke(
                "SendSmsFromQueue",
                &queue_invocation(&message, 1, "hostile"),
            )
            .await;

        assert_eq!(
            status, 200,
            "{name}: no redelivery of what can never succeed"
        );
        let records = answer["Outputs"]["failed"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!records.is_empty(), "{name}: {answer}");
        for record in records {
            let record: Value = serde_json::from_str(record.as_str().unwrap()).unwrap();
            let reason = record["reason"].as_str().unwrap();
            assert!(
                [
                    "invalid_recipient",
                    "not_a_version_1_message",
                    "unreadable_message"
                ]
                .contains(&reason),
                "{name}: {reason}"
            );
        }
    }

    assert!(acs.requests().is_empty());
}
