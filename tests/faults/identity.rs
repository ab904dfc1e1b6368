//! The real binary with managed identity against a loopback identity endpoint that answers
//! 500 for a while, with ACS faults on top: callers get `credential_unavailable` (503 with
//! `Retry-After`), nothing reaches ACS without a token, and every send ends accepted once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Handler, MockAcs, MockIdentity, Reply, IDENTITY_HEADER, MI_TOKEN, SENDER};
use crate::support::{send_with_retries, texts_sent_twice, told_accepted, Answer};

/// Variables of the binary with managed identity; `IDENTITY_ENDPOINT` is the loopback mock.
pub fn managed_identity(identity: &MockIdentity, acs: &MockAcs) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", identity.endpoint()),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ("ACS_ENDPOINT", acs.endpoint()),
        ("SMS_FROM", SENDER.to_owned()),
        ("WEBSITE_INSTANCE_ID", "fault-test-instance".to_owned()),
    ]
}

#[tokio::test]
async fn an_identity_endpoint_failing_for_a_while_delays_sends_but_loses_none() {
    let identity = MockIdentity::start().await;
    let acs = MockAcs::start().await;
    let handler = Handler::start(&managed_identity(&identity, &acs));
    // Five failures: the first send's three token requests, then two of the second's.
    identity.fail_next(5);
    // Faults that the binary's own policy gets past quickly.
    acs.script([
        Reply::Status(429, Some(120)),
        Reply::Reset,
        Reply::Malformed,
        Reply::FailIndex(0, 503),
    ]);
    let client = crate::common::client();
    let url = handler.url("/api/sms");
    let started = Instant::now();

    let mut outcomes = Vec::new();
    for send in 0..4 {
        let to = [format!("+1425557{send:04}"), format!("+1425558{send:04}")];
        let body = json!({"to": to, "message": format!("identity text {send}")});
        let answers = send_with_retries(&client, &url, &body, &format!("identity-{send}")).await;
        outcomes.push((to, answers));
    }

    assert!(started.elapsed() < Duration::from_secs(30));
    let first = &outcomes[0].1[0];
    assert!(
        matches!(first, Answer::Problem { status: 503, code } if code == "credential_unavailable"),
        "{first:?}\n{}",
        handler.output()
    );
    for (to, answers) in &outcomes {
        assert!(
            answers.iter().all(|a| !matches!(a, Answer::Unclear { .. })),
            "{answers:?}"
        );
        let told = told_accepted(answers);
        assert!(to.iter().all(|n| told.contains(n)), "{answers:?}");
    }
    assert_eq!(acs.accepted().len(), 8);
    assert_eq!(texts_sent_twice(&acs.accepted()), 0);
    assert_eq!(identity.rejected(), 0);
    let bearer = format!("Bearer {MI_TOKEN}");
    assert!(
        acs.requests()
            .iter()
            .all(|r| r.headers["authorization"] == bearer.as_str()),
        "no request reached ACS without the token"
    );
    assert_eq!(identity.calls(), 1, "one token served every later send");
}
