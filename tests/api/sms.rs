//! `POST /api/sms`.

use base64::Engine;
use hmac::Mac;
use serde_json::{json, Value};
use sha2::Digest;

use crate::common::{
    post_json, Reply, ACCESS_KEY_B64, RECIPIENT, RECIPIENT_2, RECIPIENT_3, SENDER,
};
use crate::helpers::{spawn_app, TestApp};

async fn send(
    app: &TestApp,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_json(&app.client, &app.url("/api/sms"), body, headers).await
}

fn two_recipients() -> Value {
    json!({ "to": [RECIPIENT, RECIPIENT_2], "message": "Your code is 123456" })
}

#[tokio::test]
async fn send_sms_returns_202_with_a_result_per_recipient_and_a_signed_official_request() {
    let app = spawn_app().await;

    let (status, _, body) = send(
        &app,
        &json!({
            "to": [RECIPIENT, RECIPIENT_2, RECIPIENT], "message": "Your code is 123456",
            "deliveryReport": true, "tag": "otp-login"
        }),
        &[],
    )
    .await;

    assert_eq!(status, 202, "{body}");
    assert_eq!(body["encoding"], "GSM-7");
    assert_eq!(body["segments"], 1);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "duplicates are sent once");
    assert_eq!(results[0]["to"], RECIPIENT);
    assert_eq!(results[0]["status"], "accepted");
    assert!(results[0]["messageId"]
        .as_str()
        .unwrap()
        .starts_with("Outgoing_mock_"));

    let requests = app.acs.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms")
    );
    assert_eq!(request.query, "api-version=2021-03-07");
    let sent = request.json();
    assert_eq!(sent["from"], SENDER);
    assert_eq!(sent["message"], "Your code is 123456");
    assert_eq!(
        sent["smsSendOptions"],
        json!({"enableDeliveryReport": true, "tag": "otp-login"})
    );
    for recipient in sent["smsRecipients"].as_array().unwrap() {
        let id = recipient["repeatabilityRequestId"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok() && id.len() == 36);
        let first_sent = recipient["repeatabilityFirstSent"].as_str().unwrap();
        assert!(httpdate::parse_http_date(first_sent).is_ok() && first_sent.ends_with(" GMT"));
    }
    assert_hmac_signature_is_valid(request, &app.acs.addr.to_string());
}

/// Checks the signature with an independent computation of the ACS HMAC scheme.
fn assert_hmac_signature_is_valid(request: &crate::common::Recorded, host: &str) {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let content_hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&request.body));
    assert_eq!(header("x-ms-content-sha256"), content_hash);
    let to_sign = format!(
        "POST\n{}?{}\n{};{host};{content_hash}",
        request.path,
        request.query,
        header("x-ms-date")
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACCESS_KEY_B64)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        header("authorization"),
        format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
        )
    );
}

#[tokio::test]
async fn a_per_recipient_failure_inside_the_202_gives_a_207() {
    let app = spawn_app().await;
    app.acs
        .script([Reply::FailRecipients(vec![(RECIPIENT_2, 400)])]);

    let (status, _, body) = send(&app, &two_recipients(), &[]).await;

    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted");
    let failed = &body["results"][1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["to"], RECIPIENT_2);
    assert_eq!(failed["error"]["httpStatus"], 400);
    assert_eq!(failed["error"]["retryable"], false);
    assert_eq!(failed["error"]["code"], "recipient_rejected");
    assert_eq!(
        app.acs.requests().len(),
        1,
        "a permanent failure is not sent again"
    );
}

#[tokio::test]
async fn a_transient_per_recipient_failure_is_sent_again_with_the_same_repeatability_id() {
    let app = spawn_app().await;
    app.acs
        .script([Reply::FailRecipients(vec![(RECIPIENT_2, 503)])]);

    let (status, _, body) = send(&app, &two_recipients(), &[]).await;

    assert_eq!(status, 202, "{body}");
    let requests = app.acs.requests();
    assert_eq!(requests.len(), 2);
    let retried = requests[1].json();
    assert_eq!(retried["smsRecipients"].as_array().unwrap().len(), 1);
    assert_eq!(retried["smsRecipients"][0]["to"], RECIPIENT_2);
    assert_eq!(
        retried["smsRecipients"][0],
        requests[0].json()["smsRecipients"][1]
    );
    assert_eq!(app.acs.texts_sent(), 2);
}

#[tokio::test]
async fn bad_input_gets_the_right_problem_code_and_makes_no_acs_call() {
    let app = spawn_app().await;
    let too_many: Vec<String> = (0..101).map(|i| format!("+1425555{i:04}")).collect();
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"to": "14255550123", "message": "hi"}),
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            json!({"to": ["+0425"], "message": "hi"}),
            400,
            "validation_failed",
            Some("to[0]"),
        ),
        (
            json!({"to": [], "message": "hi"}),
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            json!({"to": too_many, "message": "hi"}),
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            json!({"to": RECIPIENT, "message": ""}),
            400,
            "validation_failed",
            Some("message"),
        ),
        (
            json!({"to": RECIPIENT, "message": "a".repeat(2049)}),
            400,
            "validation_failed",
            Some("message"),
        ),
        (
            json!({"to": RECIPIENT, "message": "a".repeat(1531)}),
            400,
            "validation_failed",
            Some("message"),
        ),
        (
            json!({"to": RECIPIENT, "message": "nul\u{0}"}),
            400,
            "validation_failed",
            Some("message"),
        ),
        (
            json!({"to": RECIPIENT, "message": "hi", "from": "Not!Valid"}),
            400,
            "validation_failed",
            Some("from"),
        ),
        (
            json!({"to": RECIPIENT, "message": "hi", "tag": "t".repeat(65)}),
            400,
            "validation_failed",
            Some("tag"),
        ),
        (
            json!({"message": "hi"}),
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            json!({"to": RECIPIENT, "message": 5}),
            400,
            "invalid_json",
            None,
        ),
        (
            json!({"to": RECIPIENT, "message": "hi", "deliveryReport": "yes"}),
            400,
            "invalid_json",
            None,
        ),
        (
            json!({"to": RECIPIENT, "message": "hi", "unknown": 1}),
            400,
            "invalid_json",
            None,
        ),
        (json!([RECIPIENT]), 400, "invalid_json", None),
    ];

    for (body, status, code, field) in cases {
        let (got_status, headers, problem) = send(&app, &body, &[]).await;
        assert_eq!(
            (got_status, problem["code"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
        if let Some(field) = field {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{body}: {fields:?}");
        }
    }

    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn malformed_bodies_media_types_and_sizes_are_refused_before_any_acs_call() {
    let app = spawn_app().await;
    let url = app.url("/api/sms");
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let cases = vec![
        (
            raw("{not json", "application/json").await.unwrap(),
            400,
            "invalid_json",
        ),
        (
            raw(
                "{\"to\":\"+14255550123\",\"to\":\"+14255550124\",\"message\":\"x\"}",
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "invalid_json",
        ),
        (
            raw(
                "{\"to\":\"+14255550123\",\"message\":\"\\ud800\"}",
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "invalid_json",
        ),
        (
            raw("{}", "text/plain").await.unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            app.client.post(&url).body("{}").send().await.unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 70_000])
                .send()
                .await
                .unwrap(),
            413,
            "payload_too_large",
        ),
        (
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{}1{}", "[".repeat(200), "]".repeat(200)))
                .send()
                .await
                .unwrap(),
            400,
            "invalid_json",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code);
    }

    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_sends_nothing_twice() {
    let app = spawn_app().await;
    let key = [("Idempotency-Key", "order-7781-otp")];

    let (first_status, _, first) = send(&app, &two_recipients(), &key).await;
    let (second_status, headers, second) = send(&app, &two_recipients(), &key).await;

    assert_eq!((first_status, second_status), (202, 202));
    assert_eq!(first, second);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(app.acs.requests().len(), 1);
    assert_eq!(app.acs.texts_sent(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_acs_call() {
    let app = spawn_app().await;
    app.acs
        .script([Reply::Delay(std::time::Duration::from_millis(100))]);

    let body = two_recipients();
    let sends: Vec<_> = (0..8)
        .map(|_| send(&app, &body, &[("Idempotency-Key", "burst-1")]))
        .collect();
    let answers = futures::future::join_all(sends).await;

    assert!(answers.iter().all(|(status, _, _)| *status == 202));
    assert_eq!(app.acs.requests().len(), 1);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused_and_sends_nothing() {
    let app = spawn_app().await;
    let key = [("Idempotency-Key", "k-1")];
    send(&app, &two_recipients(), &key).await;

    let (status, _, problem) =
        send(&app, &json!({"to": RECIPIENT_3, "message": "other"}), &key).await;

    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (422, "idempotency_key_reused")
    );
    assert_eq!(app.acs.requests().len(), 1);
}

#[tokio::test]
async fn a_request_retried_after_an_acs_outage_reuses_its_repeatability_ids() {
    let app = spawn_app().await;
    app.acs.script([
        Reply::Status(503, None),
        Reply::Status(503, None),
        Reply::Status(503, None),
        Reply::Status(503, None),
    ]);
    let key = [("Idempotency-Key", "retry-after-outage")];

    let (first, _, problem) = send(&app, &two_recipients(), &key).await;
    let (second, _, _) = send(&app, &two_recipients(), &key).await;

    assert_eq!(
        (first, problem["code"].as_str().unwrap()),
        (503, "acs_unavailable")
    );
    assert_eq!(second, 202);
    let requests = app.acs.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(
        requests[0].json()["smsRecipients"],
        requests[4].json()["smsRecipients"]
    );
}

#[tokio::test]
async fn acs_failures_map_to_their_problem_codes() {
    let cases = vec![
        (
            vec![Reply::Status(429, Some(60))],
            429,
            "acs_throttled",
            Some("60"),
        ),
        (
            vec![Reply::Status(503, Some(1)); 4],
            503,
            "acs_unavailable",
            Some("1"),
        ),
        (vec![Reply::Status(401, None)], 502, "acs_forbidden", None),
        (vec![Reply::Status(403, None)], 502, "acs_forbidden", None),
        (vec![Reply::Status(400, None)], 502, "acs_rejected", None),
        (vec![Reply::Malformed; 4], 503, "acs_unavailable", Some("5")),
        (
            vec![Reply::Delay(std::time::Duration::from_secs(2)); 4],
            503,
            "acs_unavailable",
            Some("5"),
        ),
    ];
    for (replies, status, code, retry_after) in cases {
        let app = spawn_app().await;
        app.acs.script(replies.clone());

        let (got, headers, problem) = send(&app, &two_recipients(), &[]).await;

        assert_eq!(
            (got, problem["code"].as_str().unwrap()),
            (status, code),
            "{replies:?}"
        );
        assert_eq!(
            headers.get("retry-after").map(|v| v.to_str().unwrap()),
            retry_after,
            "{replies:?}"
        );
    }
}

#[tokio::test]
async fn a_throttle_that_fits_the_budget_is_waited_out() {
    let app = spawn_app().await;
    app.acs
        .script([Reply::Status(429, Some(0)), Reply::Status(503, None)]);

    let (status, _, _) = send(&app, &two_recipients(), &[]).await;

    assert_eq!(status, 202);
    assert_eq!(app.acs.requests().len(), 3);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_documents() {
    let app = spawn_app().await;

    let missing = app
        .client
        .get(app.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    let wrong_method = app.client.get(app.url("/api/sms")).send().await.unwrap();
    let health = app.client.get(app.url("/")).send().await.unwrap();

    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not_found");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_unknown_field_is_refused_without_repeating_its_name() {
    let app = spawn_app().await;
    let body = json!({"to": RECIPIENT, "message": "hi", "+14255550199": 1});

    let (status, _, problem) = send(&app, &body, &[]).await;

    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_json")
    );
    assert!(!problem.to_string().contains("14255550199"), "{problem}");
    assert!(app.acs.requests().is_empty());
}

/// Sends raw bytes on a fresh connection and returns the answer's status code.
async fn raw_request(app: &TestApp, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_a_400_and_a_chunked_body_over_the_limit_a_413() {
    let app = spawn_app().await;
    let truncated = b"POST /api/sms HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"to\":";
    let mut chunked = b"POST /api/sms HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b' '; 70_000];
    chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
    chunked.extend_from_slice(&chunk);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");

    let short = raw_request(&app, truncated).await;
    let large = raw_request(&app, &chunked).await;

    assert_eq!((short, large), (400, 413));
    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn a_message_of_invisible_characters_only_is_refused() {
    let app = spawn_app().await;

    let (status, _, problem) = send(
        &app,
        &json!({"to": RECIPIENT, "message": "\u{200B}\u{FEFF}"}),
        &[],
    )
    .await;

    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("message"))
    );
    assert!(app.acs.requests().is_empty());
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_on_a_stalled_connection() {
    use tokio::io::AsyncWriteExt;
    let acs = crate::common::MockAcs::start().await;
    let mut settings = crate::helpers::settings(&crate::common::acs_vars(&acs.endpoint()));
    settings.server.request_timeout = std::time::Duration::from_millis(200);
    settings.server.drain_grace = std::time::Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = acs_sms_handler::startup::Application::build(settings).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move { stopped.await.unwrap_or(()) }));
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    stalled
        .write_all(b"POST /api/sms HTTP/1.1\r\nhost: x\r\ncontent-le")
        .await
        .unwrap();
    // Let the server accept the connection and start reading its head.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    stop.send(()).unwrap();
    let finished = tokio::time::timeout(std::time::Duration::from_secs(3), server).await;

    assert!(
        finished.is_ok(),
        "serve still waits on the stalled connection"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_body_declared_in_a_charset_other_than_utf8_is_refused() {
    let app = spawn_app().await;
    let send = |content_type: &'static str| {
        app.client
            .post(app.url("/api/sms"))
            .header("content-type", content_type)
            .body(json!({"to": RECIPIENT, "message": "hi"}).to_string())
            .send()
    };

    let latin1 = send("application/json; charset=latin1")
        .await
        .unwrap()
        .status();
    let utf8 = send("application/json; charset=UTF-8")
        .await
        .unwrap()
        .status();

    assert_eq!((latin1.as_u16(), utf8.as_u16()), (415, 202));
}

#[tokio::test]
async fn a_bad_idempotency_key_and_a_bad_body_are_reported_together() {
    let app = spawn_app().await;

    let (status, _, problem) = send(
        &app,
        &json!({"to": "123", "message": "hi"}),
        &[("Idempotency-Key", "")],
    )
    .await;

    assert_eq!(status, 400);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["Idempotency-Key", "to"]);
}
