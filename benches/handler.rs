//! `cargo bench --bench handler`: startup time, idle memory and send throughput of the real
//! `handler` binary (release build), against a loopback ACS stub that answers at once.
//!
//! Everything runs on 127.0.0.1. Request loops are bounded in count and in time.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark report"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::{acs_vars, Handler, MockAcs, RECIPIENT};

const STARTS: usize = 20;
const SENDS: usize = 20_000;
const CONCURRENCY: usize = 32;
const LOAD_TIME_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        startup_time();
        let acs = MockAcs::start().await;
        idle_memory(&acs);
        throughput(&acs).await;
        batch_drain().await;
    });
}

/// Time from spawning the process to the first answer on `GET /`.
fn startup_time() {
    let mut times: Vec<Duration> = (0..STARTS)
        .map(|_| {
            let port = common::free_port();
            let started = Instant::now();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
                .env_clear()
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env("SMS_OUTBOX_PATH", "/dev/null")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let elapsed = loop {
                if first_answer(port) {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no answer on GET /"
                );
                std::thread::sleep(Duration::from_micros(200));
            };
            child.kill().unwrap();
            child.wait().unwrap();
            elapsed
        })
        .collect();
    times.sort();
    println!(
        "startup to first GET / answer: median {:.1} ms, max {:.1} ms over {STARTS} starts (target < 50 ms)",
        ms(times[STARTS / 2]),
        ms(times[STARTS - 1])
    );
}

fn first_answer(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    let mut buffer = [0u8; 12];
    matches!(stream.read(&mut buffer), Ok(n) if n >= 12 && buffer.starts_with(b"HTTP/1.1 200"))
}

/// Resident memory of an idle handler configured for ACS.
fn idle_memory(acs: &MockAcs) {
    let handler = Handler::start(&acs_vars(&acs.endpoint()));
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", handler.pid())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?");
    println!(
        "idle resident memory: {} (target < 15 MiB)",
        rss.trim_start_matches("VmRSS:").trim()
    );
}

/// Sends per second and latency through `POST /api/sms`.
async fn throughput(acs: &MockAcs) {
    let handler = Handler::start(&acs_vars(&acs.endpoint()));
    let client = common::client();
    let url = handler.url("/api/sms");
    let body = serde_json::to_vec(&json!({"to": RECIPIENT, "message": "Benchmark text"})).unwrap();
    // Warm the connections.
    for _ in 0..200 {
        post(&client, &url, &body).await;
    }

    let started = Instant::now();
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(SENDS));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, body, remaining) =
                (client.clone(), url.clone(), body.clone(), remaining.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                    && started.elapsed() < LOAD_TIME_LIMIT
                {
                    let sent = Instant::now();
                    assert_eq!(post(&client, &url, &body).await, 202);
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "POST /api/sms: {} sends in {:.2} s = {:.0} sends/s with {CONCURRENCY} connections; p50 {:.2} ms, p99 {:.2} ms (targets >= 3000/s, p99 < 20 ms)",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(pick(0.50)),
        ms(pick(0.99)),
    );
}

/// 10,000 recipients through `EnqueueSmsBatch`, then every queue message through
/// `SendSmsFromQueue` with the host's concurrency (batchSize 4 + newBatchThreshold 2).
async fn batch_drain() {
    let acs = MockAcs::start().await;
    let handler = Handler::start(&acs_vars(&acs.endpoint()));
    let client = common::client();
    let numbers: Vec<String> = (0..10_000).map(|i| format!("+1425{i:07}")).collect();
    let batch =
        json!({"messages": [{"to": numbers, "message": "Sale ends today: 20% off everything"}]});
    let invocation = json!({
        "Data": {"req": {"Method": "POST", "Headers": {"Content-Type": ["application/json"]}, "Body": batch.to_string()}},
        "Metadata": {}
    });

    let started = Instant::now();
    let answer: serde_json::Value = client
        .post(handler.url("/EnqueueSmsBatch"))
        .json(&invocation)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enqueued = started.elapsed();
    let messages: Vec<String> = answer["Outputs"]["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(messages.clone()));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, queue) = (client.clone(), handler.url("/SendSmsFromQueue"), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(message) = queue.lock().unwrap().pop() else { break };
                    let item = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, message);
                    let invocation = json!({"Data": {"queueItem": item}, "Metadata": {"DequeueCount": "1",
                        "InsertionTime": "2026-12-04T09:15:03+00:00"}});
                    let response = client.post(&url).json(&invocation).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let wall = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", handler.pid())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ?");
    println!(
        "batch of 10,000 recipients: enqueued as {} queue messages in {:.0} ms; drained with {} ACS calls ({} texts) in {:.2} s in all; peak resident memory {} (targets: 100 calls, < 64 MiB)",
        messages.len(),
        ms(enqueued),
        acs.requests().len(),
        acs.texts_sent(),
        wall.as_secs_f64(),
        peak.trim_start_matches("VmHWM:").trim(),
    );
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> u16 {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
