//! `GET /`: the host polls it to learn the handler is up, and later as a health ping. It
//! answers at once and calls nothing.

use axum::Json;
use serde_json::{json, Value};

/// Answers that the handler is up.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
