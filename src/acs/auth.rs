//! Credentials for ACS: Entra tokens (managed identity or developer login) cached and
//! refreshed ahead of expiry, or HMAC-SHA256 request signing with an access key.
//!
//! One credential serves the whole process. Nothing here logs a token, a key or the identity
//! header; errors carry the credential's kind and cause, not its secrets.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

/// The Entra scope the official ACS SDKs request (the resource id ends in a slash).
pub const ACS_TOKEN_SCOPE: &str = "https://communication.azure.com//.default";

/// Refresh this long before a token expires, a little inside `azure_identity`'s own window
/// so that its cache hands out a fresh token when we ask.
const REFRESH_AHEAD: Duration = Duration::from_secs(240);
/// A token this close to expiry is not handed out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Attempts to get a token when none is usable.
const FETCH_ATTEMPTS: u32 = 3;
/// Time allowed for one token request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// After this many failed token requests in a row the credential is built again.
const REBUILD_AFTER_FAILURES: u32 = 3;

/// No token could be obtained.
#[derive(Debug, thiserror::Error)]
#[error("{kind} could not provide a token: {reason}")]
pub struct CredentialError {
    pub kind: &'static str,
    pub reason: String,
}

/// A bearer token and when it expires. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    pub expires_on: SystemTime,
}

impl AccessToken {
    pub fn new(secret: impl Into<Arc<str>>, expires_on: SystemTime) -> Self {
        Self {
            secret: secret.into(),
            expires_on,
        }
    }

    /// The token, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_on.duration_since(now).unwrap_or_default()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// Something that can ask for a new token: `azure_identity` in production, fakes in tests.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Requests a fresh token.
    async fn fetch(&self) -> Result<AccessToken, CredentialError>;
}

/// Hands out one cached token to every caller and refreshes it once, ahead of expiry.
///
/// While a still-valid token exists, a failed refresh keeps serving it; callers wait only when
/// no usable token exists, and then a burst of callers shares one token request.
pub struct TokenCache {
    source: Arc<dyn TokenSource>,
    current: RwLock<Option<AccessToken>>,
    refresh: Mutex<()>,
}

impl TokenCache {
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            current: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    /// A token valid for at least the expiry margin.
    ///
    /// # Errors
    /// When no usable token is cached and every attempt to get one failed.
    pub async fn token(&self) -> Result<AccessToken, CredentialError> {
        let now = SystemTime::now();
        let cached = self.current.read().await.clone();
        if let Some(token) = &cached {
            let remaining = token.remaining(now);
            if remaining > REFRESH_AHEAD {
                return Ok(token.clone());
            }
            if remaining > EXPIRY_MARGIN {
                return Ok(self.refresh_in_place(token.clone()).await);
            }
        }

        let _guard = self.refresh.lock().await;
        if let Some(token) = self.current.read().await.clone() {
            if token.remaining(SystemTime::now()) > EXPIRY_MARGIN {
                return Ok(token);
            }
        }
        let token = self.fetch_with_retries().await?;
        *self.current.write().await = Some(token.clone());
        Ok(token)
    }

    /// Refreshes a token that is near expiry but still valid, unless another caller already
    /// is; on failure the current token keeps serving.
    async fn refresh_in_place(&self, current: AccessToken) -> AccessToken {
        let Ok(_guard) = self.refresh.try_lock() else {
            return current;
        };
        if let Some(token) = self.current.read().await.clone() {
            if token.remaining(SystemTime::now()) > REFRESH_AHEAD {
                return token;
            }
        }
        match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch()).await {
            Ok(Ok(token)) => {
                *self.current.write().await = Some(token.clone());
                token
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "token refresh failed; the current token keeps serving");
                current
            }
            Err(_) => {
                tracing::warn!("token refresh timed out; the current token keeps serving");
                current
            }
        }
    }

    async fn fetch_with_retries(&self) -> Result<AccessToken, CredentialError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch()).await {
                Ok(Ok(token)) if token.remaining(SystemTime::now()) > EXPIRY_MARGIN => {
                    return Ok(token)
                }
                Ok(Ok(_)) => CredentialError {
                    kind: "token source",
                    reason: "returned a token that is already expired".into(),
                },
                Ok(Err(error)) => error,
                Err(_) => CredentialError {
                    kind: "token source",
                    reason: "timed out".into(),
                },
            };
            if attempt >= FETCH_ATTEMPTS {
                return Err(error);
            }
            tracing::warn!(attempt, error = %error, "token request failed; trying again");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }
}

/// Builds an `azure_identity` credential; called again after repeated failures.
pub type CredentialFactory =
    Box<dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// A [`TokenSource`] backed by an `azure_identity` credential, rebuilt from the environment
/// after repeated failures.
pub struct AzureTokenSource {
    kind: &'static str,
    factory: CredentialFactory,
    state: StdMutex<SourceState>,
}

struct SourceState {
    credential: Option<Arc<dyn TokenCredential>>,
    failures: u32,
}

impl AzureTokenSource {
    /// Builds the credential once now, so configuration mistakes show at startup.
    ///
    /// # Errors
    /// When the factory cannot build a credential.
    pub fn new(kind: &'static str, factory: CredentialFactory) -> Result<Self, CredentialError> {
        let credential = factory().map_err(|error| CredentialError {
            kind,
            reason: error.to_string(),
        })?;
        Ok(Self {
            kind,
            factory,
            state: StdMutex::new(SourceState {
                credential: Some(credential),
                failures: 0,
            }),
        })
    }

    fn credential(&self) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(credential) = &state.credential {
            return Ok(credential.clone());
        }
        let credential = (self.factory)().map_err(|error| CredentialError {
            kind: self.kind,
            reason: error.to_string(),
        })?;
        state.credential = Some(credential.clone());
        Ok(credential)
    }

    fn record(&self, success: bool) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if success {
            state.failures = 0;
            return;
        }
        state.failures += 1;
        if state.failures >= REBUILD_AFTER_FAILURES {
            tracing::warn!(
                kind = self.kind,
                "rebuilding the credential after repeated failures"
            );
            state.credential = None;
            state.failures = 0;
        }
    }
}

#[async_trait]
impl TokenSource for AzureTokenSource {
    async fn fetch(&self) -> Result<AccessToken, CredentialError> {
        let credential = self.credential()?;
        let result = credential.get_token(&[ACS_TOKEN_SCOPE], None).await;
        self.record(result.is_ok());
        let token = result.map_err(|error| CredentialError {
            kind: self.kind,
            reason: error.to_string(),
        })?;
        let expires_on = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0));
        Ok(AccessToken::new(token.token.secret(), expires_on))
    }
}

/// An ACS access key. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessKey(Arc<[u8]>);

impl AccessKey {
    /// Decodes the base64 key of a connection string.
    ///
    /// # Errors
    /// When the value is not base64 or is empty.
    pub fn from_base64(raw: &str) -> Result<Self, base64::DecodeError> {
        let bytes = BASE64.decode(raw.trim())?;
        if bytes.is_empty() {
            return Err(base64::DecodeError::InvalidLength(0));
        }
        Ok(Self(bytes.into()))
    }

    /// The three headers of an HMAC-SHA256 signed ACS request.
    ///
    /// `path_and_query` and `host` must be exactly what is sent (the host with its port when
    /// the port is not the scheme's default).
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        host: &str,
        body: &[u8],
        date: SystemTime,
    ) -> SignedHeaders {
        let content_hash = BASE64.encode(Sha256::digest(body));
        let date = httpdate::fmt_http_date(date);
        let to_sign = format!(
            "{}\n{path_and_query}\n{date};{host};{content_hash}",
            method.to_ascii_uppercase()
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(to_sign.as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        SignedHeaders {
            date,
            content_hash,
            authorization: format!(
                "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
            ),
        }
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

/// Headers that sign one request with an access key.
#[derive(Debug)]
pub struct SignedHeaders {
    /// `x-ms-date`.
    pub date: String,
    /// `x-ms-content-sha256`.
    pub content_hash: String,
    /// `Authorization`.
    pub authorization: String,
}

/// How each request to ACS is authorized.
#[derive(Clone)]
pub enum AcsAuth {
    /// `Authorization: Bearer` with a cached Entra token.
    Token(Arc<TokenCache>),
    /// HMAC-SHA256 signature with an access key.
    Key(AccessKey),
}

impl fmt::Debug for AcsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("AcsAuth::Token"),
            Self::Key(_) => f.write_str("AcsAuth::Key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct CountingSource {
        calls: AtomicU32,
        lifetime: Duration,
        fail_after: Option<u32>,
    }

    impl CountingSource {
        fn new(lifetime: Duration) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicU32::new(0),
                lifetime,
                fail_after: None,
            })
        }
    }

    #[async_trait]
    impl TokenSource for CountingSource {
        async fn fetch(&self) -> Result<AccessToken, CredentialError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::task::yield_now().await;
            if self.fail_after.is_some_and(|limit| call > limit) {
                return Err(CredentialError {
                    kind: "test",
                    reason: "identity endpoint returned 500".into(),
                });
            }
            Ok(AccessToken::new(
                format!("token-{call}"),
                SystemTime::now() + self.lifetime,
            ))
        }
    }

    #[tokio::test]
    async fn a_burst_of_callers_costs_one_token_request() {
        let source = CountingSource::new(Duration::from_secs(3600));
        let cache = Arc::new(TokenCache::new(source.clone()));

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().secret(), "token-1");
        }

        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_refreshed_ahead_of_time() {
        let source = CountingSource::new(Duration::from_secs(120));
        let cache = TokenCache::new(source.clone());

        let first = cache.token().await.unwrap();
        let second = cache.token().await.unwrap();

        assert_eq!(first.secret(), "token-1");
        assert_eq!(second.secret(), "token-2");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_serving_the_valid_token() {
        let source = Arc::new(CountingSource {
            calls: AtomicU32::new(0),
            lifetime: Duration::from_secs(120),
            fail_after: Some(1),
        });
        let cache = TokenCache::new(source.clone());

        let first = cache.token().await.unwrap();
        let second = cache.token().await.unwrap();

        assert_eq!(first.secret(), "token-1");
        assert_eq!(second.secret(), "token-1");
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_usable_token_after_every_attempt_is_a_credential_error() {
        let source = Arc::new(CountingSource {
            calls: AtomicU32::new(0),
            lifetime: Duration::from_secs(3600),
            fail_after: Some(0),
        });
        let cache = TokenCache::new(source.clone());

        let error = cache.token().await.unwrap_err();

        assert_eq!(source.calls.load(Ordering::SeqCst), FETCH_ATTEMPTS);
        assert!(error.to_string().contains("500"));
    }

    #[test]
    fn hmac_signature_matches_an_independent_computation() {
        // Key "secret", body "{}", fixed date: the expected signature was computed with
        // Python's hmac and hashlib from the same string-to-sign.
        let key = AccessKey::from_base64("c2VjcmV0").unwrap();
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_553_616_411);

        let signed = key.sign(
            "post",
            "/sms?api-version=2021-03-07",
            "x.communication.azure.com",
            b"{}",
            date,
        );

        assert_eq!(signed.date, "Tue, 26 Mar 2019 16:06:51 GMT");
        assert_eq!(
            signed.content_hash,
            "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
        assert_eq!(
            signed.authorization,
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=NcLJVxL4Yk5uX+asxB5EAjvK1oU95+1W26PvKeOHLAU="
        );
    }

    #[test]
    fn debug_output_hides_keys_and_tokens() {
        let key = AccessKey::from_base64("c2VjcmV0").unwrap();
        let token = AccessToken::new("eyJ-very-secret", SystemTime::now());

        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        assert!(!format!("{token:?}").contains("eyJ"));
    }
}
