//! Test support shared by llmesh's crates: mock upstream providers and, with the
//! `apiserver` feature, a real Kubernetes API server.

#[cfg(feature = "apiserver")]
pub mod apiserver;
pub mod openai;

pub use openai::{MockConfig, MockOpenAi, Recorded, Reply};
