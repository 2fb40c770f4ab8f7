//! The provider conformance suite: the same cases, through the running sidecar, against
//! a mock of each provider speaking its exact wire format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod golden;
mod suite;

mod anthropic;
mod gemini;
