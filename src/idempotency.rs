//! `Idempotency-Key` support: a retried request with the same key and body gets the first
//! answer back and sends nothing twice.
//!
//! The store lives in the memory of one instance. Requests with one key are served one at a
//! time, so a retry that arrives while the first is still running waits for its answer. The
//! key also fixes each recipient's ACS repeatability id and first-sent time, so even a retry
//! that reaches another instance, or comes after a restart, is deduplicated by ACS inside its
//! repeatability window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::domain::{FieldErrors, PhoneNumber};

/// The request header that carries the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The response header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long an answer is kept.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Most keys kept; the oldest are forgotten first.
const CAPACITY: usize = 20_000;
/// Namespace for repeatability ids derived from idempotency keys.
const REPEATABILITY_NAMESPACE: Uuid = Uuid::from_u128(0x6f0c_1b7e_8a42_4d55_9b1e_52c3_a0d4_7e19);

/// A validated `Idempotency-Key`: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the key from the headers, if the caller sent one.
    ///
    /// # Errors
    /// When the header is present but breaks the rule.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, FieldErrors> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            let mut errors = FieldErrors::default();
            errors.push("Idempotency-Key", "must be sent once");
            return Err(errors);
        }
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 128 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            let mut errors = FieldErrors::default();
            errors.push(
                "Idempotency-Key",
                "must be 1 to 128 visible ASCII characters",
            );
            return Err(errors);
        }
        Ok(Some(Self(String::from_utf8_lossy(bytes).into_owned())))
    }

    /// The repeatability id of one recipient of the request this key names.
    pub fn repeatability_id(&self, scope: &str, recipient: &PhoneNumber) -> Uuid {
        let name = format!("{scope}\n{}\n{}", self.0, recipient.as_str());
        Uuid::new_v5(&REPEATABILITY_NAMESPACE, name.as_bytes())
    }
}

/// An answer kept for replay. `Debug` shows the body's size: it lists recipients.
#[derive(Clone)]
pub struct StoredResponse {
    pub status: u16,
    /// The JSON body exactly as first sent.
    pub body: bytes::Bytes,
}

impl std::fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Slot {
    response: Option<StoredResponse>,
}

#[derive(Debug)]
struct Entry {
    fingerprint: [u8; 32],
    first_sent: SystemTime,
    created: Instant,
    slot: Arc<Mutex<Slot>>,
}

/// Keys and their answers, bounded in count and age.
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: StdMutex<HashMap<(&'static str, IdempotencyKey), Entry>>,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// Run the request; call [`Ticket::complete`] with an answer worth replaying.
    Run(Ticket),
    /// Answer with this, sent before.
    Replay(StoredResponse),
    /// The key was used with another body.
    Conflict,
}

/// Exclusive right to run the request of one key.
pub struct Ticket {
    guard: OwnedMutexGuard<Slot>,
    /// When the first request with this key arrived; reused as ACS's first-sent time.
    pub first_sent: SystemTime,
}

impl Ticket {
    /// Keeps `response` for replay to later requests with the same key.
    pub fn complete(mut self, response: StoredResponse) {
        self.guard.response = Some(response);
    }
}

impl IdempotencyStore {
    /// Claims `key` for a request whose canonical body is `body`, waiting while another
    /// request with the same key runs.
    pub async fn claim(
        &self,
        route: &'static str,
        key: &IdempotencyKey,
        body: &serde_json::Value,
    ) -> Claim {
        let fingerprint: [u8; 32] = Sha256::digest(body.to_string().as_bytes()).into();
        let (slot, first_sent) = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            evict(&mut entries);
            let entry = entries
                .entry((route, key.clone()))
                .or_insert_with(|| Entry {
                    fingerprint,
                    first_sent: SystemTime::now(),
                    created: Instant::now(),
                    slot: Arc::default(),
                });
            if entry.fingerprint != fingerprint {
                return Claim::Conflict;
            }
            (entry.slot.clone(), entry.first_sent)
        };
        let guard = slot.lock_owned().await;
        match &guard.response {
            Some(response) => Claim::Replay(response.clone()),
            None => Claim::Run(Ticket { guard, first_sent }),
        }
    }
}

fn evict(entries: &mut HashMap<(&'static str, IdempotencyKey), Entry>) {
    if entries.len() < CAPACITY {
        return;
    }
    entries.retain(|_, entry| entry.created.elapsed() < TTL);
    while entries.len() >= CAPACITY {
        let oldest = entries
            .iter()
            .min_by_key(|(_, entry)| entry.created)
            .map(|(key, _)| key.clone());
        match oldest {
            Some(key) => entries.remove(&key),
            None => break,
        };
    }
}

/// What the queue function knows about one recipient of one queue message.
#[derive(Debug, Clone)]
pub enum LedgerEntry {
    /// ACS accepted it, with this message id.
    Accepted(String),
    /// ACS refused it for good: the reason code, ACS's message and status, to record again
    /// if the message returns.
    Failed {
        reason: String,
        detail: String,
        acs_status: Option<u16>,
    },
}

/// Recipients of queue messages whose outcome is already known on this instance, by
/// repeatability id, so a redelivered message sends only what is still open. Bounded: the
/// oldest entries are forgotten first, and ACS's own deduplication covers what is forgotten.
#[derive(Debug, Default)]
pub struct SendLedger {
    inner: StdMutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    entries: HashMap<Uuid, LedgerEntry>,
    order: std::collections::VecDeque<Uuid>,
}

/// Most recipients the ledger remembers.
const LEDGER_CAPACITY: usize = 50_000;

impl SendLedger {
    pub fn get(&self, id: &Uuid) -> Option<LedgerEntry> {
        let state = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.entries.get(id).cloned()
    }

    pub fn record(&self, id: Uuid, entry: LedgerEntry) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.entries.insert(id, entry).is_none() {
            state.order.push_back(id);
        }
        while state.order.len() > LEDGER_CAPACITY {
            if let Some(old) = state.order.pop_front() {
                state.entries.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(raw: &str) -> IdempotencyKey {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_str(raw).unwrap());
        IdempotencyKey::from_headers(&headers).unwrap().unwrap()
    }

    #[test]
    fn keys_must_be_1_to_128_visible_ascii_characters() {
        let long = "k".repeat(129);
        for raw in ["", " ", "has space", long.as_str(), "tab\there"] {
            let mut headers = HeaderMap::new();
            headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_str(raw).unwrap());
            assert!(IdempotencyKey::from_headers(&headers).is_err(), "{raw:?}");
        }
        assert!(IdempotencyKey::from_headers(&HeaderMap::new())
            .unwrap()
            .is_none());
        assert_eq!(key(&"k".repeat(128)).0.len(), 128);
    }

    #[test]
    fn a_key_sent_twice_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("a"));
        headers.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("b"));

        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }

    #[test]
    fn repeatability_ids_are_stable_per_key_and_recipient() {
        let a = PhoneNumber::parse("+14255550123").unwrap();
        let b = PhoneNumber::parse("+14255550124").unwrap();

        assert_eq!(
            key("k1").repeatability_id("sms", &a),
            key("k1").repeatability_id("sms", &a)
        );
        assert_ne!(
            key("k1").repeatability_id("sms", &a),
            key("k1").repeatability_id("sms", &b)
        );
        assert_ne!(
            key("k1").repeatability_id("sms", &a),
            key("k2").repeatability_id("sms", &a)
        );
    }

    #[tokio::test]
    async fn a_completed_key_replays_and_a_different_body_conflicts() {
        let store = IdempotencyStore::default();
        let body = serde_json::json!({"to": "+14255550123"});
        let Claim::Run(ticket) = store.claim("sms", &key("k"), &body).await else {
            panic!()
        };
        let first_sent = ticket.first_sent;
        ticket.complete(StoredResponse {
            status: 202,
            body: bytes::Bytes::from_static(b"{}"),
        });

        let replay = store.claim("sms", &key("k"), &body).await;
        let conflict = store
            .claim("sms", &key("k"), &serde_json::json!({"to": "+1"}))
            .await;

        assert!(matches!(
            replay,
            Claim::Replay(StoredResponse { status: 202, .. })
        ));
        assert!(matches!(conflict, Claim::Conflict));
        let Claim::Run(other) = store.claim("batch", &key("k"), &body).await else {
            panic!()
        };
        assert!(other.first_sent >= first_sent);
    }

    #[tokio::test]
    async fn an_unfinished_claim_lets_the_retry_run_with_the_same_first_sent_time() {
        let store = IdempotencyStore::default();
        let body = serde_json::json!({});
        let Claim::Run(first) = store.claim("sms", &key("k"), &body).await else {
            panic!()
        };
        let first_sent = first.first_sent;
        drop(first);

        let Claim::Run(retry) = store.claim("sms", &key("k"), &body).await else {
            panic!()
        };

        assert_eq!(retry.first_sent, first_sent);
    }
}
