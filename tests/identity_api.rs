//! The identity routes through the router `startup.rs` builds, against an in-process mock
//! ACS on 127.0.0.1: request shapes, percent-encoding, error mapping, validation before any
//! ACS call, and the local outbox. The log scan lives in `identity_logs.rs`.

mod support;

use std::time::{Duration, SystemTime};

use acs_sms_handler::acs::auth::AccessKey;
use axum::http::{Method, StatusCode};
use support::*;

const TOKEN_ROUTE: &str = "/api/identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081/token";
const REVOKE_ROUTE: &str = "/api/identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081/revoke";
const DELETE_ROUTE: &str = "/api/identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";

/// One route called with a valid request.
#[derive(Clone)]
struct RouteCall {
    name: &'static str,
    method: &'static str,
    uri: &'static str,
    body: Option<serde_json::Value>,
    /// Whether ACS answers this operation with a JSON body.
    acs_answers_json: bool,
}

fn every_route() -> Vec<RouteCall> {
    vec![
        RouteCall {
            name: "create",
            method: "POST",
            uri: "/api/identities",
            body: Some(serde_json::json!({ "scopes": ["chat"] })),
            acs_answers_json: true,
        },
        RouteCall {
            name: "issue",
            method: "POST",
            uri: TOKEN_ROUTE,
            body: Some(serde_json::json!({ "scopes": ["voip"] })),
            acs_answers_json: true,
        },
        RouteCall {
            name: "revoke",
            method: "POST",
            uri: REVOKE_ROUTE,
            body: None,
            acs_answers_json: false,
        },
        RouteCall {
            name: "delete",
            method: "DELETE",
            uri: DELETE_ROUTE,
            body: None,
            acs_answers_json: false,
        },
        RouteCall {
            name: "teams",
            method: "POST",
            uri: "/api/teams/token",
            body: Some(teams_body()),
            acs_answers_json: true,
        },
    ]
}

async fn send(router: &axum::Router, route: &RouteCall) -> Answer {
    match &route.body {
        Some(body) => call_json(router, route.method, route.uri, body).await,
        None => call(router, route.method, route.uri, None, "").await,
    }
}

fn assert_no_store(answer: &Answer) {
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
}

#[tokio::test]
async fn create_identity_with_scopes_returns_201_with_an_uncached_token() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);

    let body = serde_json::json!({ "scopes": ["chat", "voip"], "expiresInMinutes": 60 });
    let answer = call_json(&router, "POST", "/api/identities", &body).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        serde_json::json!({
            "id": USER_ID,
            "token": { "token": ACS_TOKEN, "expiresOn": EXPIRES_ON_UTC }
        })
    );
    assert_no_store(&answer);
    let requests = acs.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, Method::POST);
    assert_eq!(
        requests[0].path_and_query,
        "/identities?api-version=2023-10-01"
    );
    assert_eq!(
        requests[0].json(),
        serde_json::json!({ "createTokenWithScopes": ["chat", "voip"], "expiresInMinutes": 60 })
    );
}

#[tokio::test]
async fn create_identity_without_scopes_returns_no_token_even_if_acs_sends_one() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);

    let empty = call(&router, "POST", "/api/identities", None, "").await;
    let no_scopes = call_json(&router, "POST", "/api/identities", &serde_json::json!({})).await;
    let empty_scopes = call_json(
        &router,
        "POST",
        "/api/identities",
        &serde_json::json!({ "scopes": [] }),
    )
    .await;

    for answer in [empty, no_scopes, empty_scopes] {
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        assert_eq!(answer.body, serde_json::json!({ "id": USER_ID }));
    }
    let requests = acs.requests();
    assert_eq!(requests.len(), 3);
    for request in requests {
        assert_eq!(request.json(), serde_json::json!({}));
    }
}

#[tokio::test]
async fn identity_ids_are_percent_encoded_in_every_acs_path() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);
    let raw_colons = format!("/api/identities/{USER_ID}/token");
    let scopes =
        serde_json::json!({ "scopes": ["chat.join", "voip.join"], "expiresInMinutes": 1440 });

    let encoded = call_json(&router, "POST", TOKEN_ROUTE, &scopes).await;
    let plain = call_json(&router, "POST", &raw_colons, &scopes).await;
    let revoked = call(&router, "POST", REVOKE_ROUTE, None, "").await;
    let deleted = call(&router, "DELETE", DELETE_ROUTE, None, "").await;

    for answer in [&encoded, &plain] {
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(
            answer.body,
            serde_json::json!({ "token": ACS_TOKEN, "expiresOn": EXPIRES_ON_UTC })
        );
        assert_no_store(answer);
    }
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let seen: Vec<(Method, String)> = acs
        .requests()
        .into_iter()
        .map(|request| (request.method, request.path_and_query))
        .collect();
    let issue = format!("/identities/{USER_ID_ENCODED}/:issueAccessToken?api-version=2023-10-01");
    assert_eq!(
        seen,
        [
            (Method::POST, issue.clone()),
            (Method::POST, issue),
            (
                Method::POST,
                format!("/identities/{USER_ID_ENCODED}/:revokeAccessTokens?api-version=2023-10-01")
            ),
            (
                Method::DELETE,
                format!("/identities/{USER_ID_ENCODED}?api-version=2023-10-01")
            ),
        ]
    );
    assert_eq!(
        acs.requests()[0].json(),
        serde_json::json!({ "scopes": ["chat.join", "voip.join"], "expiresInMinutes": 1440 })
    );
}

#[tokio::test]
async fn requests_are_signed_over_the_encoded_path_as_sent() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);

    let answer = call_json(
        &router,
        "POST",
        TOKEN_ROUTE,
        &serde_json::json!({ "scopes": ["chat"] }),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    let request = &acs.requests()[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let date = httpdate::parse_http_date(&header("x-ms-date")).unwrap();
    let key = AccessKey::from_base64(DUMMY_ACCESS_KEY).unwrap();
    let expected = key.sign(
        "POST",
        &request.path_and_query,
        &header("host"),
        &request.body,
        date,
    );
    assert!(request.path_and_query.contains(USER_ID_ENCODED));
    assert_eq!(header("x-ms-content-sha256"), expected.content_hash);
    assert_eq!(header("authorization"), expected.authorization);
}

#[tokio::test]
async fn revoke_and_delete_ignore_any_request_body() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);

    let revoked = call(&router, "POST", REVOKE_ROUTE, Some("text/plain"), "ignored").await;
    let deleted = call(
        &router,
        "DELETE",
        DELETE_ROUTE,
        Some("application/json"),
        "{\"x\":1}",
    )
    .await;

    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(acs.requests().iter().all(|request| request.body.is_empty()));
}

#[tokio::test]
async fn teams_token_exchange_sends_the_official_shape_and_returns_an_uncached_token() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);
    let mut body = teams_body();
    body["appId"] = APP_ID.to_ascii_uppercase().into();

    let answer = call_json(&router, "POST", "/api/teams/token", &body).await;

    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        serde_json::json!({ "token": ACS_TOKEN, "expiresOn": EXPIRES_ON_UTC })
    );
    assert_no_store(&answer);
    let request = &acs.requests()[0];
    assert_eq!(
        request.path_and_query,
        "/teamsUser/:exchangeAccessToken?api-version=2023-10-01"
    );
    assert_eq!(request.json(), teams_body());
}

#[tokio::test]
async fn acs_error_statuses_map_to_the_documented_problems_on_every_route() {
    // (ACS answer, our status, our code, Retry-After, ACS requests made)
    let denied = r#"{"error":{"code":"Denied","message":"Denied by the resource provider."}}"#;
    let cases: Vec<(Scripted, u16, &str, Option<&str>, usize)> = vec![
        (
            Scripted::status(404).body(r#"{"error":{"code":"IdentityNotFound","message":"x"}}"#),
            404,
            "not_found",
            None,
            1,
        ),
        (
            Scripted::status(401).body(r#"{"error":{"code":"Unauthorized","message":""}}"#),
            502,
            "acs_forbidden",
            None,
            1,
        ),
        (
            Scripted::status(403).body(denied),
            502,
            "acs_forbidden",
            None,
            1,
        ),
        // A wait longer than the retry budget ends the call at once and is passed on.
        (
            Scripted::status(429).header("retry-after", "30"),
            429,
            "acs_throttled",
            Some("30"),
            1,
        ),
        // Retried with the short wait ACS names, then given up.
        (
            Scripted::status(500).header("retry-after-ms", "5"),
            503,
            "acs_unavailable",
            Some("1"),
            4,
        ),
        (
            Scripted::status(400).body(r#"{"error":{"code":"InvalidRequest","message":"bad"}}"#),
            502,
            "acs_rejected",
            None,
            1,
        ),
    ];

    for route in every_route() {
        for (scripted, status, code, retry_after, attempts) in &cases {
            let acs = MockAcs::start().await;
            acs.always(scripted.clone());
            let router = acs_router(&acs);

            let answer = send(&router, &route).await;

            let case = format!("{} with ACS {}", route.name, scripted.status);
            assert_eq!(answer.status.as_u16(), *status, "{case}: {:?}", answer.body);
            assert_eq!(answer.code(), *code, "{case}");
            assert_eq!(answer.header("retry-after"), *retry_after, "{case}");
            assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json"),
                "{case}"
            );
            assert_eq!(acs.requests().len(), *attempts, "{case}");
        }
    }
}

#[tokio::test]
async fn a_throttled_call_is_retried_after_the_wait_acs_names() {
    let acs = MockAcs::start().await;
    acs.then(Scripted::status(429).header("retry-after-ms", "20"));
    let router = acs_router(&acs);
    let started = std::time::Instant::now();

    let answer = call_json(
        &router,
        "POST",
        TOKEN_ROUTE,
        &serde_json::json!({ "scopes": ["chat"] }),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(acs.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[tokio::test]
async fn malformed_acs_answers_become_502_acs_rejected() {
    let token_bodies = [
        "not json".to_owned(),
        "{}".to_owned(),
        format!(r#"{{"token":"{ACS_TOKEN}"}}"#),
        r#"{"token":"","expiresOn":"2030-01-01T00:00:00Z"}"#.to_owned(),
        format!(r#"{{"token":"{ACS_TOKEN}","expiresOn":"next week"}}"#),
        format!(r#"{{"token":["{ACS_TOKEN}"],"expiresOn":"2030-01-01T00:00:00Z"}}"#),
    ];
    let created_bodies = [
        "".to_owned(),
        r#"{"identity":{}}"#.to_owned(),
        r#"{"identity":{"id":""},"accessToken":{"token":"t","expiresOn":"2030-01-01T00:00:00Z"}}"#
            .to_owned(),
        format!(r#"{{"identity":{{"id":"{USER_ID}"}}}}"#),
    ];
    let mut cases: Vec<(RouteCall, Scripted)> = Vec::new();
    for route in every_route() {
        let (status, bodies) = match route.name {
            "create" => (201, &created_bodies[..]),
            _ if route.acs_answers_json => (200, &token_bodies[..]),
            _ => continue,
        };
        for body in bodies {
            cases.push((route.clone(), Scripted::status(status).body(body.clone())));
        }
    }

    for (route, scripted) in cases {
        let acs = MockAcs::start().await;
        acs.always(scripted.clone());
        let router = acs_router(&acs);

        let answer = send(&router, &route).await;

        let case = format!("{} answered {:?}", route.name, scripted.body);
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{case}");
        assert_eq!(answer.code(), "acs_rejected", "{case}");
        assert!(!answer.body.to_string().contains(ACS_TOKEN), "{case}");
        assert_eq!(acs.requests().len(), 1, "{case}");
    }
}

/// A request the routes must refuse without calling ACS.
struct BadInput {
    method: &'static str,
    uri: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
    fields: Vec<&'static str>,
}

const JSON: Option<&str> = Some("application/json");

/// A JSON request whose `fields` break validation rules.
fn invalid(method: &'static str, uri: &str, body: &str, fields: &[&'static str]) -> BadInput {
    BadInput {
        method,
        uri: uri.to_owned(),
        content_type: JSON,
        body: body.to_owned(),
        status: 400,
        code: "validation_failed",
        fields: fields.to_vec(),
    }
}

/// A request refused as a whole with `status` and `code`.
fn refused(
    method: &'static str,
    uri: &str,
    content_type: Option<&'static str>,
    body: &str,
    (status, code): (u16, &'static str),
) -> BadInput {
    BadInput {
        method,
        uri: uri.to_owned(),
        content_type,
        body: body.to_owned(),
        status,
        code,
        fields: Vec::new(),
    }
}

const INVALID_JSON: (u16, &str) = (400, "invalid_json");
const UNSUPPORTED: (u16, &str) = (415, "unsupported_media_type");
const TOO_LARGE: (u16, &str) = (413, "payload_too_large");
const NOT_ALLOWED: (u16, &str) = (405, "method_not_allowed");

fn bad_create_requests() -> Vec<BadInput> {
    let uri = "/api/identities";
    let big = format!(r#"{{"scopes":["chat"],"pad":"{}"}}"#, "x".repeat(17 * 1024));
    vec![
        invalid("POST", uri, r#"{"scopes":["admin"]}"#, &["scopes[0]"]),
        invalid("POST", uri, r#"{"scopes":["chat","chat"]}"#, &["scopes[1]"]),
        invalid(
            "POST",
            uri,
            r#"{"expiresInMinutes":60}"#,
            &["expiresInMinutes"],
        ),
        invalid(
            "POST",
            uri,
            r#"{"scopes":["chat"],"expiresInMinutes":59}"#,
            &["expiresInMinutes"],
        ),
        invalid(
            "POST",
            uri,
            r#"{"scopes":["chat"],"expiresInMinutes":1441}"#,
            &["expiresInMinutes"],
        ),
        invalid(
            "POST",
            uri,
            r#"{"scopes":["chat"],"expiresInMinutes":60.5}"#,
            &["expiresInMinutes"],
        ),
        refused(
            "POST",
            uri,
            JSON,
            r#"{"createTokenWithScopes":["chat"]}"#,
            INVALID_JSON,
        ),
        refused("POST", uri, JSON, r#"{"scopes":"chat"}"#, INVALID_JSON),
        refused("POST", uri, JSON, "[]", INVALID_JSON),
        refused("POST", uri, JSON, "{", INVALID_JSON),
        refused(
            "POST",
            uri,
            Some("text/plain"),
            r#"{"scopes":["chat"]}"#,
            UNSUPPORTED,
        ),
        refused("POST", uri, JSON, &big, TOO_LARGE),
    ]
}

fn bad_token_requests() -> Vec<BadInput> {
    let chat = r#"{"scopes":["chat"]}"#;
    let big = format!(r#"{{"scopes":["chat"],"pad":"{}"}}"#, "x".repeat(17 * 1024));
    let long_id = format!("/api/identities/8%3Aacs%3Ar_{}/token", "a".repeat(300));
    let two_rules = r#"{"scopes":["chat","Voip"],"expiresInMinutes":0}"#;
    vec![
        invalid("POST", TOKEN_ROUTE, "{}", &["scopes"]),
        invalid("POST", TOKEN_ROUTE, r#"{"scopes":[]}"#, &["scopes"]),
        invalid(
            "POST",
            TOKEN_ROUTE,
            two_rules,
            &["scopes[1]", "expiresInMinutes"],
        ),
        refused(
            "POST",
            TOKEN_ROUTE,
            JSON,
            r#"{"scopes":["chat"],"x":1}"#,
            INVALID_JSON,
        ),
        refused("POST", TOKEN_ROUTE, JSON, "", INVALID_JSON),
        refused("POST", TOKEN_ROUTE, None, chat, UNSUPPORTED),
        refused("POST", TOKEN_ROUTE, JSON, &big, TOO_LARGE),
        refused("GET", TOKEN_ROUTE, None, "", NOT_ALLOWED),
        invalid("POST", "/api/identities/not-an-id/token", chat, &["id"]),
        invalid(
            "POST",
            "/api/identities/8%3Aorgid%3A2dee53b4/token",
            chat,
            &["id"],
        ),
        invalid(
            "POST",
            "/api/identities/8%3Aacs%3Ar_s%2F..%2Fx/token",
            chat,
            &["id"],
        ),
        invalid(
            "POST",
            "/api/identities/8%3Aacs%3Ar_%FF/token",
            chat,
            &["id"],
        ),
        invalid("POST", &long_id, chat, &["id"]),
        invalid("POST", "/api/identities/bad/token", "{}", &["id", "scopes"]),
    ]
}

fn bad_revoke_and_delete_requests() -> Vec<BadInput> {
    let id_rule = |method, uri: &str| BadInput {
        content_type: None,
        ..invalid(method, uri, "", &["id"])
    };
    vec![
        id_rule("POST", "/api/identities/8%3Aacs%3A_x/revoke"),
        id_rule("POST", "/api/identities/8:acs:resource/revoke"),
        id_rule("DELETE", "/api/identities/8%3Aacs%3Ar%20_x"),
        id_rule("DELETE", "/api/identities/4%3A%2B14255550123"),
        refused("POST", DELETE_ROUTE, JSON, "{}", NOT_ALLOWED),
    ]
}

fn bad_teams_requests() -> Vec<BadInput> {
    let uri = "/api/teams/token";
    let with = |token: &str, app: &str, user: &str| {
        serde_json::json!({ "token": token, "appId": app, "userId": user }).to_string()
    };
    let mut extra = teams_body();
    extra["tenantId"] = "x".into();
    let big = with(&format!("a.b.{}", "c".repeat(17 * 1024)), APP_ID, OBJECT_ID);
    let braced = format!("{{{OBJECT_ID}}}");
    let form = Some("application/x-www-form-urlencoded");
    vec![
        invalid("POST", uri, "{}", &["token", "appId", "userId"]),
        invalid("POST", uri, &with("opaque", APP_ID, OBJECT_ID), &["token"]),
        invalid(
            "POST",
            uri,
            &with(TEAMS_TOKEN, "app", OBJECT_ID),
            &["appId"],
        ),
        invalid(
            "POST",
            uri,
            &with(TEAMS_TOKEN, APP_ID, &braced),
            &["userId"],
        ),
        refused("POST", uri, JSON, &extra.to_string(), INVALID_JSON),
        refused("POST", uri, JSON, "", INVALID_JSON),
        refused("POST", uri, form, "token=a.b.c", UNSUPPORTED),
        refused("POST", uri, JSON, &big, TOO_LARGE),
    ]
}

#[tokio::test]
async fn bad_input_is_refused_before_any_acs_call() {
    let acs = MockAcs::start().await;
    let router = acs_router(&acs);
    let cases = [
        bad_create_requests(),
        bad_token_requests(),
        bad_revoke_and_delete_requests(),
        bad_teams_requests(),
    ];

    for case in cases.into_iter().flatten() {
        let answer = call(
            &router,
            case.method,
            &case.uri,
            case.content_type,
            case.body.clone(),
        )
        .await;

        let name = format!("{} {} {:.80}", case.method, case.uri, case.body);
        assert_eq!(
            answer.status.as_u16(),
            case.status,
            "{name}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), case.code, "{name}");
        assert_eq!(answer.fields(), case.fields, "{name}");
        let text = answer.body.to_string();
        assert!(
            !text.contains(TEAMS_TOKEN) && !text.contains("admin"),
            "{name}: {text}"
        );
        assert!(acs.requests().is_empty(), "{name} reached ACS");
    }
}

#[tokio::test]
async fn the_local_outbox_answers_with_synthetic_identities_and_records_no_token() {
    let outbox = temp_file("identity-routes-outbox");
    let router = outbox_router(&outbox);

    let created = call_json(
        &router,
        "POST",
        "/api/identities",
        &serde_json::json!({ "scopes": ["chat", "voip"], "expiresInMinutes": 120 }),
    )
    .await;
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    let encoded = id.replace(':', "%3A");
    let issued = call_json(
        &router,
        "POST",
        &format!("/api/identities/{encoded}/token"),
        &serde_json::json!({ "scopes": ["chat"] }),
    )
    .await;
    let revoked = call(
        &router,
        "POST",
        &format!("/api/identities/{encoded}/revoke"),
        None,
        "",
    )
    .await;
    let deleted = call(
        &router,
        "DELETE",
        &format!("/api/identities/{encoded}"),
        None,
        "",
    )
    .await;
    let exchanged = call_json(&router, "POST", "/api/teams/token", &teams_body()).await;
    let bare = call(&router, "POST", "/api/identities", None, "").await;
    let text = std::fs::read_to_string(&outbox).unwrap_or_default();
    let _ = std::fs::remove_file(&outbox);

    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert!(id.starts_with("8:acs:local-outbox_"), "{id}");
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(exchanged.status, StatusCode::OK);
    assert_eq!(bare.status, StatusCode::CREATED);
    assert!(bare.body.get("token").is_none());
    let tokens = [
        created.body["token"]["token"].as_str().unwrap_or_default(),
        issued.body["token"].as_str().unwrap_or_default(),
        exchanged.body["token"].as_str().unwrap_or_default(),
    ];
    for (token, answer) in tokens.iter().zip([&created, &issued, &exchanged]) {
        assert!(token.starts_with("local-outbox-token."), "{token}");
        assert!(!text.contains(token), "a token reached the outbox");
        assert_no_store(answer);
    }
    let expires_on = created.body["token"]["expiresOn"]
        .as_str()
        .unwrap_or_default();
    let expires_on = system_time_from_rfc3339(expires_on);
    let lifetime = expires_on
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(lifetime > Duration::from_secs(119 * 60) && lifetime <= Duration::from_secs(120 * 60));
    assert!(!text.contains(TEAMS_TOKEN) && !text.contains(OBJECT_ID) && !text.contains(APP_ID));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let operations: Vec<&str> = lines
        .iter()
        .map(|line| line["operation"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        operations,
        [
            "createIdentity",
            "issueAccessToken",
            "revokeAccessTokens",
            "deleteIdentity",
            "exchangeAccessToken",
            "createIdentity"
        ]
    );
    assert_eq!(lines[0]["identityId"], id.as_str());
    assert_eq!(lines[0]["scopes"], serde_json::json!(["chat", "voip"]));
    assert_eq!(lines[0]["expiresInMinutes"], 120);
    assert_eq!(lines[3]["identityId"], id.as_str());
    assert_eq!(lines[4]["appIdPresent"], true);
    assert!(lines[5].get("scopes").is_none());
}

/// Reads the RFC 3339 UTC time the handler writes, as a `SystemTime`.
fn system_time_from_rfc3339(raw: &str) -> SystemTime {
    let parsed = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| panic!("not RFC 3339: {raw}"));
    assert_eq!(parsed.offset(), time::UtcOffset::UTC);
    let seconds = u64::try_from(parsed.unix_timestamp()).expect("a time after 1970");
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}
