//! The fault suite: faults injected into a loopback ACS mock and identity mock, one at a
//! time and mixed by a seeded script under concurrent load, plus hostile input and privacy
//! under failure. Every server is started here on 127.0.0.1; every wait is milliseconds.
//!
//! Run `cargo test --test faults -- --nocapture` to see the figures the suite prints.

#![allow(clippy::unwrap_used, reason = "test support panics on broken fixtures")]

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code, reason = "only part of the API helpers is used here")]
#[path = "../api/helpers.rs"]
mod helpers;

mod corpus;
mod identity;
mod load;
mod privacy;
mod queue;
mod single;
mod support;
