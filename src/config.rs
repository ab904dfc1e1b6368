//! Typed settings, read once at startup from the environment.
//!
//! Every variable the handler reads is listed on [`Settings::from_lookup`]. A missing or
//! malformed value stops startup with one [`ConfigError`] that names the variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::acs::auth::AccessKey;
use crate::acs::RetryPolicy;
use crate::domain::Sender;

/// Port the Functions host asks the handler to listen on.
pub const FUNCTIONS_CUSTOMHANDLER_PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// `https://<resource>.communication.azure.com`.
pub const ACS_ENDPOINT: &str = "ACS_ENDPOINT";
/// Default sender for SMS.
pub const SMS_FROM: &str = "SMS_FROM";
/// Client id of a user-assigned managed identity.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// `endpoint=...;accesskey=...`, for access-key (HMAC) authentication.
pub const ACS_CONNECTION_STRING: &str = "ACS_CONNECTION_STRING";
/// Queue drained by `SendSmsFromQueue`.
pub const SMS_QUEUE_NAME: &str = "SMS_QUEUE_NAME";
/// Queue that records permanent failures.
pub const SMS_FAILED_QUEUE_NAME: &str = "SMS_FAILED_QUEUE_NAME";
/// File the local outbox appends to.
pub const SMS_OUTBOX_PATH: &str = "SMS_OUTBOX_PATH";
/// Most segments one message may take.
pub const SMS_MAX_SEGMENTS: &str = "SMS_MAX_SEGMENTS";
/// Log filter.
pub const RUST_LOG: &str = "RUST_LOG";
/// Managed identity endpoint set by App Service and Functions.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// Secret header value for the managed identity endpoint.
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Set by the platform on every Azure instance; its absence means "not in Azure".
pub const WEBSITE_INSTANCE_ID: &str = "WEBSITE_INSTANCE_ID";
/// Log output format: `json` or `text` (default: JSON in Azure, text elsewhere).
pub const LOG_FORMAT: &str = "LOG_FORMAT";

const DEFAULT_PORT: u16 = 3000;
const DEFAULT_QUEUE: &str = "sms-outbox";
const DEFAULT_FAILED_QUEUE: &str = "sms-failed";
const DEFAULT_OUTBOX_PATH: &str = "outbox.jsonl";
const DEFAULT_MAX_SEGMENTS: u16 = 10;
/// The instance metadata address; the handler never calls it.
const INSTANCE_METADATA_HOST: &str = "169.254.169.254";

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} must be set: {1}")]
    Missing(&'static str, &'static str),
    /// A variable is set to a value the handler cannot use.
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// All settings, grouped by concern.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub acs: AcsSettings,
    pub sms: SmsSettings,
    pub telemetry: TelemetrySettings,
    pub retry: RetrySettings,
}

/// Retry limits for ACS calls. Not read from the environment; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// For HTTP routes, where a caller waits.
    pub interactive: RetryPolicy,
    /// For the queue function.
    pub background: RetryPolicy,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            interactive: RetryPolicy::INTERACTIVE,
            background: RetryPolicy::BACKGROUND,
        }
    }
}

/// Where and how the HTTP server listens.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub port: u16,
    /// Bound on the time one request may take before the handler answers 503.
    pub request_timeout: Duration,
    /// Bound on requests served at once; more wait in line.
    pub max_concurrent_requests: usize,
    /// After a shutdown signal, how much longer than `request_timeout` to wait for open
    /// connections before the process stops anyway.
    pub drain_grace: Duration,
}

/// How the handler reaches ACS.
#[derive(Debug, Clone)]
pub enum AcsSettings {
    /// A real ACS resource.
    Remote { endpoint: Url, auth: AuthSettings },
    /// No ACS configured outside Azure: record would-be requests in a local file.
    Outbox { path: PathBuf },
}

/// The credential used for a real ACS resource, in the order DESIGN §2 gives.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Managed identity through `IDENTITY_ENDPOINT`, user-assigned when a client id is given.
    ManagedIdentity { client_id: Option<String> },
    /// HMAC-SHA256 request signing with an access key.
    AccessKey(AccessKey),
    /// Developer credentials (Azure CLI or Azure Developer CLI login).
    Developer,
}

/// SMS rules and queue names.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// Sender used when a request names none.
    pub default_sender: Option<Sender>,
    pub max_segments: u16,
    pub queue_name: String,
    pub failed_queue_name: String,
}

/// Log filter and format.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub filter: String,
    pub json: bool,
    /// Colour codes in text logs, only when stdout is a terminal.
    pub ansi: bool,
}

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// The first missing or malformed variable, named.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests never touch the process environment.
    ///
    /// Variables (all optional unless noted):
    /// - `FUNCTIONS_CUSTOMHANDLER_PORT`: port on 127.0.0.1, default 3000.
    /// - `ACS_ENDPOINT`: ACS resource URL; `https`, or `http` on a loopback address.
    ///   Required in Azure (`WEBSITE_INSTANCE_ID` set) unless `ACS_CONNECTION_STRING` names it.
    /// - `SMS_FROM`: default sender; required whenever ACS is configured.
    /// - `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`: managed identity (set by the platform).
    /// - `AZURE_CLIENT_ID`: user-assigned identity client id.
    /// - `ACS_CONNECTION_STRING`: `endpoint=...;accesskey=...` for HMAC signing.
    /// - `SMS_QUEUE_NAME` (default `sms-outbox`), `SMS_FAILED_QUEUE_NAME` (default `sms-failed`).
    /// - `SMS_OUTBOX_PATH`: local outbox file, default `outbox.jsonl`.
    /// - `SMS_MAX_SEGMENTS`: 1 to 255, default 10.
    /// - `RUST_LOG`: log filter, default `info`. `LOG_FORMAT`: `json` or `text`.
    ///
    /// # Errors
    /// The first missing or malformed variable, named.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let in_azure = get(WEBSITE_INSTANCE_ID).is_some();

        let port = match get(FUNCTIONS_CUSTOMHANDLER_PORT) {
            None => DEFAULT_PORT,
            Some(raw) => raw.trim().parse::<u16>().map_err(|_| {
                ConfigError::Invalid(
                    FUNCTIONS_CUSTOMHANDLER_PORT,
                    "expected a port number".into(),
                )
            })?,
        };

        let max_segments = match get(SMS_MAX_SEGMENTS) {
            None => DEFAULT_MAX_SEGMENTS,
            Some(raw) => parse_max_segments(&raw)?,
        };
        let default_sender = get(SMS_FROM)
            .map(|raw| {
                Sender::parse(raw.trim())
                    .map_err(|rule| ConfigError::Invalid(SMS_FROM, rule.to_string()))
            })
            .transpose()?;
        let sms = SmsSettings {
            default_sender,
            max_segments,
            queue_name: get(SMS_QUEUE_NAME).unwrap_or_else(|| DEFAULT_QUEUE.into()),
            failed_queue_name: get(SMS_FAILED_QUEUE_NAME)
                .unwrap_or_else(|| DEFAULT_FAILED_QUEUE.into()),
        };

        let acs = acs_settings(&get, in_azure)?;
        if matches!(acs, AcsSettings::Remote { .. }) && sms.default_sender.is_none() {
            return Err(ConfigError::Missing(
                SMS_FROM,
                "a default sender is required when ACS is configured",
            ));
        }

        let json = match get(LOG_FORMAT).as_deref() {
            None => in_azure,
            Some("json") => true,
            Some("text") => false,
            Some(_) => {
                return Err(ConfigError::Invalid(
                    LOG_FORMAT,
                    "expected json or text".into(),
                ))
            }
        };
        let filter = get(RUST_LOG).unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&filter).is_err() {
            return Err(ConfigError::Invalid(
                RUST_LOG,
                "expected a log filter such as info or acs_sms_handler=debug".into(),
            ));
        }
        let telemetry = TelemetrySettings {
            filter,
            json,
            ansi: !json && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        };

        let server = ServerSettings {
            port,
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 512,
            drain_grace: Duration::from_secs(5),
        };
        Ok(Self {
            server,
            acs,
            sms,
            telemetry,
            retry: RetrySettings::default(),
        })
    }
}

fn parse_max_segments(raw: &str) -> Result<u16, ConfigError> {
    match raw.trim().parse::<u16>() {
        Ok(value) if (1..=255).contains(&value) => Ok(value),
        _ => Err(ConfigError::Invalid(
            SMS_MAX_SEGMENTS,
            "expected a whole number from 1 to 255".into(),
        )),
    }
}

fn acs_settings(
    get: &impl Fn(&str) -> Option<String>,
    in_azure: bool,
) -> Result<AcsSettings, ConfigError> {
    let endpoint = get(ACS_ENDPOINT)
        .map(|raw| parse_endpoint(ACS_ENDPOINT, &raw))
        .transpose()?;
    let managed_identity = get(IDENTITY_ENDPOINT).is_some() && get(IDENTITY_HEADER).is_some();
    let connection = get(ACS_CONNECTION_STRING);

    if managed_identity {
        check_identity_endpoint(get)?;
        let endpoint = match (endpoint, connection.as_deref()) {
            (Some(endpoint), _) => endpoint,
            (None, Some(raw)) => parse_connection_string(raw)?.0,
            (None, None) => {
                return Err(ConfigError::Missing(
                    ACS_ENDPOINT,
                    "the ACS resource URL is required with a managed identity",
                ))
            }
        };
        let client_id = get(AZURE_CLIENT_ID).map(|id| id.trim().to_owned());
        let auth = AuthSettings::ManagedIdentity { client_id };
        return Ok(AcsSettings::Remote { endpoint, auth });
    }
    if let Some(raw) = connection {
        let (from_string, key) = parse_connection_string(&raw)?;
        let endpoint = endpoint.unwrap_or(from_string);
        let auth = AuthSettings::AccessKey(key);
        return Ok(AcsSettings::Remote { endpoint, auth });
    }
    if let Some(endpoint) = endpoint {
        let auth = AuthSettings::Developer;
        return Ok(AcsSettings::Remote { endpoint, auth });
    }
    if in_azure {
        return Err(ConfigError::Missing(
            ACS_ENDPOINT,
            "running in Azure without an ACS resource URL",
        ));
    }
    let path = get(SMS_OUTBOX_PATH).unwrap_or_else(|| DEFAULT_OUTBOX_PATH.into());
    Ok(AcsSettings::Outbox { path: path.into() })
}

/// Refuses an identity endpoint aimed at the instance metadata address.
fn check_identity_endpoint(get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let raw = get(IDENTITY_ENDPOINT).unwrap_or_default();
    let url = Url::parse(raw.trim())
        .map_err(|_| ConfigError::Invalid(IDENTITY_ENDPOINT, "expected a URL".into()))?;
    if url.host_str() == Some(INSTANCE_METADATA_HOST) {
        return Err(ConfigError::Invalid(
            IDENTITY_ENDPOINT,
            "the instance metadata address is not used; expected the App Service endpoint".into(),
        ));
    }
    Ok(())
}

/// Parses an ACS endpoint: `https`, or `http` on a loopback address; no path, query or user.
fn parse_endpoint(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|_| ConfigError::Invalid(variable, "expected an absolute URL".into()))?;
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ConfigError::Invalid(
                variable,
                "expected https (http is accepted only on a loopback address)".into(),
            ))
        }
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::Invalid(
            variable,
            "expected a host and no user".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(ConfigError::Invalid(
            variable,
            "expected only scheme, host and port".into(),
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses `endpoint=...;accesskey=...` (keys case-insensitive, values split at the first `=`).
fn parse_connection_string(raw: &str) -> Result<(Url, AccessKey), ConfigError> {
    let mut endpoint = None;
    let mut key = None;
    for part in raw
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let Some((name, value)) = part.split_once('=') else {
            return Err(ConfigError::Invalid(
                ACS_CONNECTION_STRING,
                "expected name=value pairs separated by ';'".into(),
            ));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(value.trim().to_owned()),
            "accesskey" => key = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let (Some(endpoint), Some(key)) = (endpoint, key) else {
        return Err(ConfigError::Invalid(
            ACS_CONNECTION_STRING,
            "expected both endpoint= and accesskey=".into(),
        ));
    };
    let endpoint = parse_endpoint(ACS_CONNECTION_STRING, &endpoint)?;
    let key = AccessKey::from_base64(&key).map_err(|_| {
        ConfigError::Invalid(ACS_CONNECTION_STRING, "the access key is not base64".into())
    })?;
    Ok((endpoint, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ENDPOINT: &str = "https://example-acs.communication.azure.com";
    const SENDER: &str = "+18005550100";

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    fn error_text(vars: &[(&str, &str)]) -> String {
        load(vars)
            .expect_err("settings should be refused")
            .to_string()
    }

    #[test]
    fn nothing_set_outside_azure_selects_the_local_outbox() {
        let settings = load(&[]).unwrap();

        assert_eq!(settings.server.port, 3000);
        assert_eq!(settings.sms.max_segments, 10);
        assert_eq!(settings.sms.queue_name, "sms-outbox");
        assert_eq!(settings.sms.failed_queue_name, "sms-failed");
        let AcsSettings::Outbox { path } = settings.acs else {
            panic!("expected the outbox")
        };
        assert_eq!(path, PathBuf::from("outbox.jsonl"));
    }

    #[test]
    fn missing_endpoint_in_azure_names_the_variable() {
        let text = error_text(&[(WEBSITE_INSTANCE_ID, "abc")]);

        assert!(text.starts_with("ACS_ENDPOINT"), "{text}");
    }

    #[test]
    fn identity_endpoint_selects_managed_identity_with_optional_client_id() {
        let base = [
            (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
            (IDENTITY_HEADER, "header"),
            (ACS_ENDPOINT, ENDPOINT),
            (SMS_FROM, SENDER),
        ];
        let system = load(&base).unwrap();
        let mut with_client = base.to_vec();
        with_client.push((AZURE_CLIENT_ID, "00000000-0000-0000-0000-000000000001"));
        let user = load(&with_client).unwrap();

        assert!(matches!(
            system.acs,
            AcsSettings::Remote {
                auth: AuthSettings::ManagedIdentity { client_id: None },
                ..
            }
        ));
        assert!(matches!(
            user.acs,
            AcsSettings::Remote {
                auth: AuthSettings::ManagedIdentity { client_id: Some(_) },
                ..
            }
        ));
    }

    #[test]
    fn identity_header_without_endpoint_never_selects_managed_identity() {
        let settings = load(&[
            (IDENTITY_HEADER, "h"),
            (ACS_ENDPOINT, ENDPOINT),
            (SMS_FROM, SENDER),
        ])
        .unwrap();

        assert!(matches!(
            settings.acs,
            AcsSettings::Remote {
                auth: AuthSettings::Developer,
                ..
            }
        ));
    }

    #[test]
    fn identity_endpoint_at_the_instance_metadata_address_is_refused() {
        let text = error_text(&[
            (
                IDENTITY_ENDPOINT,
                "http://169.254.169.254/metadata/identity/oauth2/token",
            ),
            (IDENTITY_HEADER, "h"),
            (ACS_ENDPOINT, ENDPOINT),
            (SMS_FROM, SENDER),
        ]);

        assert!(text.starts_with("IDENTITY_ENDPOINT"), "{text}");
    }

    #[test]
    fn connection_string_selects_hmac_and_supplies_the_endpoint() {
        let settings = load(&[
            (
                ACS_CONNECTION_STRING,
                "endpoint=https://x.communication.azure.com/;accesskey=c2VjcmV0",
            ),
            (SMS_FROM, SENDER),
        ])
        .unwrap();

        let AcsSettings::Remote { endpoint, auth } = settings.acs else {
            panic!("expected ACS")
        };
        assert_eq!(endpoint.as_str(), "https://x.communication.azure.com/");
        assert!(matches!(auth, AuthSettings::AccessKey(_)));
    }

    #[test]
    fn malformed_values_stop_startup_naming_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(FUNCTIONS_CUSTOMHANDLER_PORT, "http")],
                FUNCTIONS_CUSTOMHANDLER_PORT,
            ),
            (
                &[(FUNCTIONS_CUSTOMHANDLER_PORT, "70000")],
                FUNCTIONS_CUSTOMHANDLER_PORT,
            ),
            (&[(SMS_MAX_SEGMENTS, "0")], SMS_MAX_SEGMENTS),
            (&[(SMS_MAX_SEGMENTS, "many")], SMS_MAX_SEGMENTS),
            (&[(SMS_FROM, "+0123")], SMS_FROM),
            (
                &[(ACS_ENDPOINT, "http://acs.example.com"), (SMS_FROM, SENDER)],
                ACS_ENDPOINT,
            ),
            (
                &[(ACS_ENDPOINT, "not a url"), (SMS_FROM, SENDER)],
                ACS_ENDPOINT,
            ),
            (
                &[
                    (ACS_ENDPOINT, "https://x.example.com/path"),
                    (SMS_FROM, SENDER),
                ],
                ACS_ENDPOINT,
            ),
            (&[(ACS_ENDPOINT, ENDPOINT)], SMS_FROM),
            (
                &[
                    (ACS_CONNECTION_STRING, "endpoint=https://x.example.com"),
                    (SMS_FROM, SENDER),
                ],
                ACS_CONNECTION_STRING,
            ),
            (
                &[
                    (
                        ACS_CONNECTION_STRING,
                        "endpoint=https://x.example.com;accesskey=!!",
                    ),
                    (SMS_FROM, SENDER),
                ],
                ACS_CONNECTION_STRING,
            ),
            (&[(LOG_FORMAT, "xml")], LOG_FORMAT),
            (&[(RUST_LOG, "[[[garbage")], RUST_LOG),
        ];

        for (vars, variable) in cases {
            let text = error_text(vars);
            assert!(text.starts_with(variable), "{vars:?} gave {text}");
        }
    }

    #[test]
    fn error_text_never_repeats_the_access_key() {
        let text = error_text(&[
            (ACS_CONNECTION_STRING, "endpoint=ftp://x;accesskey=c2VjcmV0"),
            (SMS_FROM, SENDER),
        ]);

        assert!(!text.contains("c2VjcmV0"), "{text}");
    }

    #[test]
    fn loopback_endpoints_may_use_http() {
        for endpoint in [
            "http://127.0.0.1:4010",
            "http://localhost:9",
            "http://[::1]:80",
        ] {
            let settings = load(&[(ACS_ENDPOINT, endpoint), (SMS_FROM, SENDER)]);
            assert!(settings.is_ok(), "{endpoint}");
        }
    }
}
