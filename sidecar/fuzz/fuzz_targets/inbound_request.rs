//! Fuzz target `inbound_request`: see `llmesh_sidecar::fuzz::inbound_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::inbound_request(data));
