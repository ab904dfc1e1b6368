//! Contract test: the real `handler` binary drives every identity route against Prism
//! serving Microsoft's official Identity document (2023-10-01) with `--errors`, so a
//! request that breaks the official schema fails the call and the test.
//!
//! The handler authenticates with managed identity through a loopback identity endpoint
//! started here; its environment is cleared first so no real Azure variable leaks in. Every
//! server involved listens on 127.0.0.1.
//!
//! Without Prism (`npm ci --prefix tests/contract`) or the specs (`ACS_SPECS_DIR`, default
//! `../shared/specs/acs`) the test prints why and passes, except under `CI=true`, where it
//! fails.

mod support;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::*;

const SPEC: &str =
    "specification/communication/data-plane/Identity/stable/2023-10-01/CommunicationIdentity.json";
const PRISM_START: Duration = Duration::from_secs(60);
const HANDLER_START: Duration = Duration::from_secs(30);

/// Where the prerequisites are, or why they are missing.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let specs = std::env::var_os("ACS_SPECS_DIR")
        .map_or_else(|| root.join("../shared/specs/acs"), PathBuf::from);
    let spec = specs.join(SPEC);
    let prism = root.join("tests/contract/node_modules/.bin/prism");
    if !spec.is_file() {
        return Err(format!(
            "the Identity spec is missing at {}; set ACS_SPECS_DIR",
            spec.display()
        ));
    }
    if !prism.is_file() {
        return Err(format!(
            "Prism is missing at {}; run `npm ci --prefix tests/contract`",
            prism.display()
        ));
    }
    Ok((prism, spec))
}

fn spawn_logged(name: &'static str, mut command: Command) -> ChildGuard {
    let log = temp_file(&format!("contract-identity-{name}"));
    let out = File::create(&log).expect("a log file");
    let err = out.try_clone().expect("a second handle");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|error| panic!("could not start {name}: {error}"));
    ChildGuard { name, child, log }
}

/// Waits until `port` on 127.0.0.1 accepts connections, failing early if the child exits.
fn wait_for_port(child: &mut ChildGuard, port: u16, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.child.try_wait() {
            panic!(
                "{} exited with {status}\n{}",
                child.name,
                child.log_tail(4000)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{} did not listen on port {port} within {limit:?}\n{}",
        child.name,
        child.log_tail(4000)
    );
}

fn path_var() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

fn start_prism(prism: &Path, spec: &Path) -> (ChildGuard, u16) {
    let port = free_port();
    let mut command = Command::new(prism);
    command
        .args([
            "mock",
            "--errors",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .arg(spec)
        .env_clear()
        .env("PATH", path_var());
    let mut child = spawn_logged("prism", command);
    wait_for_port(&mut child, port, PRISM_START);
    (child, port)
}

fn start_handler(prism_port: u16, identity: &MockIdentityEndpoint) -> (ChildGuard, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_handler"));
    command
        .env_clear()
        .env("PATH", path_var())
        .env("ACS_ENDPOINT", format!("http://127.0.0.1:{prism_port}"))
        .env("SMS_FROM", SENDER)
        .env("IDENTITY_ENDPOINT", identity.endpoint())
        .env("IDENTITY_HEADER", IDENTITY_HEADER_VALUE)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("RUST_LOG", "warn,acs_sms_handler=debug,handler=info")
        .env("LOG_FORMAT", "text");
    let mut child = spawn_logged("handler", command);
    wait_for_port(&mut child, port, HANDLER_START);
    (child, port)
}

/// One call to the handler and what it must answer.
struct Expectation {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    body: Option<serde_json::Value>,
    status: StatusCode,
}

fn expectations() -> Vec<Expectation> {
    use reqwest::Method;
    let identity = format!("/api/identities/{USER_ID_ENCODED}");
    let all_scopes = [
        "chat",
        "voip",
        "chat.join",
        "chat.join.limited",
        "voip.join",
    ];
    vec![
        Expectation {
            name: "create without a body",
            method: Method::POST,
            path: "/api/identities".into(),
            body: None,
            status: StatusCode::CREATED,
        },
        Expectation {
            name: "create without scopes",
            method: Method::POST,
            path: "/api/identities".into(),
            body: Some(serde_json::json!({})),
            status: StatusCode::CREATED,
        },
        Expectation {
            name: "create with every scope and a lifetime",
            method: Method::POST,
            path: "/api/identities".into(),
            body: Some(serde_json::json!({ "scopes": all_scopes, "expiresInMinutes": 60 })),
            status: StatusCode::CREATED,
        },
        Expectation {
            name: "issue a token with a lifetime",
            method: Method::POST,
            path: format!("{identity}/token"),
            body: Some(serde_json::json!({ "scopes": ["chat", "voip"], "expiresInMinutes": 1440 })),
            status: StatusCode::OK,
        },
        Expectation {
            name: "issue a token with ACS's default lifetime",
            method: Method::POST,
            path: format!("{identity}/token"),
            body: Some(serde_json::json!({ "scopes": ["chat.join.limited"] })),
            status: StatusCode::OK,
        },
        Expectation {
            name: "revoke tokens",
            method: Method::POST,
            path: format!("{identity}/revoke"),
            body: None,
            status: StatusCode::NO_CONTENT,
        },
        Expectation {
            name: "delete the identity",
            method: Method::DELETE,
            path: identity.clone(),
            body: None,
            status: StatusCode::NO_CONTENT,
        },
        Expectation {
            name: "exchange a Teams token",
            method: Method::POST,
            path: "/api/teams/token".into(),
            body: Some(teams_body()),
            status: StatusCode::OK,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_identity_route_satisfies_the_official_identity_contract() {
    let (prism_bin, spec) = match prerequisites() {
        Ok(found) => found,
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("contract test cannot run under CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!(
                "SKIPPED every_identity_route_satisfies_the_official_identity_contract: {reason}"
            );
            return;
        }
    };
    let identity = MockIdentityEndpoint::start().await;
    let (prism, prism_port) = tokio::task::block_in_place(|| start_prism(&prism_bin, &spec));
    let (handler, port) = tokio::task::block_in_place(|| start_handler(prism_port, &identity));
    let client = acs_sms_handler::acs::http_client().expect("an HTTP client");

    let mut outcomes = Vec::new();
    for expected in expectations() {
        let url = format!("http://127.0.0.1:{port}{}", expected.path);
        let mut request = client.request(expected.method.clone(), url);
        if let Some(body) = &expected.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the handler answers");
        let status = response.status();
        let cache_control = response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        outcomes.push((expected, status, cache_control, text));
    }
    let handler_log = std::fs::read_to_string(&handler.log).unwrap_or_default();

    let context = format!("{}\n{}", handler.log_tail(6000), prism.log_tail(6000));
    for (expected, status, cache_control, text) in &outcomes {
        assert_eq!(
            *status, expected.status,
            "{}: answered {text}\n{context}",
            expected.name
        );
        if *status == StatusCode::CREATED || *status == StatusCode::OK {
            let body: serde_json::Value = serde_json::from_str(text).expect("a JSON answer");
            let token = if *status == StatusCode::CREATED {
                assert!(
                    body["id"].as_str().is_some_and(|id| !id.is_empty()),
                    "{text}"
                );
                &body["token"]
            } else {
                &body
            };
            let wants_token = *status == StatusCode::OK
                || expected
                    .body
                    .as_ref()
                    .is_some_and(|body| body.get("scopes").is_some());
            if wants_token {
                assert!(
                    token["token"].as_str().is_some_and(|t| !t.is_empty()),
                    "{text}"
                );
                assert!(token["expiresOn"].as_str().is_some(), "{text}");
            } else {
                assert!(token.is_null(), "{}: {text}", expected.name);
            }
            assert_eq!(
                cache_control.as_deref(),
                Some("no-store"),
                "{}",
                expected.name
            );
        }
    }
    assert!(
        identity.served() >= 1,
        "the handler never asked the identity endpoint"
    );
    assert_eq!(
        identity.refused(),
        0,
        "the identity endpoint refused a token request"
    );
    assert!(
        !handler_log.contains(TEAMS_TOKEN),
        "the Teams token reached the handler's log"
    );
    drop(handler);
    drop(prism);
}
