//! A seeded mix of every fault under concurrent load: 200 sends of two recipients each,
//! 20 at a time, each with its own `Idempotency-Key` and a caller that retries with it.
//! Prints the figures the README quotes under "Faults and hostile input".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::common::MockAcs;
use crate::support::{
    faults_served, ids_per_text, load_script, mixed_script, send_with_retries, spawn_faulty,
    texts_sent_twice, told_accepted, Answer,
};

/// The seed of the script; change it to explore, keep it to reproduce the figures.
pub const SEED: u64 = 0x5EED_0006;
const SENDS: usize = 200;
const CONCURRENCY: usize = 20;
const SCRIPT_LENGTH: usize = 400;
const FAULT_PERCENT: usize = 50;
const TIME_LIMIT: Duration = Duration::from_secs(120);

fn recipients(send: usize) -> [String; 2] {
    [format!("+1425555{send:04}"), format!("+1425556{send:04}")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_mix_of_faults_under_load_loses_and_repeats_no_text() {
    let acs = MockAcs::start().await;
    let app = spawn_faulty(acs.clone()).await;
    let script = mixed_script(SEED, SCRIPT_LENGTH, FAULT_PERCENT);
    load_script(&acs, &script);
    let url = app.url("/api/sms");
    let started = Instant::now();

    let sends = futures::stream::iter(0..SENDS)
        .map(|send| {
            let client = app.client.clone();
            let url = url.clone();
            async move {
                let body = json!({"to": recipients(send), "message": format!("load text {send}")});
                let answers =
                    send_with_retries(&client, &url, &body, &format!("load-{send}")).await;
                (send, answers)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    let outcomes = tokio::time::timeout(TIME_LIMIT, sends)
        .await
        .expect("the load finishes in time");
    let elapsed = started.elapsed();

    let accepted = acs.accepted();
    let ids = ids_per_text(&accepted);
    let mut lost = 0;
    let mut untold = 0;
    let mut unclear = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (send, answers) in &outcomes {
        let told = told_accepted(answers);
        for answer in answers {
            *statuses.entry(answer.status()).or_insert(0) += 1;
            if let Answer::Unclear { .. } = answer {
                unclear.push(answer.clone());
            }
        }
        for to in recipients(*send) {
            let acs_accepted = ids.contains_key(&(format!("load text {send}"), to.clone()));
            match (told.contains(&to), acs_accepted) {
                (false, false) => lost += 1,
                (false, true) => untold += 1,
                _ => {}
            }
        }
    }
    let twice = texts_sent_twice(&accepted);
    let injected = faults_served(&acs, &script);
    let faults: usize = injected.values().sum();
    eprintln!("fault suite, mixed script under load (seed {SEED:#x})");
    eprintln!(
        "  sends: {SENDS} x 2 recipients, {CONCURRENCY} at a time, each with its own Idempotency-Key"
    );
    eprintln!(
        "  faults injected: {faults} in the first {} of {SCRIPT_LENGTH} scripted replies",
        SCRIPT_LENGTH - acs.script_left()
    );
    for (name, count) in &injected {
        eprintln!("    {count:>4}  {name}");
    }
    eprintln!("  requests made to ACS: {}", acs.requests().len());
    eprintln!("  answers to the caller by status: {statuses:?}");
    eprintln!(
        "  texts accepted (distinct repeatability ids): {}",
        accepted.len()
    );
    eprintln!("  texts lost: {lost}");
    eprintln!("  texts sent twice: {twice}");
    eprintln!("  answers that were not a clear status: {}", unclear.len());
    eprintln!("  texts ACS accepted whose caller was never told: {untold}");
    eprintln!("  elapsed: {} ms", elapsed.as_millis());

    assert_eq!(lost, 0, "texts lost");
    assert_eq!(twice, 0, "texts sent twice");
    assert!(unclear.is_empty(), "unclear answers: {unclear:?}");
    assert_eq!(
        accepted.len(),
        SENDS * 2,
        "every text accepted exactly once"
    );
}
