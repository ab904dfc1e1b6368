//! Tests of the real `handler` binary, started as the Functions host starts it: a cleared
//! environment, a port, and loopback mocks for ACS (our own or Prism serving the official
//! documents) and for the managed identity endpoint.

#![allow(clippy::unwrap_used, reason = "test support panics on broken fixtures")]

#[path = "../common/mod.rs"]
mod common;

mod contract;
mod process;
