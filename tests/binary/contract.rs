//! Our requests checked against Microsoft's contract: Prism serves the official 2021-03-07
//! SMS document with `--errors`, so any request that breaks the schema answers 422 and the
//! handler turns that into a 502, failing the test. The token comes from the real
//! `azure_identity` managed identity credential, through a loopback identity endpoint.

use serde_json::{json, Value};

use crate::common::{
    post_json, Handler, MockIdentity, Prism, IDENTITY_HEADER, RECIPIENT, RECIPIENT_2, SENDER,
};

const SMS_SPEC: &str =
    "specification/communication/data-plane/Sms/stable/2021-03-07/communicationservicessms.json";

fn managed_identity_vars(identity: &MockIdentity, acs: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", identity.endpoint()),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ("WEBSITE_INSTANCE_ID", "contract-test-instance".to_owned()),
        ("ACS_ENDPOINT", acs.to_owned()),
        ("SMS_FROM", SENDER.to_owned()),
        ("SMS_MAX_SEGMENTS", "14".to_owned()),
    ]
}

#[tokio::test]
async fn sms_requests_match_the_official_document_with_a_managed_identity_token() {
    let Some(prism) = Prism::start(SMS_SPEC) else {
        return;
    };
    let identity = MockIdentity::start().await;
    let handler = Handler::start(&managed_identity_vars(&identity, &prism.endpoint()));
    let client = crate::common::client();
    let cases: Vec<Value> = vec![
        json!({"to": RECIPIENT, "message": "Your code is 123456"}),
        json!({"to": [RECIPIENT], "message": "Привет 👋", "deliveryReport": true, "tag": "otp-login"}),
        json!({"to": RECIPIENT, "message": "x".repeat(2048), "from": "Contoso"}),
        json!({"to": RECIPIENT, "message": "short code sender", "from": "12345"}),
    ];

    for body in &cases {
        let (status, _, answer) = post_json(&client, &handler.url("/api/sms"), body, &[]).await;
        assert_eq!(status, 202, "{answer}\n{}", handler.output());
        assert_eq!(answer["results"][0]["status"], "accepted");
    }
    // Prism answers one result whatever the count, so the second recipient is reported
    // failed; what matters here is that the request itself passed the schema.
    let two = json!({"to": [RECIPIENT, RECIPIENT_2], "message": "two recipients"});
    let (status, _, answer) = post_json(&client, &handler.url("/api/sms"), &two, &[]).await;
    assert!(status == 202 || status == 207, "{answer}");

    assert_eq!(
        identity.rejected(),
        0,
        "the credential sent the wrong header or API version"
    );
    assert_eq!(identity.calls(), 1, "one token served every request");
}

#[tokio::test]
async fn a_drained_batch_makes_acs_requests_of_at_most_100_recipients_that_match_the_document() {
    let acs = crate::common::MockAcs::start().await;
    let Some(prism) = Prism::proxy(SMS_SPEC, &acs.endpoint()) else {
        return;
    };
    let identity = MockIdentity::start().await;
    let handler = Handler::start(&managed_identity_vars(&identity, &prism.endpoint()));
    let Some(mut enqueue) = crate::common::fixture_body("http-trigger-invocation.json") else {
        return;
    };
    let numbers: Vec<String> = (0..250).map(|i| format!("+1425{i:07}")).collect();
    let batch = json!({"messages": [{"to": numbers, "message": "Sale ends today", "tag": "promo"}], "deliveryReport": true});
    enqueue["Data"]["req"]["Body"] = json!(batch.to_string());
    let client = crate::common::client();

    let (status, _, answer) =
        post_json(&client, &handler.url("/EnqueueSmsBatch"), &enqueue, &[]).await;
    assert_eq!(status, 200, "{answer}");
    let messages = answer["Outputs"]["outbox"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 3);
    for message in messages {
        let Some(mut invocation) =
            crate::common::fixture_body("queue-trigger-binary-datatype.json")
        else {
            return;
        };
        let text = message.as_str().unwrap();
        invocation["Data"]["queueItem"] = json!(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            text
        ));
        let (status, _, answer) =
            post_json(&client, &handler.url("/SendSmsFromQueue"), &invocation, &[]).await;
        assert_eq!(status, 200, "{answer}\n{}", handler.output());
        assert!(answer["Outputs"].get("failed").is_none(), "{answer}");
    }

    let sizes: Vec<usize> = acs
        .requests()
        .iter()
        .map(|r| r.json()["smsRecipients"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(acs.texts_sent(), 250);
}
