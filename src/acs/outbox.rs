//! The local outbox: with no ACS configured, each would-be ACS request is appended as one
//! JSON line to a file and answered the way ACS would, with clearly synthetic ids.
//!
//! It honours repeatability ids like ACS: a recipient sent again with the same id is answered
//! with its first message id and not written twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tokio::fs::OpenOptions;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::error::AcsError;
use super::sms::{SmsSend, SmsSendResponseItem};

/// Most repeatability ids remembered; older ones are forgotten first.
const REMEMBERED_IDS: usize = 100_000;

/// Appends would-be ACS requests to a file.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Mutex<OutboxState>>,
    path: Arc<PathBuf>,
}

#[derive(Debug, Default)]
struct OutboxState {
    sent: HashMap<Uuid, String>,
    order: std::collections::VecDeque<Uuid>,
}

impl Outbox {
    pub fn new(path: PathBuf) -> Self {
        Self {
            inner: Arc::default(),
            path: Arc::new(path),
        }
    }

    /// Records one SMS send and answers like ACS's 202.
    ///
    /// # Errors
    /// When the file cannot be written; reported as ACS being unavailable.
    pub(crate) async fn record_sms(
        &self,
        send: &SmsSend,
        request_body: &[u8],
    ) -> Result<Vec<SmsSendResponseItem>, AcsError> {
        let mut state = self.inner.lock().await;
        let mut items = Vec::with_capacity(send.recipients.len());
        let mut fresh = Vec::new();
        for recipient in &send.recipients {
            let (message_id, repeated) = match state.sent.get(&recipient.repeatability_id) {
                Some(id) => (id.clone(), true),
                None => (format!("Outgoing_local_{}", Uuid::new_v4().simple()), false),
            };
            if !repeated {
                fresh.push((recipient.repeatability_id, message_id.clone()));
            }
            items.push(SmsSendResponseItem {
                to: recipient.to.as_str().to_owned(),
                message_id: Some(message_id),
                http_status_code: 202,
                repeatability_result: Some("accepted".into()),
                successful: true,
                error_message: None,
            });
        }
        if !fresh.is_empty() {
            let request: serde_json::Value =
                serde_json::from_slice(request_body).unwrap_or(serde_json::Value::Null);
            let line = json!({
                "kind": "sms",
                "recordedAt": httpdate::fmt_http_date(std::time::SystemTime::now()),
                "request": request,
                "response": { "value": items },
            });
            self.append(&line).await?;
            for (id, message_id) in fresh {
                state.sent.insert(id, message_id);
                state.order.push_back(id);
            }
            while state.order.len() > REMEMBERED_IDS {
                if let Some(old) = state.order.pop_front() {
                    state.sent.remove(&old);
                }
            }
        }
        Ok(items)
    }

    /// Appends one JSON line to the outbox file.
    pub(crate) async fn append(&self, line: &serde_json::Value) -> Result<(), AcsError> {
        let mut text = line.to_string();
        text.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.as_path())
            .await
            .map_err(|error| outbox_error(&error))?;
        file.write_all(text.as_bytes())
            .await
            .map_err(|error| outbox_error(&error))?;
        file.flush().await.map_err(|error| outbox_error(&error))
    }
}

fn outbox_error(error: &std::io::Error) -> AcsError {
    AcsError::LocalOutbox(error.kind())
}
