//! Test support shared by the test binaries: a mock ACS and a mock identity endpoint served
//! on 127.0.0.1, and the real `handler` binary started the way the Functions host starts it.
//!
//! Nothing here talks to any address but loopback. Child processes get a cleared environment,
//! so no Azure variable of the machine running the tests can leak into them.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};

pub const SENDER: &str = "+18005550100";
pub const RECIPIENT: &str = "+14255550123";
pub const RECIPIENT_2: &str = "+14255550124";
pub const RECIPIENT_3: &str = "+14255550125";
pub const IDENTITY_HEADER: &str = "identity-header-value-7f3a";
pub const MI_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJ.mi-token-payload.signature-5b1c";
/// Key "test-access-key" in base64.
pub const ACCESS_KEY_B64: &str = "dGVzdC1hY2Nlc3Mta2V5";

/// Binds an ephemeral port on 127.0.0.1 and serves `router` there.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the mock ACS answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 202, every recipient accepted (repeated repeatability ids get their first message id).
    Accept,
    /// 202, the listed recipients fail with the given status inside the answer.
    FailRecipients(Vec<(&'static str, u16)>),
    /// The whole request answers this status, with an optional Retry-After in seconds.
    Status(u16, Option<u64>),
    /// 202 with a body that is not SmsSendResponse.
    Malformed,
    /// Wait this long, then accept.
    Delay(Duration),
    /// The whole request answers this status with `retry-after-ms` set to the milliseconds.
    StatusMs(u16, u64),
    /// 202, the recipient at this index (modulo the count) fails with the status inside.
    FailIndex(usize, u16),
    /// The connection drops before an answer; nothing is accepted.
    Reset,
    /// Every recipient is accepted, then the connection drops before the answer arrives.
    AcceptThenReset,
}

/// A text the mock accepted for the first time under a repeatability id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub repeatability_id: String,
    pub to: String,
    pub message: String,
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct AcsState {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    message_ids: HashMap<String, String>,
    texts_sent: usize,
    texts_repeated: usize,
    accepted: Vec<Accepted>,
}

/// A mock ACS SMS endpoint that behaves like ACS for repeatability ids.
#[derive(Clone)]
pub struct MockAcs {
    pub addr: SocketAddr,
    state: Arc<Mutex<AcsState>>,
}

impl MockAcs {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(AcsState::default()));
        let router = Router::new()
            .fallback(any(acs_handler))
            .with_state(state.clone());
        let addr = serve(router).await;
        Self { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues replies for the next requests; afterwards every request is accepted.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Distinct texts ACS would have sent (a repeatability id counts once).
    pub fn texts_sent(&self) -> usize {
        self.state.lock().unwrap().texts_sent
    }

    /// Recipients that arrived again with a known repeatability id.
    pub fn texts_repeated(&self) -> usize {
        self.state.lock().unwrap().texts_repeated
    }

    /// Every text accepted under a repeatability id not seen before, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Replies still waiting in the script.
    pub fn script_left(&self) -> usize {
        self.state.lock().unwrap().script.len()
    }
}

async fn acs_handler(
    State(state): State<Arc<Mutex<AcsState>>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers,
            body: body.clone(),
        });
        state.script.pop_front().unwrap_or(Reply::Accept)
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match reply {
        Reply::Accept => accept(&state, &request, &[]),
        Reply::FailRecipients(failures) => {
            let failures: Vec<(String, u16)> = failures
                .into_iter()
                .map(|(to, status)| (to.to_owned(), status))
                .collect();
            accept(&state, &request, &failures)
        }
        Reply::FailIndex(index, status) => {
            let recipients = request["smsRecipients"].as_array().cloned();
            let failures: Vec<(String, u16)> = recipients
                .filter(|list| !list.is_empty())
                .map(|list| list[index % list.len()]["to"].as_str().map(str::to_owned))
                .into_iter()
                .flatten()
                .map(|to| (to, status))
                .collect();
            accept(&state, &request, &failures)
        }
        Reply::Delay(wait) => {
            tokio::time::sleep(wait).await;
            accept(&state, &request, &[])
        }
        Reply::Malformed => (StatusCode::ACCEPTED, "{\"value\": 3}").into_response(),
        Reply::Status(status, retry_after) => {
            let mut response = failure(status);
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            response
        }
        Reply::StatusMs(status, millis) => {
            let mut response = failure(status);
            response
                .headers_mut()
                .insert("retry-after-ms", millis.into());
            response
        }
        Reply::Reset => reset(),
        Reply::AcceptThenReset => {
            let _ = accept(&state, &request, &[]);
            reset()
        }
    }
}

fn failure(status: u16) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"error": {"code": "MockError", "message": "scripted failure"}})),
    )
        .into_response()
}

/// An answer whose body fails at once: the server drops the connection before a complete
/// answer, as a reset connection looks to the client.
fn reset() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "scripted connection reset",
        ))
    });
    axum::http::Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap()
}

/// A loopback port that accepts connections and closes them at once, reading nothing.
pub async fn closing_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    addr
}

/// A loopback port with nothing listening: connections to it are refused.
pub fn closed_port() -> u16 {
    free_port()
}

fn accept(state: &Arc<Mutex<AcsState>>, request: &Value, failures: &[(String, u16)]) -> Response {
    let mut state = state.lock().unwrap();
    let message = request["message"].as_str().unwrap_or_default().to_owned();
    let recipients = request["smsRecipients"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let value: Vec<Value> = recipients
        .iter()
        .map(|recipient| {
            let to = recipient["to"].as_str().unwrap_or_default().to_owned();
            let id = recipient["repeatabilityRequestId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // Like ACS, a repeat of an accepted id gets the first answer, whatever the script.
            let repeat = state.message_ids.contains_key(&id);
            let failure = failures.iter().find(|(number, _)| *number == to);
            if let (Some((_, status)), false) = (failure, repeat) {
                return json!({"to": to, "httpStatusCode": status, "successful": false,
                              "errorMessage": "Invalid To phone number format."});
            }
            let known = state.message_ids.get(&id).cloned();
            let message_id = match known {
                Some(existing) => {
                    state.texts_repeated += 1;
                    existing
                }
                None => {
                    state.texts_sent += 1;
                    let fresh = format!("Outgoing_mock_{}", uuid::Uuid::new_v4().simple());
                    if !id.is_empty() {
                        state.message_ids.insert(id.clone(), fresh.clone());
                    }
                    state.accepted.push(Accepted {
                        repeatability_id: id,
                        to: to.clone(),
                        message: message.clone(),
                    });
                    fresh
                }
            };
            json!({"to": to, "messageId": message_id, "httpStatusCode": 202,
                   "repeatabilityResult": "accepted", "successful": true})
        })
        .collect();
    (StatusCode::ACCEPTED, axum::Json(json!({ "value": value }))).into_response()
}

#[derive(Default)]
struct IdentityState {
    calls: usize,
    rejected: usize,
    fail_next: usize,
}

/// A loopback managed identity endpoint in the App Service form: it checks the secret
/// header and the API version and hands out a token valid for an hour.
#[derive(Clone)]
pub struct MockIdentity {
    pub addr: SocketAddr,
    state: Arc<Mutex<IdentityState>>,
}

impl MockIdentity {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(IdentityState::default()));
        let router = Router::new()
            .route("/msi/token", get(identity_handler))
            .with_state(state.clone());
        let addr = serve(router).await;
        Self { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/msi/token", self.addr)
    }

    /// Token requests that passed the checks.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// Token requests refused for a wrong header or API version.
    pub fn rejected(&self) -> usize {
        self.state.lock().unwrap().rejected
    }

    /// Makes the next `count` requests answer 500.
    pub fn fail_next(&self, count: usize) {
        self.state.lock().unwrap().fail_next = count;
    }
}

async fn identity_handler(
    State(state): State<Arc<Mutex<IdentityState>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let header_ok = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        == Some(IDENTITY_HEADER);
    let version_ok = query.get("api-version").map(String::as_str) == Some("2019-08-01");
    let resource_ok =
        query.get("resource").map(String::as_str) == Some("https://communication.azure.com/");
    if !(header_ok && version_ok && resource_ok) {
        state.rejected += 1;
        return (
            StatusCode::BAD_REQUEST,
            "wrong header, api-version or resource",
        )
            .into_response();
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "identity endpoint failure",
        )
            .into_response();
    }
    state.calls += 1;
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    axum::Json(json!({
        "access_token": MI_TOKEN,
        "expires_on": expires.to_string(),
        "resource": "https://communication.azure.com/",
        "token_type": "Bearer",
        "client_id": "00000000-0000-0000-0000-0000000000aa"
    }))
    .into_response()
}

/// The directory holding the official ACS documents: `ACS_SPECS_DIR`, else `../shared/specs/acs`.
pub fn specs_dir() -> PathBuf {
    match std::env::var_os("ACS_SPECS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/acs"),
    }
}

/// The directory holding the Functions host fixtures: `FUNCTIONS_FIXTURES_DIR`, else
/// `../shared/fixtures/functions-host`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("FUNCTIONS_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/functions-host"),
    }
}

/// The host's request body of a fixture in `../shared/fixtures/functions-host/`, or `None`
/// (after `skip_or_fail`) when the fixtures are absent.
pub fn fixture_body(name: &str) -> Option<Value> {
    let path = fixtures_dir().join(name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        skip_or_fail(&format!("the Functions host fixture {}", path.display()));
        return None;
    };
    let fixture: Value = serde_json::from_str(&text).expect("fixtures are JSON");
    Some(fixture["request"]["body"].clone())
}

/// Whether a test that needs shared material may skip when it is absent: never under CI.
pub fn skip_or_fail(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing, and CI=true requires it");
    }
    eprintln!(
        "SKIPPED: {what} is missing; set ACS_SPECS_DIR / FUNCTIONS_FIXTURES_DIR or install it"
    );
    true
}

/// A running Prism mock serving one official document with `--errors`.
pub struct Prism {
    pub port: u16,
    child: Child,
}

impl Prism {
    /// Starts Prism on `spec`, or returns `None` (after `skip_or_fail`) when Prism or the
    /// document is missing.
    pub fn start(spec_relative: &str) -> Option<Self> {
        Self::launch(spec_relative, None)
    }

    /// Starts Prism as a validating proxy in front of `upstream` (a loopback mock): requests
    /// and answers are checked against the document, and the mock's answers pass through.
    pub fn proxy(spec_relative: &str, upstream: &str) -> Option<Self> {
        Self::launch(spec_relative, Some(upstream))
    }

    fn launch(spec_relative: &str, upstream: Option<&str>) -> Option<Self> {
        let spec = specs_dir().join(spec_relative);
        if !spec.is_file() {
            skip_or_fail(&format!("the official ACS document {}", spec.display()));
            return None;
        }
        let prism = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/contract/node_modules/.bin/prism");
        if !prism.is_file() {
            skip_or_fail("Prism (run `npm ci --prefix tests/contract`)");
            return None;
        }
        let port = free_port();
        let mut command = Command::new(prism);
        let port_text = port.to_string();
        match upstream {
            None => command
                .args(["mock", "--errors", "-h", "127.0.0.1", "-p", &port_text])
                .arg(&spec),
            Some(upstream) => command
                .args(["proxy", "--errors", "-h", "127.0.0.1", "-p", &port_text])
                .arg(&spec)
                .arg(upstream),
        };
        // A cleared environment: no proxy variable can send Prism anywhere but loopback.
        let child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Prism starts");
        let prism = Self { port, child };
        wait_for_port(port, Duration::from_secs(60));
        Some(prism)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, limit: Duration) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < limit,
            "nothing listened on port {port} in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The real `handler` binary, started as the Functions host starts it: a cleared
/// environment plus the variables given, and a port to listen on.
pub struct Handler {
    pub port: u16,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Handler {
    /// Starts the handler and waits until it says it listens. Another process may take the
    /// free port first; the handler then exits, and a new port is tried.
    pub fn start(vars: &[(&str, String)]) -> Self {
        for _ in 0..5 {
            if let Some(handler) = Self::try_start(vars) {
                return handler;
            }
        }
        panic!("the handler did not start on any of five ports");
    }

    fn try_start(vars: &[(&str, String)]) -> Option<Self> {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the handler starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        let mut handler = Self {
            port,
            child,
            output,
        };
        let started = Instant::now();
        // Our own child's log line, not just an open port, proves it is ours that listens.
        while !handler.output().contains("handler listening on 127.0.0.1") {
            if handler.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the handler did not start:\n{}",
                handler.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(handler)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the handler did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings a test app uses: ACS at `endpoint` with an access key, so no process
/// environment is read and no credential reaches any other address.
pub fn acs_vars(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "ACS_CONNECTION_STRING",
            format!("endpoint={endpoint};accesskey={ACCESS_KEY_B64}"),
        ),
        ("SMS_FROM", SENDER.to_owned()),
    ]
}

/// The strings an invocation answer writes to an output binding (queue messages, records).
pub fn output_strings(answer: &Value, binding: &str) -> Vec<String> {
    answer["Outputs"][binding]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An HTTP client for tests: the handler's own client builder (rustls, no proxy).
pub fn client() -> reqwest::Client {
    acs_sms_handler::acs::http_client().expect("the test client builds")
}

/// A JSON POST through reqwest, returning status, headers and the JSON body.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}
