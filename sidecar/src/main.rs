//! The `llmesh-sidecar` binary.

fn main() {}
