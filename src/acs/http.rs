//! The HTTP core shared by the ACS clients: authorize, send, classify the answer, retry.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::auth::AcsAuth;
use super::error::AcsError;
use super::retry::RetryPolicy;

/// A successful (2xx) ACS answer. `Debug` shows the body's size: it lists recipients.
pub struct AcsResponse {
    pub status: StatusCode,
    pub body: bytes::Bytes,
    /// `MS-CV` or `x-ms-client-request-id`, for correlating with ACS support.
    pub correlation_id: Option<String>,
}

impl std::fmt::Debug for AcsResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcsResponse")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

/// Sends requests to one ACS resource with one credential.
#[derive(Clone, Debug)]
pub struct AcsHttp {
    client: reqwest::Client,
    endpoint: Url,
    auth: AcsAuth,
}

impl AcsHttp {
    pub fn new(client: reqwest::Client, endpoint: Url, auth: AcsAuth) -> Self {
        Self {
            client,
            endpoint,
            auth,
        }
    }

    /// Sends `body` to `path_and_query`, retrying transient failures within `policy`.
    ///
    /// The same bytes go out on every attempt, so repeatability ids in the body stay stable.
    ///
    /// # Errors
    /// The last failure, once it is permanent or the budget is spent.
    pub async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        policy: &RetryPolicy,
    ) -> Result<AcsResponse, AcsError> {
        self.send_with(operation, method, path_and_query, body, policy, Ok)
            .await
    }

    /// Like [`AcsHttp::send`], and reads the 2xx body as `T`.
    ///
    /// A 2xx answer whose body is not a `T` is tried again like a 5xx: the outcome of the
    /// request is unknown, and sending the same bytes again is safe because ACS deduplicates
    /// by repeatability id.
    ///
    /// # Errors
    /// The last failure, once it is permanent or the budget is spent;
    /// [`AcsError::MalformedAnswer`] when no attempt gave a readable body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        policy: &RetryPolicy,
    ) -> Result<T, AcsError> {
        let decode = |response: AcsResponse| {
            serde_json::from_slice::<T>(&response.body).map_err(|_| AcsError::MalformedAnswer {
                status: response.status.as_u16(),
            })
        };
        self.send_with(operation, method, path_and_query, body, policy, decode)
            .await
    }

    #[tracing::instrument(name = "acs_request", skip_all, fields(operation, attempt, status))]
    async fn send_with<T>(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        policy: &RetryPolicy,
        decode: impl Fn(AcsResponse) -> Result<T, AcsError>,
    ) -> Result<T, AcsError> {
        let span = tracing::Span::current();
        span.record("operation", operation);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            span.record("attempt", attempt);
            let outcome = tokio::time::timeout(
                policy.attempt_timeout,
                self.attempt(method.clone(), path_and_query, body.as_deref()),
            )
            .await
            .unwrap_or(Err(AcsError::Timeout));
            let outcome = outcome.and_then(|response| {
                span.record("status", response.status.as_u16());
                tracing::debug!(
                    correlation_id = response.correlation_id.as_deref(),
                    "ACS answered"
                );
                decode(response)
            });
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if let Some(status) = error.status() {
                span.record("status", status);
            }
            if !is_retryable(&error) || attempt >= policy.max_attempts {
                return Err(error);
            }
            let wait = error
                .retry_after()
                .unwrap_or_else(|| policy.backoff(attempt));
            if started.elapsed() + wait > policy.budget {
                return Err(error);
            }
            tracing::warn!(operation, attempt, error = %error, wait_ms = wait.as_millis() as u64, "ACS call failed; trying again");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> Result<AcsResponse, AcsError> {
        let url = self
            .endpoint
            .join(path_and_query)
            .map_err(|_| AcsError::InvalidResponse("request path is not a valid URL".into()))?;
        let body = body.unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.authorize(&mut headers, &method, &url, body).await?;

        let mut request = self.client.request(method, url).headers(headers);
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        let response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                AcsError::Timeout
            } else {
                AcsError::Connection(error.without_url())
            }
        })?;

        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let correlation_id = ["ms-cv", "x-ms-client-request-id"]
            .iter()
            .find_map(|name| response.headers().get(*name))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|error| {
            if error.is_timeout() {
                AcsError::Timeout
            } else {
                AcsError::Connection(error.without_url())
            }
        })?;
        if status.is_success() {
            return Ok(AcsResponse {
                status,
                body,
                correlation_id,
            });
        }
        Err(classify(status, retry_after, &body))
    }

    async fn authorize(
        &self,
        headers: &mut HeaderMap,
        method: &Method,
        url: &Url,
        body: &[u8],
    ) -> Result<(), AcsError> {
        let authorization = match &self.auth {
            AcsAuth::Token(cache) => format!("Bearer {}", cache.token().await?.secret()),
            AcsAuth::Key(key) => {
                let host = match url.port() {
                    Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_owned(),
                };
                let path_and_query = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                };
                let signed = key.sign(
                    method.as_str(),
                    &path_and_query,
                    &host,
                    body,
                    SystemTime::now(),
                );
                headers.insert("x-ms-date", header_value(&signed.date)?);
                headers.insert("x-ms-content-sha256", header_value(&signed.content_hash)?);
                signed.authorization
            }
        };
        let mut value = header_value(&authorization)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
        Ok(())
    }
}

fn header_value(raw: &str) -> Result<HeaderValue, AcsError> {
    HeaderValue::from_str(raw).map_err(|_| {
        AcsError::Credential(super::auth::CredentialError {
            kind: "credential",
            reason: "produced a value that cannot be sent in a header".into(),
        })
    })
}

fn is_retryable(error: &AcsError) -> bool {
    matches!(
        error,
        AcsError::Throttled { .. }
            | AcsError::Unavailable { .. }
            | AcsError::Timeout
            | AcsError::Connection(_)
            | AcsError::MalformedAnswer { .. }
    )
}

/// Maps a non-2xx ACS answer to an error, reading its code leniently.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> AcsError {
    let status_code = status.as_u16();
    match status_code {
        401 | 403 => AcsError::Forbidden {
            status: status_code,
        },
        404 => AcsError::NotFound,
        429 => AcsError::Throttled { retry_after },
        408 | 500..=599 => AcsError::Unavailable {
            status: status_code,
            retry_after,
        },
        _ => {
            let (code, message) = parse_error_body(body);
            AcsError::Rejected {
                status: status_code,
                code,
                message,
            }
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorDetail>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

/// Reads `{error: {code, message}}`, then an RFC 7807 `title`, else nothing.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        return (None, None);
    };
    match envelope.error {
        Some(detail) => (detail.code, detail.message),
        None => (None, envelope.title),
    }
}

/// `Retry-After` as seconds or an HTTP date; `retry-after-ms` too, as ACS services send it.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(raw).ok()?;
    Some(date.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_error_callers_act_on() {
        let rejected = br#"{"error":{"code":"BadRequest","message":"Invalid From"}}"#;
        let cases: Vec<(u16, &str)> = vec![
            (400, "Rejected"),
            (401, "Forbidden"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (408, "Unavailable"),
            (409, "Rejected"),
            (429, "Throttled"),
            (500, "Unavailable"),
            (502, "Unavailable"),
            (503, "Unavailable"),
            (504, "Unavailable"),
        ];
        for (status, expected) in cases {
            let error = classify(StatusCode::from_u16(status).unwrap(), None, rejected);
            let name = format!("{error:?}");
            assert!(name.starts_with(expected), "{status}: {name}");
        }
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        assert_eq!(
            parse_error_body(
                br#"{"error":{"code":"Denied","message":"Denied by the resource provider."}}"#
            ),
            (
                Some("Denied".into()),
                Some("Denied by the resource provider.".into())
            )
        );
        assert_eq!(
            parse_error_body(br#"{"title":"One or more validation errors occurred."}"#)
                .1
                .as_deref(),
            Some("One or more validation errors occurred.")
        );
        assert_eq!(parse_error_body(b"<html>oops</html>"), (None, None));
    }

    #[tokio::test]
    async fn a_connection_failure_never_carries_the_request_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
        drop(closed);
        let key = crate::acs::auth::AccessKey::from_base64("c2VjcmV0").unwrap();
        let http = AcsHttp::new(
            crate::acs::http_client().unwrap(),
            endpoint,
            AcsAuth::Key(key),
        );
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::INTERACTIVE
        };

        let error = http
            .send(
                "test",
                Method::DELETE,
                "identities/8%3Aacs%3Asecret-user-id",
                None,
                &policy,
            )
            .await
            .unwrap_err();

        let mut chain = vec![error.to_string()];
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        assert!(matches!(error, AcsError::Connection(_)), "{error:?}");
        assert!(!chain.join(" ").contains("secret-user-id"), "{chain:?}");
    }

    #[test]
    fn retry_after_is_read_as_seconds_milliseconds_or_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));

        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_millis(250))
        );

        let mut dated = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        dated.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = parse_retry_after(&dated).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }
}
