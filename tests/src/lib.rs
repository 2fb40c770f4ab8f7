//! Test support shared by llmesh's crates: mock upstream providers speaking each
//! provider's exact wire format and, with the `apiserver` feature, a real Kubernetes
//! API server.

pub mod anthropic;
#[cfg(feature = "apiserver")]
pub mod apiserver;
pub mod bedrock;
mod bins;
pub mod chart;
pub mod cohere;
pub mod gemini;
mod http_mock;
pub mod openai;
pub mod pod;
pub mod server;
pub mod wait;

pub use anthropic::MockAnthropic;
pub use bedrock::MockBedrock;
pub use bins::workspace_bin;
pub use cohere::MockCohere;
pub use gemini::MockGemini;
pub use http_mock::{base64_decode, base64_encode};
pub use openai::{MockConfig, MockOpenAi, Recorded, Reply};
pub use server::{MockResponse, MockServer};
pub use wait::eventually;
