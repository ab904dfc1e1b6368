//! Azure Functions custom handler that sends SMS and provisions identities through Azure
//! Communication Services (ACS), authenticating with the function app's managed identity.
//!
//! The modules, in reading order:

/// The outbound side: ACS clients, credentials, retries, the local outbox.
pub mod acs;
/// Typed settings from the environment.
pub mod config;
/// Validated domain types: phone numbers, senders, messages, batches.
pub mod domain;
/// `ApiError`, the one error type that becomes an HTTP response.
pub mod error;
/// The Functions host protocol for invocations that are not forwarded.
pub mod host;
/// `Idempotency-Key` replay and the ledger of queue sends.
pub mod idempotency;
/// HTTP routes, one file per function.
pub mod routes;
/// Router, limits, serving and shutdown.
pub mod startup;
/// Log subscriber setup.
pub mod telemetry;
