//! The binary's life: startup, configuration errors, the local outbox, one token for a
//! burst of sends, logs free of personal data and secrets, and draining on SIGTERM.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{
    acs_vars, post_json, Handler, MockAcs, MockIdentity, Reply, ACCESS_KEY_B64, IDENTITY_HEADER,
    MI_TOKEN, RECIPIENT, RECIPIENT_2, SENDER,
};

fn client() -> reqwest::Client {
    crate::common::client()
}

fn managed_identity(identity: &MockIdentity, acs: &MockAcs) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", identity.endpoint()),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ("ACS_ENDPOINT", acs.endpoint()),
        ("SMS_FROM", SENDER.to_owned()),
        ("WEBSITE_INSTANCE_ID", "test-instance".to_owned()),
    ]
}

#[tokio::test]
async fn many_concurrent_sends_cost_one_token_request() {
    let identity = MockIdentity::start().await;
    let acs = MockAcs::start().await;
    let handler = Handler::start(&managed_identity(&identity, &acs));
    let client = client();
    let url = handler.url("/api/sms");
    let body = json!({"to": RECIPIENT, "message": "burst"});

    let sends: Vec<_> = (0..40)
        .map(|_| post_json(&client, &url, &body, &[]))
        .collect();
    let answers = futures::future::join_all(sends).await;

    assert!(
        answers.iter().all(|(status, _, _)| *status == 202),
        "{}",
        handler.output()
    );
    assert_eq!(identity.calls(), 1);
    assert_eq!(identity.rejected(), 0);
    let requests = acs.requests();
    assert_eq!(requests.len(), 40);
    let bearer = format!("Bearer {MI_TOKEN}");
    assert!(requests
        .iter()
        .all(|r| r.headers["authorization"] == bearer.as_str()));
}

#[tokio::test]
async fn a_failing_identity_endpoint_gives_credential_unavailable_then_recovers() {
    let identity = MockIdentity::start().await;
    let acs = MockAcs::start().await;
    let handler = Handler::start(&managed_identity(&identity, &acs));
    identity.fail_next(3);
    let body = json!({"to": RECIPIENT, "message": "hello"});

    let (first, headers, problem) =
        post_json(&client(), &handler.url("/api/sms"), &body, &[]).await;
    let (second, _, _) = post_json(&client(), &handler.url("/api/sms"), &body, &[]).await;

    assert_eq!(
        (first, problem["code"].as_str().unwrap()),
        (503, "credential_unavailable")
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(second, 202);
    assert_eq!(acs.requests().len(), 1, "nothing was sent without a token");
}

#[tokio::test]
async fn a_missing_acs_endpoint_in_azure_stops_startup_naming_the_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("WEBSITE_INSTANCE_ID", "x")
        .env(
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            crate::common::free_port().to_string(),
        )
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ACS_ENDPOINT"), "{stderr}");
}

#[tokio::test]
async fn without_azure_the_local_outbox_records_what_would_be_sent() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.jsonl");
    let handler = Handler::start(&[("SMS_OUTBOX_PATH", path.display().to_string())]);
    let body =
        json!({"to": [RECIPIENT, RECIPIENT_2], "message": "Hello from the outbox", "from": SENDER});

    let (status, _, answer) = post_json(&client(), &handler.url("/api/sms"), &body, &[]).await;

    assert_eq!(status, 202, "{answer}");
    assert!(answer["results"][0]["messageId"]
        .as_str()
        .unwrap()
        .starts_with("Outgoing_local_"));
    let lines = std::fs::read_to_string(&path).unwrap();
    let recorded: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(recorded["kind"], "sms");
    assert_eq!(
        recorded["request"]["smsRecipients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(handler
        .output()
        .contains("LOCAL OUTBOX: nothing is really sent"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let acs = MockAcs::start().await;
    acs.script([Reply::Delay(Duration::from_millis(800))]);
    let handler = Handler::start(&acs_vars(&acs.endpoint()));
    let url = handler.url("/api/sms");
    let in_flight = tokio::spawn(async move {
        post_json(
            &client(),
            &url,
            &json!({"to": RECIPIENT, "message": "slow"}),
            &[],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = tokio::task::spawn_blocking(move || handler.terminate())
        .await
        .unwrap();

    assert!(status.success(), "{status:?}");
    assert_eq!(in_flight.await.unwrap().0, 202);
}

#[tokio::test]
async fn logs_at_debug_level_hold_no_number_text_token_or_identity_header() {
    let identity = MockIdentity::start().await;
    let acs = MockAcs::start().await;
    let mut vars = managed_identity(&identity, &acs);
    vars.push(("RUST_LOG", "debug".to_owned()));
    let handler = Handler::start(&vars);
    let client = client();
    let url = handler.url("/api/sms");
    let secret_text = "Your secret code is 44-55-66";
    acs.script([
        Reply::FailRecipients(vec![(RECIPIENT_2, 400)]),
        Reply::Status(503, None),
    ]);

    client.get(handler.url("/")).send().await.unwrap();
    let sends = [
        (
            json!({"to": [RECIPIENT, RECIPIENT_2], "message": secret_text}),
            vec![],
        ),
        (
            json!({"to": RECIPIENT, "message": secret_text, "tag": "t"}),
            vec![("Idempotency-Key", "k1")],
        ),
        (
            json!({"to": RECIPIENT, "message": secret_text, "tag": "t"}),
            vec![("Idempotency-Key", "k1")],
        ),
        (
            json!({"to": ["+1425555012x", RECIPIENT], "message": secret_text}),
            vec![],
        ),
    ];
    for (body, headers) in &sends {
        post_json(&client, &url, body, headers).await;
    }
    client
        .post(handler.url("/api/sms?code=function-key-value"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let output = handler.output();

    assert!(
        output.contains("request finished"),
        "the log was captured: {output}"
    );
    assert!(
        output.contains("DEBUG") || output.contains("\"level\":\"DEBUG\""),
        "debug level is on"
    );
    for secret in [
        &RECIPIENT[1..],
        &RECIPIENT_2[1..],
        "1425555012x",
        secret_text,
        "44-55-66",
        MI_TOKEN,
        IDENTITY_HEADER,
        ACCESS_KEY_B64,
        "function-key-value",
    ] {
        assert!(
            !output.contains(secret),
            "the log holds {secret}:\n{output}"
        );
    }
}

#[tokio::test]
async fn an_unwritable_outbox_path_stops_startup_naming_the_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("SMS_OUTBOX_PATH", "/nonexistent-dir-for-test/outbox.jsonl")
        .env(
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            crate::common::free_port().to_string(),
        )
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SMS_OUTBOX_PATH"), "{stderr}");
}

#[tokio::test]
async fn a_local_outbox_that_cannot_be_written_is_reported_as_such() {
    let dir = std::env::temp_dir().join(format!("outbox-gone-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.jsonl");
    let handler = Handler::start(&[("SMS_OUTBOX_PATH", path.display().to_string())]);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let body = json!({"to": RECIPIENT, "message": "hello", "from": SENDER});

    let (status, _, problem) = post_json(&client(), &handler.url("/api/sms"), &body, &[]).await;

    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (503, "outbox_unavailable")
    );
    std::fs::remove_dir_all(dir).unwrap();
}
