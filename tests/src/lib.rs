//! Test support shared by llmesh's crates: mock upstream providers.

pub mod gemini;
pub mod openai;

pub use openai::{MockConfig, MockOpenAi, Recorded, Reply};
