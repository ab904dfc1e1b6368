//! The ACS Identity API, `api-version=2023-10-01`: create identities, issue and revoke
//! access tokens, delete identities, and exchange a Teams user's Entra token.
//!
//! Wire types mirror the official 2023-10-01 document. Identity ids contain `:` and are
//! percent-encoded in paths. Tokens, in both directions, live in [`SecretString`] and never
//! reach a log line or an error message.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration as TimeDuration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::error::AcsError;
use super::http::AcsHttp;
use super::outbox::Outbox;
use super::retry::RetryPolicy;
use crate::domain::{
    CommunicationUserId, CreateIdentityRequest, SecretString, TeamsTokenExchange, TokenLifetime,
    TokenRequest,
};

/// The Identity API version used for every call.
pub const IDENTITY_API_VERSION: &str = "2023-10-01";
/// Prefix of the identities the local outbox makes up.
pub const LOCAL_IDENTITY_PREFIX: &str = "8:acs:local-outbox_";
/// Prefix of the tokens the local outbox makes up; they are not JWTs.
pub const LOCAL_TOKEN_PREFIX: &str = "local-outbox-token.";
/// Lifetime the local outbox gives an exchanged Teams token. ACS matches the Teams
/// token's own expiry, which the outbox does not read.
const LOCAL_TEAMS_TOKEN_MINUTES: i64 = 60;

/// What a path segment keeps as is: the unreserved characters of RFC 3986. Everything else,
/// `:` included, is percent-encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An ACS access token for a communication user, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunicationAccessToken {
    /// The token; a secret.
    pub token: SecretString,
    /// When ACS stops accepting it, in UTC.
    pub expires_on: OffsetDateTime,
}

/// A new identity and, when scopes were asked for, its first access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIdentity {
    /// The communication user id, exactly as ACS gave it.
    pub id: String,
    pub token: Option<CommunicationAccessToken>,
}

/// `CommunicationIdentityCreateRequest` of the official document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommunicationIdentityCreateRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    create_token_with_scopes: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_minutes: Option<u16>,
}

/// `CommunicationIdentityAccessTokenRequest` of the official document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommunicationIdentityAccessTokenRequest<'a> {
    scopes: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_minutes: Option<u16>,
}

/// `TeamsUserExchangeTokenRequest` of the official document. Holds the Teams token, so it
/// has no `Debug`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamsUserExchangeTokenRequest<'a> {
    token: &'a str,
    app_id: String,
    user_id: String,
}

/// `CommunicationIdentityAccessTokenResult` of the official document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommunicationIdentityAccessTokenResult {
    identity: CommunicationIdentity,
    access_token: Option<CommunicationIdentityAccessToken>,
}

/// `CommunicationIdentity` of the official document.
#[derive(Deserialize)]
struct CommunicationIdentity {
    id: String,
}

/// `CommunicationIdentityAccessToken` of the official document. Holds a token, so it has
/// no `Debug`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommunicationIdentityAccessToken {
    token: String,
    expires_on: String,
}

/// One line of the local outbox. It records what would have been asked, never a token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboxRecord<'a> {
    kind: &'static str,
    operation: &'static str,
    recorded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_minutes: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id_present: Option<bool>,
}

impl<'a> OutboxRecord<'a> {
    fn new(kind: &'static str, operation: &'static str, identity_id: Option<&'a str>) -> Self {
        Self {
            kind,
            operation,
            recorded_at: httpdate::fmt_http_date(std::time::SystemTime::now()),
            identity_id,
            scopes: None,
            expires_in_minutes: None,
            app_id_present: None,
        }
    }

    fn with_token_request(mut self, request: Option<&TokenRequest>) -> Self {
        self.scopes = request.map(|request| request.scopes.names());
        self.expires_in_minutes = request
            .and_then(|request| request.lifetime)
            .map(TokenLifetime::minutes);
        self
    }

    async fn append(&self, outbox: &Outbox) -> Result<(), AcsError> {
        let line = serde_json::to_value(self).expect("an outbox record always serializes");
        outbox.append(&line).await
    }
}

/// Provisions ACS identities and tokens, or makes up clearly synthetic ones in the local
/// outbox.
#[derive(Debug, Clone)]
pub enum IdentityClient {
    Acs(AcsHttp),
    Outbox(Outbox),
}

impl IdentityClient {
    /// Creates an identity, with a first access token when `request` asks for one.
    ///
    /// A token ACS returns without being asked is dropped.
    ///
    /// # Errors
    /// The failed call, or [`AcsError::InvalidResponse`] when the answer breaks the contract.
    pub async fn create_identity(
        &self,
        request: &CreateIdentityRequest,
        policy: &RetryPolicy,
    ) -> Result<CreatedIdentity, AcsError> {
        let http = match self {
            Self::Acs(http) => http,
            Self::Outbox(outbox) => return record_create(outbox, request).await,
        };
        let body = create_request_body(request);
        let path = format!("identities?api-version={IDENTITY_API_VERSION}");
        let response = http
            .send("identity.create", Method::POST, &path, Some(body), policy)
            .await?;
        parse_created(&response.body, request.token.is_some())
    }

    /// Issues a new access token for an existing identity.
    ///
    /// # Errors
    /// [`AcsError::NotFound`] for an unknown identity, the failed call, or
    /// [`AcsError::InvalidResponse`].
    pub async fn issue_token(
        &self,
        id: &CommunicationUserId,
        request: &TokenRequest,
        policy: &RetryPolicy,
    ) -> Result<CommunicationAccessToken, AcsError> {
        let http = match self {
            Self::Acs(http) => http,
            Self::Outbox(outbox) => {
                OutboxRecord::new("identity", "issueAccessToken", Some(id.as_str()))
                    .with_token_request(Some(request))
                    .append(outbox)
                    .await?;
                return Ok(local_token(lifetime_minutes(Some(request))));
            }
        };
        let body = token_request_body(request);
        let path = identity_path(id, Some(":issueAccessToken"));
        let response = http
            .send(
                "identity.issue_token",
                Method::POST,
                &path,
                Some(body),
                policy,
            )
            .await?;
        parse_access_token(&response.body)
    }

    /// Revokes every access token of an identity.
    ///
    /// # Errors
    /// [`AcsError::NotFound`] for an unknown identity, or the failed call.
    pub async fn revoke_tokens(
        &self,
        id: &CommunicationUserId,
        policy: &RetryPolicy,
    ) -> Result<(), AcsError> {
        let http = match self {
            Self::Acs(http) => http,
            Self::Outbox(outbox) => {
                return OutboxRecord::new("identity", "revokeAccessTokens", Some(id.as_str()))
                    .append(outbox)
                    .await;
            }
        };
        let path = identity_path(id, Some(":revokeAccessTokens"));
        http.send("identity.revoke_tokens", Method::POST, &path, None, policy)
            .await?;
        Ok(())
    }

    /// Deletes an identity; ACS also revokes its tokens and deletes its data.
    ///
    /// # Errors
    /// [`AcsError::NotFound`] for an unknown identity, or the failed call.
    pub async fn delete_identity(
        &self,
        id: &CommunicationUserId,
        policy: &RetryPolicy,
    ) -> Result<(), AcsError> {
        let http = match self {
            Self::Acs(http) => http,
            Self::Outbox(outbox) => {
                return OutboxRecord::new("identity", "deleteIdentity", Some(id.as_str()))
                    .append(outbox)
                    .await;
            }
        };
        let path = identity_path(id, None);
        http.send("identity.delete", Method::DELETE, &path, None, policy)
            .await?;
        Ok(())
    }

    /// Exchanges a Teams user's Entra access token for an ACS access token.
    ///
    /// # Errors
    /// The failed call (ACS refuses a token it cannot verify with a 4xx), or
    /// [`AcsError::InvalidResponse`].
    pub async fn exchange_teams_token(
        &self,
        exchange: &TeamsTokenExchange,
        policy: &RetryPolicy,
    ) -> Result<CommunicationAccessToken, AcsError> {
        let http = match self {
            Self::Acs(http) => http,
            Self::Outbox(outbox) => {
                let mut record = OutboxRecord::new("teamsUser", "exchangeAccessToken", None);
                record.app_id_present = Some(true);
                record.append(outbox).await?;
                return Ok(local_token(LOCAL_TEAMS_TOKEN_MINUTES));
            }
        };
        let body = teams_request_body(exchange);
        let path = format!("teamsUser/:exchangeAccessToken?api-version={IDENTITY_API_VERSION}");
        let response = http
            .send(
                "identity.exchange_teams_token",
                Method::POST,
                &path,
                Some(body),
                policy,
            )
            .await?;
        parse_access_token(&response.body)
    }
}

/// `identities/{id}[/{action}]?api-version=...`, with the id percent-encoded.
fn identity_path(id: &CommunicationUserId, action: Option<&str>) -> String {
    let id = percent_encoding::utf8_percent_encode(id.as_str(), PATH_SEGMENT);
    match action {
        Some(action) => format!("identities/{id}/{action}?api-version={IDENTITY_API_VERSION}"),
        None => format!("identities/{id}?api-version={IDENTITY_API_VERSION}"),
    }
}

fn create_request_body(request: &CreateIdentityRequest) -> Vec<u8> {
    let wire = CommunicationIdentityCreateRequest {
        create_token_with_scopes: request.token.as_ref().map(|token| token.scopes.names()),
        expires_in_minutes: request
            .token
            .as_ref()
            .and_then(|token| token.lifetime)
            .map(TokenLifetime::minutes),
    };
    serde_json::to_vec(&wire).expect("a create request always serializes")
}

fn token_request_body(request: &TokenRequest) -> Vec<u8> {
    let wire = CommunicationIdentityAccessTokenRequest {
        scopes: request.scopes.names(),
        expires_in_minutes: request.lifetime.map(TokenLifetime::minutes),
    };
    serde_json::to_vec(&wire).expect("a token request always serializes")
}

fn teams_request_body(exchange: &TeamsTokenExchange) -> Vec<u8> {
    let wire = TeamsUserExchangeTokenRequest {
        token: exchange.token.expose_secret(),
        app_id: exchange.app_id.hyphenated().to_string(),
        user_id: exchange.user_id.hyphenated().to_string(),
    };
    serde_json::to_vec(&wire).expect("a Teams exchange request always serializes")
}

/// Reads ACS's 201 to a create. The messages never quote the body: it may hold a token.
fn parse_created(body: &[u8], token_requested: bool) -> Result<CreatedIdentity, AcsError> {
    let result: CommunicationIdentityAccessTokenResult = serde_json::from_slice(body)
        .map_err(|_| invalid("create answer is not CommunicationIdentityAccessTokenResult"))?;
    if result.identity.id.trim().is_empty() {
        return Err(invalid("create answer has an empty identity id"));
    }
    let token = match (token_requested, result.access_token) {
        (true, Some(token)) => Some(access_token(token)?),
        (true, None) => return Err(invalid("create answer has no access token")),
        (false, _) => None,
    };
    Ok(CreatedIdentity {
        id: result.identity.id,
        token,
    })
}

/// Reads a `CommunicationIdentityAccessToken`, as issue and exchange answer.
fn parse_access_token(body: &[u8]) -> Result<CommunicationAccessToken, AcsError> {
    let wire: CommunicationIdentityAccessToken = serde_json::from_slice(body)
        .map_err(|_| invalid("token answer is not CommunicationIdentityAccessToken"))?;
    access_token(wire)
}

fn access_token(
    wire: CommunicationIdentityAccessToken,
) -> Result<CommunicationAccessToken, AcsError> {
    if wire.token.is_empty() {
        return Err(invalid("access token is empty"));
    }
    let expires_on = OffsetDateTime::parse(&wire.expires_on, &Rfc3339)
        .map_err(|_| invalid("access token expiresOn is not an RFC 3339 date-time"))?
        .to_offset(UtcOffset::UTC);
    Ok(CommunicationAccessToken {
        token: SecretString::new(wire.token),
        expires_on,
    })
}

fn invalid(reason: &str) -> AcsError {
    AcsError::InvalidResponse(reason.to_owned())
}

async fn record_create(
    outbox: &Outbox,
    request: &CreateIdentityRequest,
) -> Result<CreatedIdentity, AcsError> {
    let id = format!("{LOCAL_IDENTITY_PREFIX}{}", Uuid::new_v4());
    OutboxRecord::new("identity", "createIdentity", Some(&id))
        .with_token_request(request.token.as_ref())
        .append(outbox)
        .await?;
    let token = request
        .token
        .as_ref()
        .map(|token| local_token(lifetime_minutes(Some(token))));
    Ok(CreatedIdentity { id, token })
}

fn lifetime_minutes(request: Option<&TokenRequest>) -> i64 {
    let lifetime = request
        .and_then(|request| request.lifetime)
        .unwrap_or(TokenLifetime::DEFAULT);
    i64::from(lifetime.minutes())
}

/// A made-up token: an obvious prefix and a random part, deliberately not shaped like a JWT.
fn local_token(minutes: i64) -> CommunicationAccessToken {
    CommunicationAccessToken {
        token: SecretString::new(format!("{LOCAL_TOKEN_PREFIX}{}", Uuid::new_v4().simple())),
        expires_on: OffsetDateTime::now_utc() + TimeDuration::minutes(minutes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TeamsTokenBody, TokenRequestBody};

    const USER_ID: &str =
        "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
    const ACS_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.acs-token-secret.c2ln";
    const TEAMS_TOKEN: &str = "eyJhbGciOiJub25lIn0.teams-token-secret.c2ln";

    fn token_request(raw: serde_json::Value) -> TokenRequest {
        let body: TokenRequestBody = serde_json::from_value(raw).unwrap();
        TokenRequest::parse(&body).unwrap()
    }

    fn create_request(raw: serde_json::Value) -> CreateIdentityRequest {
        let body: TokenRequestBody = serde_json::from_value(raw).unwrap();
        CreateIdentityRequest::parse(&body).unwrap()
    }

    fn teams_exchange() -> TeamsTokenExchange {
        TeamsTokenExchange::parse(&TeamsTokenBody {
            token: Some(TEAMS_TOKEN.into()),
            app_id: Some("2C3E1E83-8FD7-4615-AD2B-B8C1229845AC".into()),
            user_id: Some("32c0a5db-05ec-78ea-51ab-3f06b329397e".into()),
        })
        .unwrap()
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn identity_ids_are_percent_encoded_in_paths() {
        let id = CommunicationUserId::parse(USER_ID).unwrap();

        let issue = identity_path(&id, Some(":issueAccessToken"));
        let delete = identity_path(&id, None);

        assert_eq!(
            issue,
            "identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081/:issueAccessToken?api-version=2023-10-01"
        );
        assert_eq!(
            delete,
            "identities/8%3Aacs%3A2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081?api-version=2023-10-01"
        );
    }

    #[test]
    fn request_bodies_follow_the_official_shapes() {
        let none = create_request(serde_json::json!({}));
        let some =
            create_request(serde_json::json!({"scopes": ["chat", "voip"], "expiresInMinutes": 60}));
        let issue = token_request(serde_json::json!({"scopes": ["voip.join"]}));

        assert_eq!(json(&create_request_body(&none)), serde_json::json!({}));
        assert_eq!(
            json(&create_request_body(&some)),
            serde_json::json!({"createTokenWithScopes": ["chat", "voip"], "expiresInMinutes": 60})
        );
        assert_eq!(
            json(&token_request_body(&issue)),
            serde_json::json!({"scopes": ["voip.join"]})
        );
        assert_eq!(
            json(&teams_request_body(&teams_exchange())),
            serde_json::json!({
                "token": TEAMS_TOKEN,
                "appId": "2c3e1e83-8fd7-4615-ad2b-b8c1229845ac",
                "userId": "32c0a5db-05ec-78ea-51ab-3f06b329397e"
            })
        );
    }

    #[test]
    fn well_formed_answers_are_read_into_secret_tokens() {
        let body = serde_json::json!({
            "identity": {"id": USER_ID},
            "accessToken": {"token": ACS_TOKEN, "expiresOn": "2023-10-10T21:39:39.3244584+02:00"}
        })
        .to_string();

        let created = parse_created(body.as_bytes(), true).unwrap();
        let without = parse_created(body.as_bytes(), false).unwrap();

        assert_eq!(created.id, USER_ID);
        let token = created.token.unwrap();
        assert_eq!(token.token.expose_secret(), ACS_TOKEN);
        assert_eq!(
            token.expires_on.format(&Rfc3339).unwrap(),
            "2023-10-10T19:39:39.3244584Z"
        );
        assert!(!format!("{token:?}").contains("acs-token-secret"));
        assert_eq!(without.token, None);
    }

    #[test]
    fn malformed_answers_are_invalid_responses_that_quote_no_token() {
        let created_cases = [
            "".to_owned(),
            "not json".to_owned(),
            "[]".to_owned(),
            "{}".to_owned(),
            r#"{"identity":{}}"#.to_owned(),
            r#"{"identity":{"id":""},"accessToken":null}"#.to_owned(),
            format!(r#"{{"identity":{{"id":"{USER_ID}"}}}}"#),
            format!(
                r#"{{"identity":{{"id":"{USER_ID}"}},"accessToken":{{"token":"{ACS_TOKEN}"}}}}"#
            ),
        ];
        let token_cases = [
            "".to_owned(),
            "<html>".to_owned(),
            "{}".to_owned(),
            format!(r#"{{"token":"{ACS_TOKEN}"}}"#),
            r#"{"expiresOn":"2023-10-10T21:39:39Z"}"#.to_owned(),
            r#"{"token":"","expiresOn":"2023-10-10T21:39:39Z"}"#.to_owned(),
            format!(r#"{{"token":"{ACS_TOKEN}","expiresOn":"tomorrow"}}"#),
            format!(r#"{{"token":{{"value":"{ACS_TOKEN}"}},"expiresOn":"2023-10-10T21:39:39Z"}}"#),
        ];

        let mut errors = Vec::new();
        for body in &created_cases {
            errors.push(parse_created(body.as_bytes(), true).unwrap_err());
        }
        for body in &token_cases {
            errors.push(parse_access_token(body.as_bytes()).unwrap_err());
        }

        for error in errors {
            assert!(matches!(error, AcsError::InvalidResponse(_)), "{error:?}");
            assert!(!error.to_string().contains("acs-token-secret"), "{error}");
        }
    }

    #[tokio::test]
    async fn the_local_outbox_makes_up_identities_and_records_no_token() {
        let path = std::env::temp_dir().join(format!("identity-outbox-{}.jsonl", Uuid::new_v4()));
        let client = IdentityClient::Outbox(Outbox::new(path.clone()));
        let policy = RetryPolicy::INTERACTIVE;
        let id = CommunicationUserId::parse(USER_ID).unwrap();

        let created = client
            .create_identity(
                &create_request(serde_json::json!({"scopes": ["chat"], "expiresInMinutes": 90})),
                &policy,
            )
            .await
            .unwrap();
        let issued = client
            .issue_token(
                &id,
                &token_request(serde_json::json!({"scopes": ["voip"]})),
                &policy,
            )
            .await
            .unwrap();
        client.revoke_tokens(&id, &policy).await.unwrap();
        client.delete_identity(&id, &policy).await.unwrap();
        let exchanged = client
            .exchange_teams_token(&teams_exchange(), &policy)
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);

        assert!(created.id.starts_with(LOCAL_IDENTITY_PREFIX));
        assert!(CommunicationUserId::parse(&created.id).is_ok());
        let first = created.token.unwrap();
        for token in [&first, &issued, &exchanged] {
            assert!(token.token.expose_secret().starts_with(LOCAL_TOKEN_PREFIX));
            assert_eq!(token.token.expose_secret().matches('.').count(), 1);
            assert!(text.find(token.token.expose_secret()).is_none());
        }
        assert!(!text.contains(TEAMS_TOKEN) && !text.contains("32c0a5db"));
        let lines: Vec<serde_json::Value> =
            text.lines().map(|line| json(line.as_bytes())).collect();
        let operations: Vec<&str> = lines
            .iter()
            .map(|line| line["operation"].as_str().unwrap())
            .collect();
        assert_eq!(
            operations,
            [
                "createIdentity",
                "issueAccessToken",
                "revokeAccessTokens",
                "deleteIdentity",
                "exchangeAccessToken"
            ]
        );
        assert_eq!(lines[0]["identityId"], created.id.as_str());
        assert_eq!(lines[0]["scopes"], serde_json::json!(["chat"]));
        assert_eq!(lines[0]["expiresInMinutes"], 90);
        assert_eq!(lines[1]["identityId"], USER_ID);
        assert_eq!(lines[4]["appIdPresent"], true);
        let lifetime = first.expires_on - OffsetDateTime::now_utc();
        assert!(lifetime > TimeDuration::minutes(89) && lifetime <= TimeDuration::minutes(90));
    }
}
