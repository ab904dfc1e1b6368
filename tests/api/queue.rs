//! `EnqueueSmsBatch` and `SendSmsFromQueue`, replayed as the host invokes them: payloads
//! built from the fixtures in `../shared/fixtures/functions-host/`.

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{fixture_body, Reply, RECIPIENT, RECIPIENT_2, RECIPIENT_3};
use crate::helpers::{spawn_app, spawn_app_for};

fn numbers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("+1425{i:07}")).collect()
}

/// The `EnqueueSmsBatch` invocation: the fixture's HTTP payload with our body.
fn batch_invocation(body: &str, content_type: &str) -> Option<Value> {
    let mut invocation = fixture_body("http-trigger-invocation.json")?;
    let req = &mut invocation["Data"]["req"];
    req["Url"] = json!("http://localhost:7071/api/sms/batches");
    req["Body"] = json!(body);
    req["Headers"]["Content-Type"] = json!([content_type]);
    req["Headers"]["Content-Length"] = json!([body.len().to_string()]);
    invocation["Metadata"]["sys"]["MethodName"] = json!("EnqueueSmsBatch");
    Some(invocation)
}

/// The `SendSmsFromQueue` invocation: the binary-dataType fixture with our message.
fn queue_invocation(message: &str, dequeue_count: u32) -> Option<Value> {
    let mut invocation = fixture_body("queue-trigger-binary-datatype.json")?;
    invocation["Data"]["queueItem"] =
        json!(base64::engine::general_purpose::STANDARD.encode(message));
    invocation["Metadata"]["DequeueCount"] = json!(dequeue_count.to_string());
    Some(invocation)
}

fn strings(answer: &Value, binding: &str) -> Vec<String> {
    crate::common::output_strings(answer, binding)
}

fn failure_records(answer: &Value) -> Vec<Value> {
    strings(answer, "failed")
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

fn v1(recipients: &[&str], part: u32) -> String {
    json!({"v": 1, "batchId": "6f2d8a0e-5b7c-4e1f-9a3b-2c4d6e8f0a1b", "part": part,
           "from": "+18005550100", "message": "Campaign text", "to": recipients})
    .to_string()
}

#[tokio::test]
async fn a_batch_of_250_recipients_becomes_3_queue_messages_that_drain_in_3_acs_calls() {
    let app = spawn_app().await;
    let body =
        json!({"messages": [{"to": numbers(250), "message": "Sale ends today", "tag": "promo"}]})
            .to_string();
    let Some(invocation) = batch_invocation(&body, "application/json") else {
        return;
    };

    let (status, answer) = app.invoke("EnqueueSmsBatch", &invocation).await;

    assert_eq!(status, 200);
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{res}");
    assert_eq!(res["headers"]["Content-Type"], "application/json");
    let accepted: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            accepted["queueMessages"].as_u64(),
            accepted["recipients"].as_u64()
        ),
        (Some(3), Some(250))
    );
    let messages = strings(&answer, "outbox");
    assert_eq!(messages.len(), 3);
    for (part, message) in messages.iter().enumerate() {
        assert!(!message.contains('\n'), "queue messages are compact JSON");
        let parsed: Value = serde_json::from_str(message).unwrap();
        assert_eq!(
            (parsed["v"].as_u64(), parsed["part"].as_u64()),
            (Some(1), Some(part as u64))
        );
        assert_eq!(parsed["batchId"], accepted["batchId"]);
    }

    for message in &messages {
        let (status, answer) = app
            .invoke("SendSmsFromQueue", &queue_invocation(message, 1).unwrap())
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(failure_records(&answer).is_empty());
    }
    let requests = app.acs.requests();
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| r.json()["smsRecipients"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(app.acs.texts_sent(), 250);
}

#[tokio::test]
async fn one_bad_message_rejects_the_whole_batch_and_enqueues_nothing() {
    let app = spawn_app().await;
    let body = json!({"messages": [
        {"to": [RECIPIENT], "message": "fine"},
        {"to": ["+0123", RECIPIENT_2], "message": ""},
    ]})
    .to_string();
    let Some(invocation) = batch_invocation(&body, "application/json") else {
        return;
    };

    let (status, answer) = app.invoke("EnqueueSmsBatch", &invocation).await;

    assert_eq!(status, 200);
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], 400);
    assert_eq!(res["headers"]["Content-Type"], "application/problem+json");
    let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["messages[1].to[0]", "messages[1].message"]);
    assert!(answer["Outputs"].get("outbox").is_none());
}

#[tokio::test]
async fn batch_bodies_of_the_wrong_type_size_or_shape_get_problems() {
    let app = spawn_app().await;
    let big = format!(
        "{{\"messages\": [{{\"to\": \"{RECIPIENT}\", \"message\": \"{}\"}}]}}",
        "a".repeat(4 * 1024 * 1024)
    );
    let too_many = json!({"messages": (0..101).map(|_| json!({"to": numbers(100), "message": "x"})).collect::<Vec<_>>()}).to_string();
    let cases = [
        (
            "{\"messages\": []}".to_owned(),
            "application/json",
            400,
            "validation_failed",
        ),
        (
            "not json".to_owned(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "{\"messages\": [], \"other\": 1}".to_owned(),
            "application/json",
            400,
            "invalid_json",
        ),
        ("{}".to_owned(), "text/plain", 415, "unsupported_media_type"),
        (big, "application/json", 413, "payload_too_large"),
        (too_many, "application/json", 400, "validation_failed"),
    ];
    for (body, content_type, status, code) in cases {
        let Some(invocation) = batch_invocation(&body, content_type) else {
            return;
        };
        let (_, answer) = app.invoke("EnqueueSmsBatch", &invocation).await;
        let res = &answer["Outputs"]["res"];
        let problem: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            (res["statusCode"].as_u64(), problem["code"].as_str()),
            (Some(status), Some(code))
        );
        assert!(answer["Outputs"].get("outbox").is_none());
    }
}

#[tokio::test]
async fn a_per_recipient_400_becomes_a_failure_record_and_the_invocation_succeeds() {
    let app = spawn_app().await;
    app.acs
        .script([Reply::FailRecipients(vec![(RECIPIENT_2, 400)])]);
    let Some(invocation) = queue_invocation(&v1(&[RECIPIENT, RECIPIENT_2], 7), 1) else {
        return;
    };

    let (status, answer) = app.invoke("SendSmsFromQueue", &invocation).await;

    assert_eq!(status, 200);
    let records = failure_records(&answer);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["recipient"], RECIPIENT_2);
    assert_eq!(record["reason"], "recipient_rejected");
    assert_eq!(record["acsStatus"], 400);
    assert_eq!(record["part"], 7);
    assert_eq!(record["batchId"], "6f2d8a0e-5b7c-4e1f-9a3b-2c4d6e8f0a1b");
    assert_eq!(
        record["queueMessageId"],
        "5f2c1c8e-7a4b-4d0f-9a51-3c1f0e2b7d44"
    );
    assert_eq!(
        app.acs.requests().len(),
        1,
        "a permanent failure is not retried"
    );
}

#[tokio::test]
async fn a_503_from_acs_gives_the_message_back_for_another_delivery() {
    let app = spawn_app().await;
    app.acs.script(vec![Reply::Status(503, None); 4]);
    let Some(invocation) = queue_invocation(&v1(&[RECIPIENT], 0), 1) else {
        return;
    };

    let (status, answer) = app.invoke("SendSmsFromQueue", &invocation).await;

    assert!(
        status >= 500,
        "a non-2xx answer makes the host retry; got {status}"
    );
    assert!(answer["Logs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("another delivery")));
}

#[tokio::test]
async fn on_the_last_delivery_transient_failures_are_recorded_instead_of_retried() {
    let app = spawn_app().await;
    app.acs.script(vec![Reply::Status(503, None); 4]);
    let Some(invocation) = queue_invocation(&v1(&[RECIPIENT, RECIPIENT_2], 0), 5) else {
        return;
    };

    let (status, answer) = app.invoke("SendSmsFromQueue", &invocation).await;

    assert_eq!(status, 200);
    let records = failure_records(&answer);
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r["reason"] == "outcome_unknown" && r["acsStatus"] == 503));
}

#[tokio::test]
async fn malformed_messages_are_recorded_without_retry_or_acs_call() {
    let app = spawn_app().await;
    let mut cases = vec![];
    for message in ["Hello from the queue", "{\"v\": 2}", "{}", &v1(&[], 0)] {
        cases.push(queue_invocation(message, 1));
    }
    // The string-dataType fixture as the host sends it: double-encoded, not version 1.
    cases.push(fixture_body("queue-trigger-invocation.json"));
    cases.push(fixture_body("queue-trigger-plain-string.json"));
    cases.push(fixture_body("queue-trigger-with-retry-context.json"));

    for invocation in cases {
        let Some(invocation) = invocation else { return };
        let (status, answer) = app.invoke("SendSmsFromQueue", &invocation).await;
        assert_eq!(status, 200, "{answer}");
        let records = failure_records(&answer);
        assert_eq!(records.len(), 1, "{answer}");
        assert_eq!(records[0]["reason"], "not_a_version_1_message");
    }

    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn invalid_recipients_are_recorded_and_the_others_sent() {
    let app = spawn_app().await;
    let Some(invocation) = queue_invocation(&v1(&[RECIPIENT, "12345", RECIPIENT_3], 0), 1) else {
        return;
    };

    let (status, answer) = app.invoke("SendSmsFromQueue", &invocation).await;

    assert_eq!(status, 200);
    let records = failure_records(&answer);
    assert_eq!(
        (records.len(), records[0]["reason"].as_str()),
        (1, Some("invalid_recipient"))
    );
    assert_eq!(
        app.acs.requests()[0].json()["smsRecipients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_partial_202_then_a_redelivery_sends_only_what_failed_with_the_same_id() {
    let app = spawn_app().await;
    app.acs
        .script(vec![Reply::FailRecipients(vec![(RECIPIENT_2, 503)]); 4]);
    let message = v1(&[RECIPIENT, RECIPIENT_2, RECIPIENT_3], 2);

    let (first, _) = app
        .invoke("SendSmsFromQueue", &queue_invocation(&message, 1).unwrap())
        .await;
    let (second, answer) = app
        .invoke("SendSmsFromQueue", &queue_invocation(&message, 2).unwrap())
        .await;

    assert!(first >= 500);
    assert_eq!(second, 200, "{answer}");
    let requests = app.acs.requests();
    let first_ids: Vec<Value> = requests[0].json()["smsRecipients"]
        .as_array()
        .unwrap()
        .clone();
    let last = requests.last().unwrap().json();
    assert_eq!(last["smsRecipients"].as_array().unwrap().len(), 1);
    assert_eq!(
        last["smsRecipients"][0], first_ids[1],
        "same recipient, id and first-sent time"
    );
    assert_eq!(app.acs.texts_sent(), 3);
}

#[tokio::test]
async fn a_redelivery_to_another_instance_sends_no_recipient_with_a_new_repeatability_id() {
    let first = spawn_app().await;
    let second = spawn_app_for(first.acs.clone()).await;
    let message = v1(&[RECIPIENT, RECIPIENT_2], 3);

    first
        .invoke("SendSmsFromQueue", &queue_invocation(&message, 1).unwrap())
        .await;
    let (status, _) = second
        .invoke("SendSmsFromQueue", &queue_invocation(&message, 2).unwrap())
        .await;

    assert_eq!(status, 200);
    let requests = first.acs.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].json()["smsRecipients"],
        requests[1].json()["smsRecipients"]
    );
    assert_eq!(
        (first.acs.texts_sent(), first.acs.texts_repeated()),
        (2, 2),
        "ACS sent each text once"
    );
}

#[tokio::test]
async fn the_retry_limit_matches_max_dequeue_count_in_host_json() {
    let host: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/host.json")).unwrap(),
    )
    .unwrap();

    let max_dequeue_count = host["extensions"]["queues"]["maxDequeueCount"]
        .as_u64()
        .unwrap();

    assert_eq!(
        max_dequeue_count,
        acs_sms_handler::routes::queue::MAX_DELIVERIES
    );
}

#[tokio::test]
async fn an_invocation_far_over_the_batch_limit_answers_413_through_the_http_output() {
    let app = spawn_app().await;
    let huge = "a".repeat(13 * 1024 * 1024);
    let invocation = json!({"Data": {"req": {"Method": "POST", "Headers": {"Content-Type": ["application/json"]}, "Body": huge}}, "Metadata": {}});

    let (status, answer) = app.invoke("EnqueueSmsBatch", &invocation).await;

    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], 413);
    assert!(answer["Outputs"].get("outbox").is_none());
}

#[tokio::test]
async fn a_malformed_queue_message_names_the_broken_field_in_its_record() {
    let app = spawn_app().await;
    let message =
        json!({"v": 1, "batchId": "not-a-uuid", "part": 0, "message": "hi", "to": [RECIPIENT]})
            .to_string();
    let Some(invocation) = queue_invocation(&message, 1) else {
        return;
    };

    let (_, answer) = app.invoke("SendSmsFromQueue", &invocation).await;

    let records = failure_records(&answer);
    assert!(
        records[0]["detail"].as_str().unwrap().contains("`batchId`"),
        "{}",
        records[0]
    );
    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn messages_written_as_arrays_are_refused_in_batches_and_on_the_queue() {
    let app = spawn_app().await;
    let body =
        json!({"messages": [[RECIPIENT, "positional", "+18005550100", true, "tag"]]}).to_string();
    let Some(batch) = batch_invocation(&body, "application/json") else {
        return;
    };
    let positional = json!([
        1,
        "6f2d8a0e-5b7c-4e1f-9a3b-2c4d6e8f0a1b",
        0,
        "+18005550100",
        "text",
        [RECIPIENT]
    ])
    .to_string();
    let missing = json!({"v": 1, "batchId": "6f2d8a0e-5b7c-4e1f-9a3b-2c4d6e8f0a1b", "part": 0, "to": [RECIPIENT]}).to_string();

    let (_, batch_answer) = app.invoke("EnqueueSmsBatch", &batch).await;
    let (_, positional_answer) = app
        .invoke(
            "SendSmsFromQueue",
            &queue_invocation(&positional, 1).unwrap(),
        )
        .await;
    let (_, missing_answer) = app
        .invoke("SendSmsFromQueue", &queue_invocation(&missing, 1).unwrap())
        .await;

    assert_eq!(batch_answer["Outputs"]["res"]["statusCode"], 400);
    assert!(batch_answer["Outputs"].get("outbox").is_none());
    assert_eq!(
        failure_records(&positional_answer)[0]["reason"],
        "not_a_version_1_message"
    );
    let detail = failure_records(&missing_answer)[0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("`message` is missing"), "{detail}");
    assert!(app.acs.requests().is_empty());
}
