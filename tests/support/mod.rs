//! Helpers for the identity integration tests: a mock ACS for the Identity API (axum on
//! 127.0.0.1, port 0), the application wired to it, and log capture. The real-binary
//! contract test lives with the others in `tests/binary`.
//!
//! Everything here talks only to servers the tests start on 127.0.0.1.

// Helpers, not tests, so clippy's allow-unwrap-in-tests does not reach them.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acs_sms_handler::config::Settings;
use acs_sms_handler::startup::Application;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A communication user id in the form ACS gives out (from the official example).
pub const USER_ID: &str =
    "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
/// [`USER_ID`] percent-encoded as a path segment.
pub const USER_ID_ENCODED: &str =
    "8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
/// The token the mock ACS hands out; a fake JWT with a marker to search logs for.
pub const ACS_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.ZmFrZS1hY3MtdG9rZW4tNGYxZA.c2lnbmF0dXJl";
/// A Teams user's Entra token as a caller sends it; a fake JWT.
pub const TEAMS_TOKEN: &str = "eyJhbGciOiJub25lIn0.ZmFrZS10ZWFtcy10b2tlbi05YjJl.dGVhbXNzaWc";
/// Client id of a fake Entra application.
pub const APP_ID: &str = "00000000-0000-0000-0000-00000000a11d";
/// Object id of a fake Teams user.
pub const OBJECT_ID: &str = "00000000-0000-0000-0000-0000000000b0";
/// When the mock's tokens expire.
pub const EXPIRES_ON: &str = "2030-01-02T03:04:05.1234567+00:00";
/// [`EXPIRES_ON`] as the handler writes it.
pub const EXPIRES_ON_UTC: &str = "2030-01-02T03:04:05.1234567Z";
/// Base64 of `dummy-key-for-tests`: an access key that signs nothing real.
pub const DUMMY_ACCESS_KEY: &str = "ZHVtbXkta2V5LWZvci10ZXN0cw==";
/// Default sender the settings require alongside ACS.
pub const SENDER: &str = "+18005550100";

/// One request the mock ACS received, exactly as sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// The raw path and query, percent-encoding untouched.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body as JSON, or `Null` when empty.
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).expect("the handler sends JSON")
    }
}

/// An answer the mock ACS gives.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Scripted {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).expect("a valid status");
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.insert(name, HeaderValue::from_str(&value).expect("a valid header"));
        }
        response
    }
}

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    queued: Mutex<VecDeque<Scripted>>,
    always: Mutex<Option<Scripted>>,
}

/// An in-process ACS: records every request and answers like the Identity API, unless a
/// test scripted another answer.
pub struct MockAcs {
    pub addr: SocketAddr,
    state: Arc<MockState>,
    server: JoinHandle<()>,
}

impl MockAcs {
    /// Starts the mock on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        let state = Arc::new(MockState::default());
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next request with `answer`, once.
    pub fn then(&self, answer: Scripted) {
        self.state.queued.lock().unwrap().push_back(answer);
    }

    /// Answers every request not otherwise scripted with `answer`.
    pub fn always(&self, answer: Scripted) {
        *self.state.always.lock().unwrap() = Some(answer);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for MockAcs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|value| value.as_str().to_owned())
        .unwrap_or_default();
    let scripted = {
        let queued = state.queued.lock().unwrap().pop_front();
        queued.or_else(|| state.always.lock().unwrap().clone())
    };
    let answer = scripted.unwrap_or_else(|| default_answer(&parts.method, &path_and_query));
    state.requests.lock().unwrap().push(RecordedRequest {
        method: parts.method,
        path_and_query,
        headers: parts.headers,
        body,
    });
    answer.into_response()
}

/// What ACS answers to a well-formed Identity request.
pub fn default_answer(method: &Method, path_and_query: &str) -> Scripted {
    let token = serde_json::json!({ "token": ACS_TOKEN, "expiresOn": EXPIRES_ON });
    let path = path_and_query.split('?').next().unwrap_or_default();
    if method == Method::DELETE || path.ends_with("/:revokeAccessTokens") {
        return Scripted::status(204);
    }
    if path.ends_with("/:issueAccessToken") || path == "/teamsUser/:exchangeAccessToken" {
        return Scripted::status(200).body(token.to_string());
    }
    if path == "/identities" {
        let created = serde_json::json!({ "identity": { "id": USER_ID }, "accessToken": token });
        return Scripted::status(201).body(created.to_string());
    }
    Scripted::status(404).body(r#"{"error":{"code":"NotFound","message":"no such path"}}"#)
}

fn settings(vars: &[(&str, String)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned()).expect("valid test settings")
}

/// The router `startup.rs` builds, talking to `mock` with a dummy access key (HMAC).
pub fn acs_router(mock: &MockAcs) -> Router {
    let connection = format!("endpoint={};accesskey={DUMMY_ACCESS_KEY}", mock.endpoint());
    let settings = settings(&[
        ("ACS_CONNECTION_STRING", connection),
        ("SMS_FROM", SENDER.to_owned()),
    ]);
    Application::build(settings)
        .expect("the app builds")
        .router()
}

/// The router `startup.rs` builds in local-outbox mode, appending to `outbox`.
pub fn outbox_router(outbox: &Path) -> Router {
    let settings = settings(&[("SMS_OUTBOX_PATH", outbox.display().to_string())]);
    Application::build(settings)
        .expect("the app builds")
        .router()
}

/// A fresh file name in the temporary directory.
pub fn temp_file(stem: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{stem}-{}.jsonl", uuid::Uuid::new_v4()))
}

/// A response as tests read it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// The problem `code`, when the body is a problem document.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The `field` of every validation error.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| error["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one request through the router, without a socket.
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(body.into()).expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a readable body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON answer")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends a JSON body through the router.
pub async fn call_json(
    router: &Router,
    method: &str,
    uri: &str,
    body: &serde_json::Value,
) -> Answer {
    call(
        router,
        method,
        uri,
        Some("application/json"),
        body.to_string(),
    )
    .await
}

/// A Teams exchange body with fake values.
pub fn teams_body() -> serde_json::Value {
    serde_json::json!({ "token": TEAMS_TOKEN, "appId": APP_ID, "userId": OBJECT_ID })
}

/// Everything a test's tracing subscriber wrote, for scanning.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// A subscriber that writes every event at debug level and above, with span fields,
    /// into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let buffer = self.0.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_target(true)
            .with_writer(move || LogWriter(buffer.clone()))
            .finish()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
