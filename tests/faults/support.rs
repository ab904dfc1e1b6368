//! What the fault tests share: a retry policy with millisecond waits, apps built on it,
//! a seeded script of faults, a client that retries the way a careful caller does, and the
//! rules that say whether an answer is clear.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use acs_sms_handler::acs::RetryPolicy;
use acs_sms_handler::startup::Application;
use serde_json::Value;

use crate::common::{acs_vars, serve, Accepted, MockAcs, Reply};
use crate::helpers::{settings, TestApp};

/// Retry limits for the fault tests: short attempts so a slow answer times out quickly,
/// millisecond backoff, and a budget that bounds every call.
pub const FAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    attempt_timeout: Duration::from_millis(250),
    budget: Duration::from_secs(2),
    base_delay: Duration::from_millis(2),
    max_delay: Duration::from_millis(10),
};

/// How long a slow answer takes: past the attempt timeout.
pub const SLOW: Duration = Duration::from_millis(400);

/// Most tries a test client makes of one send, the first included.
pub const CLIENT_TRIES: usize = 8;

/// Wait of a test client between tries. It does not honour `Retry-After` (whole seconds),
/// so that the suite stays fast; the handler's own waits are what the tests exercise.
pub const CLIENT_WAIT: Duration = Duration::from_millis(10);

/// Problem codes of DESIGN §3 and the handler's own (`request_timeout`,
/// `idempotency_key_reused`, `method_not_allowed`). `internal_error` is left out on
/// purpose: under a fault it would mean a bug, so it counts as unclear.
pub const KNOWN_CODES: &[&str] = &[
    "invalid_json",
    "validation_failed",
    "unsupported_media_type",
    "payload_too_large",
    "acs_throttled",
    "acs_unavailable",
    "outbox_unavailable",
    "acs_forbidden",
    "acs_rejected",
    "credential_unavailable",
    "not_found",
    "method_not_allowed",
    "idempotency_key_reused",
    "request_timeout",
];

/// An app in front of `acs` whose ACS calls follow [`FAULT_RETRY`].
pub async fn spawn_faulty(acs: MockAcs) -> TestApp {
    let endpoint = acs.endpoint();
    spawn_at(acs, &endpoint).await
}

/// An app whose ACS endpoint is `endpoint`; `acs` is kept only so the helper type fits.
pub async fn spawn_at(acs: MockAcs, endpoint: &str) -> TestApp {
    spawn_with(acs, endpoint, FAULT_RETRY).await
}

/// An app whose ACS endpoint is `endpoint` and whose ACS calls follow `policy`.
pub async fn spawn_with(acs: MockAcs, endpoint: &str, policy: RetryPolicy) -> TestApp {
    let mut settings = settings(&acs_vars(endpoint));
    settings.retry.interactive = policy;
    settings.retry.background = policy;
    let app = Application::build(settings).expect("the app builds");
    let addr = serve(app.router()).await;
    TestApp {
        base: format!("http://{addr}"),
        acs,
        client: crate::common::client(),
    }
}

/// SplitMix64: a tiny seeded generator, so the script is the same on every machine and
/// with every version of `rand`.
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Every fault the mixed script draws from, with a short name for the report.
pub fn fault_kinds() -> Vec<(&'static str, Reply)> {
    vec![
        ("429", Reply::Status(429, None)),
        ("429 Retry-After 0", Reply::Status(429, Some(0))),
        ("429 retry-after-ms 20", Reply::StatusMs(429, 20)),
        ("429 Retry-After 120", Reply::Status(429, Some(120))),
        ("408", Reply::Status(408, None)),
        ("500", Reply::Status(500, None)),
        ("502", Reply::Status(502, None)),
        ("503", Reply::Status(503, None)),
        ("503 Retry-After 0", Reply::Status(503, Some(0))),
        ("504", Reply::Status(504, None)),
        ("slow past the attempt timeout", Reply::Delay(SLOW)),
        ("reset before accepting", Reply::Reset),
        ("reset after accepting", Reply::AcceptThenReset),
        ("malformed 202", Reply::Malformed),
        ("per-recipient 503 in a 202", Reply::FailIndex(0, 503)),
        ("per-recipient 429 in a 202", Reply::FailIndex(1, 429)),
    ]
}

/// A finite script of `length` named replies: about `fault_percent` of them faults drawn
/// evenly from [`fault_kinds`], the rest accepts (named `accept`).
pub fn mixed_script(seed: u64, length: usize, fault_percent: usize) -> Vec<(&'static str, Reply)> {
    let kinds = fault_kinds();
    let mut rng = Seeded::new(seed);
    (0..length)
        .map(|_| {
            if rng.below(100) >= fault_percent {
                return ("accept", Reply::Accept);
            }
            kinds[rng.below(kinds.len())].clone()
        })
        .collect()
}

/// Hands the replies of `script` to `acs`, in order.
pub fn load_script(acs: &MockAcs, script: &[(&'static str, Reply)]) {
    acs.script(script.iter().map(|(_, reply)| reply.clone()));
}

/// Faults by name among the replies `acs` has served from `script` (it serves in order).
pub fn faults_served(
    acs: &MockAcs,
    script: &[(&'static str, Reply)],
) -> BTreeMap<&'static str, usize> {
    let served = script.len() - acs.script_left();
    let mut counts = BTreeMap::new();
    for (name, _) in script
        .iter()
        .take(served)
        .filter(|(name, _)| *name != "accept")
    {
        *counts.entry(*name).or_insert(0) += 1;
    }
    counts
}

/// One answer of the handler, as a careful caller reads it.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 202 or 207 with one result per recipient: (to, accepted, retryable).
    Results {
        status: u16,
        results: Vec<(String, bool, bool)>,
    },
    /// A problem document with a known code (and `Retry-After` on 429 and 503).
    Problem { status: u16, code: String },
    /// Anything else, with the start of its body for the assertion message.
    Unclear {
        status: u16,
        #[allow(dead_code, reason = "read through Debug in assertion messages")]
        body: String,
    },
}

impl Answer {
    /// Whether a careful caller tries again with the same key: 429, 503, or a 207 whose
    /// failures include a retryable one.
    pub fn worth_retrying(&self) -> bool {
        match self {
            Self::Problem { status, .. } => matches!(status, 429 | 503),
            Self::Results { results, .. } => results.iter().any(|(_, ok, retry)| !ok && *retry),
            Self::Unclear { .. } => false,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Results { status, .. }
            | Self::Problem { status, .. }
            | Self::Unclear { status, .. } => *status,
        }
    }
}

/// Reads an answer strictly: the status, the content type and the body must agree.
pub fn read_answer(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Answer {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let unclear = || Answer::Unclear {
        status,
        body: String::from_utf8_lossy(body).chars().take(300).collect(),
    };
    match status {
        202 | 207 if content_type == "application/json" => {
            let Some(results) = read_results(&json) else {
                return unclear();
            };
            let failed = results.iter().any(|(_, ok, _)| !ok);
            if results.is_empty() || failed != (status == 207) {
                return unclear();
            }
            Answer::Results { status, results }
        }
        400..=599 if content_type == "application/problem+json" => {
            let code = json["code"].as_str().unwrap_or_default();
            let retry_after_ok =
                !matches!(status, 429 | 503) || headers.contains_key("retry-after");
            let consistent = json["status"].as_u64() == Some(u64::from(status));
            if KNOWN_CODES.contains(&code) && retry_after_ok && consistent {
                Answer::Problem {
                    status,
                    code: code.to_owned(),
                }
            } else {
                unclear()
            }
        }
        _ => unclear(),
    }
}

fn read_results(json: &Value) -> Option<Vec<(String, bool, bool)>> {
    json["results"]
        .as_array()?
        .iter()
        .map(|result| {
            let to = result["to"].as_str()?.to_owned();
            match result["status"].as_str()? {
                "accepted" => {
                    result["messageId"].as_str()?;
                    Some((to, true, false))
                }
                "failed" => {
                    result["error"]["code"].as_str()?;
                    let retryable = result["error"]["retryable"].as_bool()?;
                    Some((to, false, retryable))
                }
                _ => None,
            }
        })
        .collect()
}

/// Posts `body` to `url` with an `Idempotency-Key`, trying again with the same key while the
/// answer is worth retrying, at most [`CLIENT_TRIES`] times. Returns every answer.
pub async fn send_with_retries(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    key: &str,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for _ in 0..CLIENT_TRIES {
        let response = client
            .post(url)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let answer = read_answer(status, &headers, &bytes);
        let again = answer.worth_retrying();
        answers.push(answer);
        if !again {
            break;
        }
        tokio::time::sleep(CLIENT_WAIT).await;
    }
    answers
}

/// Recipients some answer reported accepted.
pub fn told_accepted(answers: &[Answer]) -> HashSet<String> {
    answers
        .iter()
        .filter_map(|answer| match answer {
            Answer::Results { results, .. } => Some(results),
            _ => None,
        })
        .flatten()
        .filter(|(_, ok, _)| *ok)
        .map(|(to, _, _)| to.clone())
        .collect()
}

/// Repeatability ids ACS accepted per (message text, recipient): a text is identified by
/// its wording, which the tests make unique per send.
pub fn ids_per_text(accepted: &[Accepted]) -> HashMap<(String, String), HashSet<String>> {
    let mut ids: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for text in accepted {
        ids.entry((text.message.clone(), text.to.clone()))
            .or_default()
            .insert(text.repeatability_id.clone());
    }
    ids
}

/// Texts ACS accepted under more than one repeatability id: a handset got them twice.
pub fn texts_sent_twice(accepted: &[Accepted]) -> usize {
    ids_per_text(accepted)
        .values()
        .map(|ids| ids.len().saturating_sub(1))
        .sum()
}
