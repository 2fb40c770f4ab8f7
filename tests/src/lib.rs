//! Test support shared by llmesh's crates: mock upstream providers.

pub mod bedrock;
pub mod cohere;
mod http_mock;
pub mod openai;

pub use bedrock::MockBedrock;
pub use cohere::MockCohere;
pub use http_mock::{base64_decode, base64_encode};
pub use openai::{MockConfig, MockOpenAi, Recorded, Reply};
