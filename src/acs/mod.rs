//! The outbound side: ACS clients and their credentials. Nothing here knows about axum.

pub mod auth;
pub mod error;
pub mod http;
pub mod identity;
pub mod outbox;
pub mod retry;
pub mod sms;

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use crate::config::{AcsSettings, AuthSettings};
pub use auth::{AccessToken, AcsAuth, CredentialError, TokenCache, TokenSource};
pub use error::AcsError;
pub use http::AcsHttp;
pub use identity::IdentityClient;
pub use outbox::Outbox;
pub use retry::RetryPolicy;
pub use sms::SmsClient;

/// Every ACS client the handler uses, sharing one HTTP client and one credential.
#[derive(Debug, Clone)]
pub struct AcsClients {
    pub sms: SmsClient,
    pub identity: IdentityClient,
    /// What the handler talks to, for the startup log.
    pub description: String,
}

/// The one HTTP client for ACS and the identity endpoint: rustls, no proxy, bounded timeouts.
///
/// # Errors
/// When TLS cannot be set up.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // Installing fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .no_proxy()
        .build()
}

impl AcsClients {
    /// Builds the clients the settings ask for. Makes no network call.
    ///
    /// # Errors
    /// When the credential cannot be built from the environment.
    pub fn build(
        settings: &AcsSettings,
        client: &reqwest::Client,
    ) -> Result<Self, CredentialError> {
        let (endpoint, auth) = match settings {
            AcsSettings::Outbox { path } => {
                let outbox = Outbox::new(path.clone());
                return Ok(Self {
                    sms: SmsClient::Outbox(outbox.clone()),
                    identity: IdentityClient::Outbox(outbox),
                    description: format!("local outbox at {}", path.display()),
                });
            }
            AcsSettings::Remote { endpoint, auth } => (endpoint, auth),
        };
        let (acs_auth, kind) = match auth {
            AuthSettings::AccessKey(key) => (AcsAuth::Key(key.clone()), "access key (HMAC)"),
            AuthSettings::ManagedIdentity { client_id } => {
                let source = managed_identity_source(client_id.clone(), client.clone())?;
                let kind = if client_id.is_some() {
                    "user-assigned managed identity"
                } else {
                    "system-assigned managed identity"
                };
                (
                    AcsAuth::Token(Arc::new(TokenCache::new(Arc::new(source)))),
                    kind,
                )
            }
            AuthSettings::Developer => {
                let source = developer_source()?;
                (
                    AcsAuth::Token(Arc::new(TokenCache::new(Arc::new(source)))),
                    "developer credentials",
                )
            }
        };
        let http = AcsHttp::new(client.clone(), endpoint.clone(), acs_auth);
        Ok(Self {
            sms: SmsClient::Acs(http.clone()),
            identity: IdentityClient::Acs(http),
            description: format!(
                "ACS at {} with {kind}",
                endpoint.as_str().trim_end_matches('/')
            ),
        })
    }
}

/// Managed identity through the App Service endpoint. The caller has checked that
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, so `azure_identity` picks the App
/// Service source and never the instance metadata address.
fn managed_identity_source(
    client_id: Option<String>,
    client: reqwest::Client,
) -> Result<auth::AzureTokenSource, CredentialError> {
    let factory: auth::CredentialFactory = Box::new(move || {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(client.clone()))),
                // Retries happen in our token cache, where they are bounded in time.
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
        };
        let credential: Arc<dyn TokenCredential> = ManagedIdentityCredential::new(Some(options))?;
        Ok(credential)
    });
    auth::AzureTokenSource::new("managed identity", factory)
}

/// Azure CLI, then Azure Developer CLI login, for local work against a real resource.
fn developer_source() -> Result<auth::AzureTokenSource, CredentialError> {
    let factory: auth::CredentialFactory = Box::new(|| {
        let credential: Arc<dyn TokenCredential> = DeveloperToolsCredential::new(None)?;
        Ok(credential)
    });
    auth::AzureTokenSource::new("developer credentials", factory)
}
