//! Azure Functions custom handler that sends SMS and provisions identities through Azure
//! Communication Services (ACS), authenticating with the function app's managed identity.
//!
//! The modules are listed in reading order: configuration and telemetry first, then the
//! validated domain, the outbound ACS side, the Functions host protocol, the routes and the
//! wiring that serves them.

pub mod acs;
pub mod config;
pub mod domain;
pub mod telemetry;

pub mod error;
pub mod idempotency;
pub mod routes;
pub mod startup;
