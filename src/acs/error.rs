//! What can go wrong when calling ACS, in the terms callers act on.

use std::time::Duration;

use super::auth::CredentialError;

/// A failed ACS call. Messages hold status codes and ACS error codes, never request data.
#[derive(Debug, thiserror::Error)]
pub enum AcsError {
    /// ACS refused the request (a 4xx other than 401, 403, 404, 408 and 429).
    #[error("ACS rejected the request with status {status} ({})", code.as_deref().unwrap_or("no code"))]
    Rejected {
        status: u16,
        code: Option<String>,
        /// ACS's own message, passed back to the caller but never logged.
        message: Option<String>,
    },
    /// ACS answered 401 or 403: the identity lacks a role, or the key is wrong.
    #[error("ACS refused the credential with status {status}")]
    Forbidden { status: u16 },
    /// ACS answered 404.
    #[error("ACS found no such resource")]
    NotFound,
    /// ACS answered 429 and the wait did not fit the budget.
    #[error("ACS throttled the request")]
    Throttled { retry_after: Option<Duration> },
    /// ACS answered 408 or 5xx on every attempt the budget allowed.
    #[error("ACS is unavailable (status {status})")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the attempt timeout, on every attempt the budget allowed.
    #[error("ACS did not answer in time")]
    Timeout,
    /// The connection failed on every attempt the budget allowed.
    #[error("could not connect to ACS")]
    Connection(#[source] reqwest::Error),
    /// No token or signature could be made.
    #[error("no credential for ACS")]
    Credential(#[from] CredentialError),
    /// The local outbox file could not be written.
    #[error("could not write the local outbox ({0:?})")]
    LocalOutbox(std::io::ErrorKind),
    /// The request could not be built, or ACS answered in a way its contract does not allow.
    #[error("ACS answered with an unexpected body: {0}")]
    InvalidResponse(String),
    /// ACS answered 2xx with a body that cannot be read, on every attempt the budget allowed.
    /// Whether ACS acted on the request is unknown, so it counts as transient.
    #[error("ACS answered {status} with a body that does not match its contract")]
    MalformedAnswer { status: u16 },
}

impl AcsError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Unavailable { .. }
                | Self::Timeout
                | Self::Connection(_)
                | Self::Credential(_)
                | Self::LocalOutbox(_)
                | Self::MalformedAnswer { .. }
        )
    }

    /// The wait ACS asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status ACS answered with, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. }
            | Self::Forbidden { status }
            | Self::Unavailable { status, .. } => Some(*status),
            Self::NotFound => Some(404),
            Self::Throttled { .. } => Some(429),
            _ => None,
        }
    }
}
