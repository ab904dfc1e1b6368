//! Black-box tests of the handler's routes, served in-process on a loopback port with ACS
//! replaced by a mock. One test binary for all routes.

#![allow(clippy::unwrap_used, reason = "test support panics on broken fixtures")]

#[path = "../common/mod.rs"]
mod common;

mod helpers;
mod queue;
mod sms;
