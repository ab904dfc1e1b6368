//! Each fault alone against `POST /api/sms`: once (the handler's own retries absorb it) and
//! on every attempt (the caller gets a clear problem, then a retry with the same key sends
//! each text once). Also a refused connection and a connection closed on accept.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{closed_port, closing_listener, MockAcs, RECIPIENT, RECIPIENT_2};
use crate::support::{
    fault_kinds, read_answer, send_with_retries, spawn_at, spawn_faulty, texts_sent_twice,
    told_accepted, Answer, FAULT_RETRY,
};

fn two_recipients(text: &str) -> Value {
    json!({"to": [RECIPIENT, RECIPIENT_2], "message": text})
}

/// The recipients of every ACS request, as sent.
fn sent_recipients(acs: &MockAcs) -> Vec<Vec<Value>> {
    acs.requests()
        .iter()
        .map(|r| {
            r.json()["smsRecipients"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn each_fault_once_is_absorbed_by_the_handler_and_every_try_sends_the_same_ids() {
    for (name, reply) in fault_kinds() {
        let acs = MockAcs::start().await;
        let app = spawn_faulty(acs.clone()).await;
        acs.script([reply.clone()]);
        let started = Instant::now();

        let answers = send_with_retries(
            &app.client,
            &app.url("/api/sms"),
            &two_recipients("single fault"),
            "single-1",
        )
        .await;

        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
        let last = answers.last().unwrap();
        assert_eq!(last.status(), 202, "{name}: {answers:?}");
        assert_eq!(told_accepted(&answers).len(), 2, "{name}");
        if name == "429 Retry-After 120" {
            // The wait does not fit the budget: the caller is told at once, then retries.
            assert!(
                matches!(&answers[0], Answer::Problem { status: 429, code } if code == "acs_throttled"),
                "{answers:?}"
            );
        } else {
            assert_eq!(answers.len(), 1, "{name}: the handler retried by itself");
        }
        let sent = sent_recipients(&acs);
        assert_eq!(sent.len(), 2, "{name}: one failed try and one that worked");
        for recipient in &sent[1] {
            assert!(sent[0].contains(recipient), "{name}: same id and time");
        }
        assert_eq!(acs.accepted().len(), 2, "{name}");
        assert_eq!(texts_sent_twice(&acs.accepted()), 0, "{name}");
    }
}

#[tokio::test]
async fn each_fault_on_every_attempt_gives_a_clear_answer_and_a_retry_sends_once() {
    let attempts = FAULT_RETRY.max_attempts as usize;
    for (name, reply) in fault_kinds() {
        let acs = MockAcs::start().await;
        let app = spawn_faulty(acs.clone()).await;
        // Per-recipient faults repeat for every round of the send, whole-request ones for
        // every attempt.
        acs.script(vec![reply.clone(); attempts]);
        let started = Instant::now();

        let response = app
            .client
            .post(app.url("/api/sms"))
            .header("idempotency-key", "exhausted-1")
            .json(&two_recipients("every attempt fails"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let first = read_answer(status, &headers, &response.bytes().await.unwrap());
        let retried = send_with_retries(
            &app.client,
            &app.url("/api/sms"),
            &two_recipients("every attempt fails"),
            "exhausted-1",
        )
        .await;

        assert!(started.elapsed() < Duration::from_secs(8), "{name}");
        assert!(
            !matches!(first, Answer::Unclear { .. }),
            "{name}: {first:?}"
        );
        assert!(first.worth_retrying(), "{name}: {first:?}");
        let last = retried.last().unwrap();
        assert_eq!(last.status(), 202, "{name}: {retried:?}");
        assert_eq!(texts_sent_twice(&acs.accepted()), 0, "{name}");
        assert_eq!(acs.accepted().len(), 2, "{name}: each text accepted once");
        let expected = match name {
            n if n.starts_with("429") => "acs_throttled",
            n if n.starts_with("per-recipient") => "",
            _ => "acs_unavailable",
        };
        match &first {
            Answer::Problem { code, .. } => assert_eq!(code, expected, "{name}"),
            Answer::Results { status, .. } => {
                assert_eq!((*status, expected), (207, ""), "{name}")
            }
            Answer::Unclear { .. } => unreachable!(),
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_acs_unavailable_within_the_budget() {
    let acs = MockAcs::start().await;
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let app = spawn_at(acs, &endpoint).await;
    let started = Instant::now();

    let answers = send_with_retries(
        &app.client,
        &app.url("/api/sms"),
        &two_recipients("nobody listens"),
        "refused-1",
    )
    .await;

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(answers.len(), crate::support::CLIENT_TRIES);
    for answer in &answers {
        assert!(
            matches!(answer, Answer::Problem { status: 503, code } if code == "acs_unavailable"),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_closed_on_accept_is_acs_unavailable() {
    let acs = MockAcs::start().await;
    let closing = closing_listener().await;
    let app = spawn_at(acs, &format!("http://{closing}")).await;

    let response = app
        .client
        .post(app.url("/api/sms"))
        .json(&two_recipients("closed at once"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let answer = read_answer(status, &headers, &response.bytes().await.unwrap());

    assert!(
        matches!(&answer, Answer::Problem { status: 503, code } if code == "acs_unavailable"),
        "{answer:?}"
    );
}
