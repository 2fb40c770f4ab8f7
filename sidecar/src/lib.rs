//! llmesh sidecar: the data plane. An OpenAI-compatible API on localhost that routes
//! each call to the deployments serving its model, retries, cools down failing
//! deployments and falls back to other models.

pub mod config;
