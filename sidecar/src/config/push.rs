//! The config push protocol between the operator and sidecars, owned here because the
//! sidecar owns its config format.
//!
//! A sidecar opens `GET /v1/snapshots?version=V` on the operator over TLS with
//! `Authorization: Bearer <its pod's service-account token>` (audience `llmesh`). The
//! answer is a stream of newline-delimited JSON [`Message`]s: the namespace's snapshot at
//! once (unless the sidecar already has version `V`), a new one after every change, and
//! heartbeats in between so either side notices a dead connection.

use serde::{Deserialize, Serialize};

use super::Snapshot;

/// The path sidecars stream snapshots from.
pub const PATH: &str = "/v1/snapshots";
/// The token audience the operator accepts.
pub const AUDIENCE: &str = "llmesh";
/// How often the operator sends a heartbeat.
pub const HEARTBEAT_SECS: u64 = 10;
/// A sidecar that hears nothing for this long reconnects.
pub const SILENCE_SECS: u64 = 3 * HEARTBEAT_SECS + 5;

/// One line of the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// The namespace's whole config.
    Snapshot {
        /// The config.
        snapshot: Box<Snapshot>,
    },
    /// Nothing changed; the connection is alive.
    Heartbeat {
        /// The version the operator holds.
        version: String,
    },
}

impl Message {
    /// The message as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
