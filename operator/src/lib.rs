//! llmesh's control plane: controllers for LLMModel, VirtualKey and Budget, the hub that
//! compiles each namespace's resources into the sidecar's config snapshot, the config
//! push to sidecars, and the pieces the local runner shares (compiler, manifest loader,
//! directory watcher), and the sidecar injection webhook.

pub mod admin;
pub mod auth;
pub mod budget_metrics;
pub mod cli;
pub mod compile;
pub mod controllers;
pub mod error;
pub mod hub;
pub mod intake;
pub mod local;
pub mod manifests;
pub mod metrics;
pub mod period;
pub mod push;
pub mod referenced;
pub mod run;
pub mod serving;
pub mod settings;
pub mod webhook;

/// The label on everything the operator creates at run time (VirtualKey Secrets, its
/// TLS Secret, the CA ConfigMaps), as `docs/operations.md` documents it; a test keeps the
/// two equal.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "llmesh-operator");

pub use compile::{Compiled, Inputs, Kind, Problem, Reason, Severity, compile};
pub use error::{Error, Result};
pub use manifests::{LoadError, load_dir, load_inputs};
