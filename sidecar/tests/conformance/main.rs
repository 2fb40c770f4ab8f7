//! The provider conformance suite: the same cases, through the running sidecar, against
//! a mock of each provider speaking its exact wire format (OpenAI, Anthropic, Bedrock,
//! Cohere, Gemini and Vertex AI), then each provider's own cases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod assemble;
mod golden;
mod suite;

mod anthropic;
mod bedrock;
mod bedrock_features;
mod cohere;
mod embeddings;
mod gemini;
mod gemini_signatures;
mod openai;
