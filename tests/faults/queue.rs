//! `EnqueueSmsBatch` then `SendSmsFromQueue` under the same faults, with the host's
//! redelivery simulated: a non-2xx answer puts the message back with `DequeueCount` one
//! higher, up to `maxDequeueCount` (5), alternating between two handler instances.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use acs_sms_handler::routes::queue::MAX_DELIVERIES;
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::{closed_port, MockAcs, Reply};
use crate::helpers::TestApp;
use crate::support::{
    faults_served, ids_per_text, load_script, mixed_script, spawn_at, spawn_with, texts_sent_twice,
    FAULT_RETRY,
};

const SEED: u64 = 0x5EED_0007;
const MESSAGES: usize = 40;
const RECIPIENTS_PER_MESSAGE: usize = 25;
/// The host's `batchSize` in `host.json`: messages handled at once.
const HOST_BATCH: usize = 4;
/// Faults are denser than in the load test, so that messages go back to the queue.
const SCRIPT_LENGTH: usize = 120;
const FAULT_PERCENT: usize = 70;
/// Two attempts per delivery, so that faults reach the host's redelivery often.
const QUEUE_RETRY: acs_sms_handler::acs::RetryPolicy = acs_sms_handler::acs::RetryPolicy {
    max_attempts: 2,
    ..FAULT_RETRY
};
const TIME_LIMIT: Duration = Duration::from_secs(120);

fn recipient(message: usize, index: usize) -> String {
    format!("+14255{message:02}{index:04}")
}

/// An `EnqueueSmsBatch` invocation as the host sends it, with `body` as the request body.
fn batch_invocation(body: &str) -> Value {
    json!({
        "Data": {"req": {
            "Url": "http://localhost:7071/api/sms/batches",
            "Method": "POST",
            "Headers": {"Content-Type": ["application/json"]},
            "Body": body,
        }},
        "Metadata": {}
    })
}

/// A `SendSmsFromQueue` invocation: the message base64-encoded, as `dataType: binary` sends it.
pub fn queue_invocation(message: &[u8], dequeue_count: u64, id: &str) -> Value {
    json!({
        "Data": {"queueItem": base64::engine::general_purpose::STANDARD.encode(message)},
        "Metadata": {
            "DequeueCount": dequeue_count.to_string(),
            "Id": format!("\"{id}\""),
            "InsertionTime": "2025-06-02T09:15:03+00:00",
        }
    })
}

fn outputs(answer: &Value, binding: &str) -> Vec<String> {
    crate::common::output_strings(answer, binding)
}

/// What the simulated host saw while draining the queue.
#[derive(Default)]
struct Drained {
    deliveries: usize,
    redeliveries: usize,
    poisoned: usize,
    failure_records: Vec<Value>,
}

/// Delivers every message until it succeeds or reaches the poison queue, `HOST_BATCH` at a
/// time, on instance `apps[dequeue_count % 2]`.
async fn drain(apps: &[TestApp; 2], messages: Vec<String>) -> Drained {
    let mut pending: VecDeque<(String, u64, String)> = messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| (message, 1, format!("msg-{i}")))
        .collect();
    let mut drained = Drained::default();
    while !pending.is_empty() {
        let take = pending.len().min(HOST_BATCH);
        let round: Vec<_> = pending.drain(..take).collect();
        let answers = futures::stream::iter(round)
            .map(|(message, count, id)| async move {
                let app = &apps[(count % 2) as usize];
                let invocation = queue_invocation(message.as_bytes(), count, &id);
                let answer = app.invoke("SendSmsFromQueue", &invocation).await;
                (message, count, id, answer)
            })
            .buffer_unordered(HOST_BATCH)
            .collect::<Vec<_>>()
            .await;
        for (message, count, id, (status, answer)) in answers {
            drained.deliveries += 1;
            if (200..300).contains(&status) {
                for record in outputs(&answer, "failed") {
                    drained
                        .failure_records
                        .push(serde_json::from_str(&record).unwrap());
                }
            } else if count < MAX_DELIVERIES {
                drained.redeliveries += 1;
                pending.push_back((message, count + 1, id));
            } else {
                drained.poisoned += 1;
            }
        }
    }
    drained
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_sends_under_mixed_faults_lose_no_recipient_across_redeliveries() {
    let acs = MockAcs::start().await;
    let endpoint = acs.endpoint();
    let apps = [
        spawn_with(acs.clone(), &endpoint, QUEUE_RETRY).await,
        spawn_with(acs.clone(), &endpoint, QUEUE_RETRY).await,
    ];
    let batch: Vec<Value> = (0..MESSAGES)
        .map(|m| {
            let to: Vec<String> = (0..RECIPIENTS_PER_MESSAGE)
                .map(|i| recipient(m, i))
                .collect();
            json!({"to": to, "message": format!("queue text {m}")})
        })
        .collect();
    let body = json!({"messages": batch}).to_string();
    let (_, enqueued) = apps[0]
        .invoke("EnqueueSmsBatch", &batch_invocation(&body))
        .await;
    let messages = outputs(&enqueued, "outbox");
    let mut script = mixed_script(SEED, SCRIPT_LENGTH, FAULT_PERCENT);
    // A few permanent refusals too, so failure records are part of the picture.
    for position in [3, 17, 29, 41] {
        let refusal = (
            "per-recipient 400 in a 202",
            Reply::FailIndex(position, 400),
        );
        script.insert(position, refusal);
    }
    load_script(&acs, &script);
    let started = Instant::now();

    let drained = tokio::time::timeout(TIME_LIMIT, drain(&apps, messages.clone()))
        .await
        .expect("the queue drains in time");

    let accepted = acs.accepted();
    let ids = ids_per_text(&accepted);
    let recorded: HashMap<(String, String), String> = drained
        .failure_records
        .iter()
        .map(|r| {
            let key = (
                r["batchId"].to_string(),
                r["recipient"].as_str().unwrap().to_owned(),
            );
            (key, r["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for record in &drained.failure_records {
        *reasons
            .entry(record["reason"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let batch_id = serde_json::from_str::<Value>(&messages[0]).unwrap()["batchId"].to_string();
    let (mut lost, mut unknown_but_sent, mut falsely_failed) = (0, 0, 0);
    for m in 0..MESSAGES {
        for i in 0..RECIPIENTS_PER_MESSAGE {
            let to = recipient(m, i);
            let sent = ids.contains_key(&(format!("queue text {m}"), to.clone()));
            let reason = recorded.get(&(batch_id.clone(), to)).map(String::as_str);
            match (sent, reason) {
                (false, None) => lost += 1,
                (true, Some("outcome_unknown")) => unknown_but_sent += 1,
                (true, Some(_)) => falsely_failed += 1,
                _ => {}
            }
        }
    }
    let twice = texts_sent_twice(&accepted);
    eprintln!("fault suite, queue function under mixed faults (seed {SEED:#x})");
    eprintln!(
        "  batch: {} recipients in {} queue messages, {HOST_BATCH} at a time, two instances",
        MESSAGES * RECIPIENTS_PER_MESSAGE,
        messages.len()
    );
    let injected = faults_served(&acs, &script);
    eprintln!(
        "  faults injected: {} in the first {} of {} scripted replies",
        injected.values().sum::<usize>(),
        script.len() - acs.script_left(),
        script.len()
    );
    for (name, count) in &injected {
        eprintln!("    {count:>4}  {name}");
    }
    eprintln!(
        "  deliveries: {} ({} redeliveries), poisoned: {}",
        drained.deliveries, drained.redeliveries, drained.poisoned
    );
    eprintln!("  requests made to ACS: {}", acs.requests().len());
    eprintln!(
        "  texts accepted (distinct repeatability ids): {}",
        accepted.len()
    );
    eprintln!(
        "  failure records: {} {reasons:?}",
        drained.failure_records.len()
    );
    eprintln!("  recipients lost: {lost}");
    eprintln!("  texts sent twice: {twice}");
    eprintln!("  recipients recorded outcome_unknown that ACS had accepted: {unknown_but_sent}");
    eprintln!(
        "  recipients recorded failed for another reason that ACS had accepted: {falsely_failed}"
    );
    eprintln!("  elapsed: {} ms", started.elapsed().as_millis());

    assert_eq!(lost, 0, "recipients lost");
    assert_eq!(twice, 0, "texts sent twice");
    assert_eq!(drained.poisoned, 0, "messages moved to the poison queue");
    assert_eq!(
        falsely_failed, 0,
        "accepted recipients recorded as definitely failed"
    );
    assert_eq!(
        accepted.len() + drained.failure_records.len() - unknown_but_sent,
        MESSAGES * RECIPIENTS_PER_MESSAGE,
        "each recipient accepted once or recorded once"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_by_redelivery_then_recorded_on_the_last() {
    let acs = MockAcs::start().await;
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let apps = [
        spawn_at(acs.clone(), &endpoint).await,
        spawn_at(acs, &endpoint).await,
    ];
    let message = json!({"v": 1, "batchId": uuid::Uuid::new_v4(), "part": 0,
        "from": "+18005550100", "message": "nobody listens",
        "to": ["+14255550123", "+14255550124"]})
    .to_string();

    let drained = drain(&apps, vec![message]).await;

    assert_eq!(drained.deliveries as u64, MAX_DELIVERIES);
    assert_eq!(drained.poisoned, 0);
    let reasons: Vec<&str> = drained
        .failure_records
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["outcome_unknown"; 2]);
}

#[tokio::test]
async fn a_last_delivery_that_gets_no_answer_records_the_outcome_as_unknown() {
    let acs = MockAcs::start().await;
    let endpoint = acs.endpoint();
    let apps = [
        spawn_with(acs.clone(), &endpoint, FAULT_RETRY).await,
        spawn_with(acs.clone(), &endpoint, FAULT_RETRY).await,
    ];
    let attempts = FAULT_RETRY.max_attempts as usize;
    let message = json!({"v": 1, "batchId": uuid::Uuid::new_v4(), "part": 0,
        "from": "+18005550100", "message": "two instances",
        "to": ["+14255550123", "+14255550124", "+14255550125"]})
    .to_string();
    // Delivery 4, on one instance: two recipients accepted, one failed transiently.
    acs.script(vec![Reply::FailIndex(0, 503); attempts]);
    let (fourth, _) = apps[0]
        .invoke(
            "SendSmsFromQueue",
            &queue_invocation(message.as_bytes(), 4, "m"),
        )
        .await;
    // Delivery 5, on the other instance, whose ledger knows nothing: ACS is down.
    acs.script(vec![Reply::Status(503, None); attempts]);

    let (fifth, answer) = apps[1]
        .invoke(
            "SendSmsFromQueue",
            &queue_invocation(message.as_bytes(), 5, "m"),
        )
        .await;

    assert_eq!((fourth, fifth), (503, 200));
    assert_eq!(acs.accepted().len(), 2);
    let reasons: Vec<String> = outputs(&answer, "failed")
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons, ["outcome_unknown"; 3]);
}
