//! Test support shared by llmesh's crates: mock upstream providers speaking each
//! provider's exact wire format, and mocks of the clouds' identity services
//! ([`identity`]), all on one core ([`mock`]) which also serves HTTPS under a test CA
//! ([`tls`]), and, with the `apiserver` feature, a real Kubernetes API server. Also the
//! chart's tools ([`chart`]) and the checks of its Grafana dashboard ([`dashboard`]), whose
//! PromQL is read and checked against what `/metrics` exports by [`promql`].

pub mod anthropic;
#[cfg(feature = "apiserver")]
pub mod apiserver;
pub mod bedrock;
mod bins;
pub mod chart;
pub mod cohere;
pub mod dashboard;
pub mod gemini;
pub mod identity;
pub mod mock;
pub mod openai;
pub mod otlp;
pub mod pod;
pub mod promql;
pub mod tls;
pub mod wait;

pub use anthropic::MockAnthropic;
pub use bedrock::MockBedrock;
pub use bins::workspace_bin;
pub use cohere::MockCohere;
pub use gemini::MockGemini;
pub use identity::{MockEntra, MockGoogleSts, MockMetadata, MockPodIdentity, MockSts};
pub use mock::{Mock, MockConfig, MockHttp, Recorded, Reply};
pub use openai::MockOpenAi;
pub use otlp::MockOtlp;
pub use wait::eventually;
