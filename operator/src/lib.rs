//! llmesh operator.
