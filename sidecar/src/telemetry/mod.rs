//! What the sidecar tells about itself besides metrics: logs (here: `tracing` to stderr
//! as text or JSON, filtered by `LLMESH_LOG` or `RUST_LOG`, `info` by default) and
//! OpenTelemetry traces ([`otel`] exports them, [`spans`] makes them). Request logs and
//! spans carry routing facts only, never prompts, completions or credentials, unless a
//! model opts in to content capture ([`content`]).

use tracing_subscriber::EnvFilter;

pub mod content;
pub mod otel;
pub mod spans;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = std::env::var("LLMESH_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
