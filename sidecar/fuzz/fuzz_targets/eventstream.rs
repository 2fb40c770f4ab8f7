//! Fuzz target `eventstream`: see `llmesh_sidecar::fuzz::eventstream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::eventstream(data));
