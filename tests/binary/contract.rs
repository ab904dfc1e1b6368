//! Our requests checked against Microsoft's contract: Prism serves the official 2021-03-07
//! SMS and 2023-10-01 Identity documents with `--errors`, so any request that breaks the
//! schema is refused by Prism and the handler's answer fails the test. The token comes from the real
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

const IDENTITY_SPEC: &str =
    "specification/communication/data-plane/Identity/stable/2023-10-01/CommunicationIdentity.json";
/// A communication user id in the ACS form, percent-encoded for a path.
const USER_ID_ENCODED: &str =
    "8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
/// An obviously fake Teams user token; it must never reach the handler's log.
const TEAMS_TOKEN: &str = "eyJhbGciOiJub25lIn0.ZmFrZS10ZWFtcy10b2tlbi05YjJl.dGVhbXNzaWc";

/// One identity call: what, method, path, body, expected status, whether it holds a token.
type IdentityCall = (
    &'static str,
    reqwest::Method,
    String,
    Option<Value>,
    u16,
    bool,
);

#[tokio::test]
async fn every_identity_route_satisfies_the_official_identity_contract() {
    let Some(prism) = Prism::start(IDENTITY_SPEC) else {
        return;
    };
    let identity = MockIdentity::start().await;
    let handler = Handler::start(&managed_identity_vars(&identity, &prism.endpoint()));
    let client = crate::common::client();
    let user = format!("/api/identities/{USER_ID_ENCODED}");
    let all_scopes = [
        "chat",
        "voip",
        "chat.join",
        "chat.join.limited",
        "voip.join",
    ];
    let teams = json!({"token": TEAMS_TOKEN, "appId": "00000000-0000-0000-0000-00000000a11d",
                       "userId": "00000000-0000-0000-0000-0000000000b0"});
    let calls: Vec<IdentityCall> = vec![
        (
            "create without a body",
            reqwest::Method::POST,
            "/api/identities".into(),
            None,
            201,
            false,
        ),
        (
            "create without scopes",
            reqwest::Method::POST,
            "/api/identities".into(),
            Some(json!({})),
            201,
            false,
        ),
        (
            "create with every scope and a lifetime",
            reqwest::Method::POST,
            "/api/identities".into(),
            Some(json!({"scopes": all_scopes, "expiresInMinutes": 60})),
            201,
            true,
        ),
        (
            "issue a token with a lifetime",
            reqwest::Method::POST,
            format!("{user}/token"),
            Some(json!({"scopes": ["chat", "voip"], "expiresInMinutes": 1440})),
            200,
            true,
        ),
        (
            "issue a token with ACS's default lifetime",
            reqwest::Method::POST,
            format!("{user}/token"),
            Some(json!({"scopes": ["chat.join.limited"]})),
            200,
            true,
        ),
        (
            "revoke tokens",
            reqwest::Method::POST,
            format!("{user}/revoke"),
            None,
            204,
            false,
        ),
        (
            "delete the identity",
            reqwest::Method::DELETE,
            user.clone(),
            None,
            204,
            false,
        ),
        (
            "exchange a Teams token",
            reqwest::Method::POST,
            "/api/teams/token".into(),
            Some(teams),
            200,
            true,
        ),
    ];

    for (what, method, path, body, status, holds_token) in calls {
        let mut request = client.request(method, handler.url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let cache_control = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap_or_default();
        assert_eq!(got, status, "{what}: {text}");
        if status == 204 {
            continue;
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        let token = if status == 201 {
            assert!(
                answer["id"].as_str().is_some_and(|id| !id.is_empty()),
                "{what}: {text}"
            );
            &answer["token"]
        } else {
            &answer
        };
        if holds_token {
            assert!(
                token["token"].as_str().is_some_and(|t| !t.is_empty()),
                "{what}: {text}"
            );
            assert!(token["expiresOn"].as_str().is_some(), "{what}: {text}");
        } else {
            assert!(token.is_null(), "{what}: {text}");
        }
        assert_eq!(cache_control.as_deref(), Some("no-store"), "{what}");
    }

    assert!(
        identity.calls() >= 1,
        "the handler never asked the identity endpoint"
    );
    assert_eq!(
        identity.rejected(),
        0,
        "the identity endpoint refused a token request"
    );
    assert!(
        !handler.output().contains(TEAMS_TOKEN),
        "the Teams token reached the handler's log"
    );
}
