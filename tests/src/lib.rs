//! Test support shared by llmesh's crates: mock upstream providers.
