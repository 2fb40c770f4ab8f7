//! llmesh's control plane. For now: the compiler from resources to the sidecar's config
//! snapshot, the manifest loader and the local directory watcher the quickstart uses.

pub mod compile;
pub mod local;
pub mod manifests;

pub use compile::{Compiled, Inputs, Kind, Problem, Reason, Severity, compile};
pub use manifests::{LoadError, load_dir, load_inputs};
