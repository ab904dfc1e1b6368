//! Identity routes (functions `CreateIdentity`, `IssueToken`, `RevokeTokens`,
//! `DeleteIdentity` and `ExchangeTeamsToken`, all forwarded): provision ACS communication
//! users and their access tokens.
//!
//! Every answer that carries a token is marked `Cache-Control: no-store`. Tokens, Teams
//! tokens and identity ids never reach a log line.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::acs::identity::CommunicationAccessToken;
use crate::domain::{
    CommunicationUserId, CreateIdentityRequest, FieldErrors, TeamsTokenBody, TeamsTokenExchange,
    TokenRequest, TokenRequestBody,
};
use crate::error::ApiError;
use crate::startup::AppState;

/// Largest body the identity routes accept. A Teams user's Entra token takes a few KiB.
pub const IDENTITY_BODY_LIMIT: usize = 16 * 1024;

/// The answer of `POST /api/identities`.
#[derive(Debug, Serialize)]
pub struct CreateIdentityResponse<'a> {
    /// The communication user id.
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<AccessTokenResponse<'a>>,
}

/// An access token as callers read it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenResponse<'a> {
    pub token: &'a str,
    /// RFC 3339, UTC.
    pub expires_on: String,
}

impl std::fmt::Debug for AccessTokenResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// Creates a communication user; with `scopes`, also its first access token.
///
/// The body is optional: none, `{}` or `{"scopes": []}` create the identity alone.
pub async fn create_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw: TokenRequestBody =
        super::read_optional_json(&headers, body, IDENTITY_BODY_LIMIT).await?;
    let request = CreateIdentityRequest::parse(&raw).map_err(ApiError::Validation)?;

    let created = state
        .identity_client
        .create_identity(&request, &state.retry.interactive)
        .await?;
    let scopes = request
        .token
        .as_ref()
        .map(|token| token.scopes.names().join(","));
    tracing::info!(
        with_token = created.token.is_some(),
        scopes,
        "identity created"
    );

    let token = created.token.as_ref().map(token_response).transpose()?;
    let body = CreateIdentityResponse {
        id: &created.id,
        token,
    };
    Ok(no_store(StatusCode::CREATED, &body))
}

/// Issues an access token for an existing communication user.
pub async fn issue_token(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (raw, _) =
        super::read_json::<TokenRequestBody>(&headers, body, IDENTITY_BODY_LIMIT).await?;
    let mut errors = FieldErrors::default();
    let id = parse_user_id(id, &mut errors);
    let request = TokenRequest::parse(&raw)
        .map_err(|broken| merge(&mut errors, broken))
        .ok();
    let (Some(id), Some(request)) = (id, request) else {
        return Err(ApiError::Validation(errors));
    };

    let token = state
        .identity_client
        .issue_token(&id, &request, &state.retry.interactive)
        .await?;
    let scopes = request.scopes.names().join(",");
    tracing::info!(scopes, "access token issued");

    Ok(no_store(StatusCode::OK, &token_response(&token)?))
}

/// Revokes every access token of a communication user. Any request body is ignored.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = required_user_id(id)?;

    state
        .identity_client
        .revoke_tokens(&id, &state.retry.interactive)
        .await?;
    tracing::info!("access tokens revoked");

    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a communication user, its tokens and its data. Any request body is ignored.
pub async fn delete_identity(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = required_user_id(id)?;

    state
        .identity_client
        .delete_identity(&id, &state.retry.interactive)
        .await?;
    tracing::info!("identity deleted");

    Ok(StatusCode::NO_CONTENT)
}

/// Exchanges a Teams user's Entra access token for an ACS access token.
pub async fn exchange_teams_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (raw, _) = super::read_json::<TeamsTokenBody>(&headers, body, IDENTITY_BODY_LIMIT).await?;
    let exchange = TeamsTokenExchange::parse(&raw).map_err(ApiError::Validation)?;

    let token = state
        .identity_client
        .exchange_teams_token(&exchange, &state.retry.interactive)
        .await?;
    tracing::info!("Teams token exchanged");

    Ok(no_store(StatusCode::OK, &token_response(&token)?))
}

/// Reads the `{id}` path segment, which axum has percent-decoded.
fn parse_user_id(
    raw: Result<Path<String>, PathRejection>,
    errors: &mut FieldErrors,
) -> Option<CommunicationUserId> {
    let parsed = match raw {
        Ok(Path(raw)) => CommunicationUserId::parse(&raw),
        Err(_) => Err("must be valid UTF-8 once percent-decoded"),
    };
    parsed.map_err(|rule| errors.push("id", rule)).ok()
}

fn required_user_id(
    raw: Result<Path<String>, PathRejection>,
) -> Result<CommunicationUserId, ApiError> {
    let mut errors = FieldErrors::default();
    parse_user_id(raw, &mut errors).ok_or(ApiError::Validation(errors))
}

fn merge(errors: &mut FieldErrors, more: FieldErrors) {
    for error in more.into_vec() {
        errors.push(error.field, error.message);
    }
}

fn token_response(token: &CommunicationAccessToken) -> Result<AccessTokenResponse<'_>, ApiError> {
    let expires_on = token
        .expires_on
        .format(&Rfc3339)
        .map_err(|_| ApiError::Internal("a token expiry cannot be written as RFC 3339".into()))?;
    Ok(AccessTokenResponse {
        token: token.token.expose_secret(),
        expires_on,
    })
}

/// A JSON answer that no cache may keep: it holds a token.
fn no_store(status: StatusCode, body: &impl Serialize) -> Response {
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (status, headers, Json(body)).into_response()
}
