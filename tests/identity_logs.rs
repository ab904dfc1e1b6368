//! A log scan at debug level over every identity route: no ACS token, no Teams token and
//! no full identity id may appear in any event or span field.
//!
//! It is its own test binary on purpose: the capture is a thread-local default subscriber,
//! and tracing caches per-callsite interest process-wide, so tests running alongside on
//! other threads could leave a span callsite disabled for it.

mod support;

use axum::http::StatusCode;
use support::*;

const TOKEN_ROUTE: &str = "/api/identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081/token";

#[tokio::test]
async fn tokens_never_reach_the_logs_at_debug_level() {
    let capture = LogCapture::default();
    let _default = tracing::subscriber::set_default(capture.subscriber());
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);
    let create = serde_json::json!({ "scopes": ["chat"], "expiresInMinutes": 60 });
    let issue = serde_json::json!({ "scopes": ["voip"] });

    let created = call_json(&router, "POST", "/api/identities", &create).await;
    let issued = call_json(&router, "POST", TOKEN_ROUTE, &issue).await;
    let exchanged = call_json(&router, "POST", "/api/teams/token", &teams_body()).await;
    acs.then(Scripted::status(401).body(r#"{"error":{"code":"Unauthorized","message":""}}"#));
    let refused = call_json(&router, "POST", "/api/teams/token", &teams_body()).await;
    acs.then(Scripted::status(400).body(format!(
        r#"{{"error":{{"code":"InvalidToken","message":"token {TEAMS_TOKEN} is not valid"}}}}"#
    )));
    let rejected = call_json(&router, "POST", "/api/teams/token", &teams_body()).await;
    let malformed_body = serde_json::json!({ "token": TEAMS_TOKEN, "appId": "x", "userId": "y" });
    let invalid = call_json(&router, "POST", "/api/teams/token", &malformed_body).await;
    acs.then(Scripted::status(200).body(format!(r#"{{"token":"{ACS_TOKEN}"}}"#)));
    let broken = call_json(&router, "POST", TOKEN_ROUTE, &issue).await;
    let logs = capture.text();

    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(issued.status, StatusCode::OK);
    assert_eq!(exchanged.status, StatusCode::OK);
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_eq!(rejected.status, StatusCode::BAD_GATEWAY);
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.status, StatusCode::BAD_GATEWAY);
    // The capture works: debug lines from the ACS client and the request spans are there.
    assert!(logs.contains("ACS answered"), "{logs}");
    assert!(logs.contains("identity.exchange_teams_token"), "{logs}");
    assert!(logs.contains("request finished"), "{logs}");
    for secret in [
        ACS_TOKEN,
        TEAMS_TOKEN,
        "ZmFrZS1hY3MtdG9rZW4",
        "ZmFrZS10ZWFtcy10b2tlbi",
    ] {
        assert!(!logs.contains(secret), "a token reached the logs:\n{logs}");
    }
    assert!(
        !logs.contains(USER_ID) && !logs.contains(USER_ID_ENCODED),
        "{logs}"
    );
    assert!(!logs.contains(OBJECT_ID), "{logs}");
}
