//! Test support shared by llmesh's crates: mock upstream providers speaking each
//! provider's exact wire format.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod server;

pub use anthropic::MockAnthropic;
pub use gemini::MockGemini;
pub use openai::{MockConfig, MockOpenAi, Recorded, Reply};
pub use server::{MockResponse, MockServer};
