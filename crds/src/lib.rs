//! llmesh CRD types.
