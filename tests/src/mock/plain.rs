//! A mock with no provider behind it: it answers only what the test scripts, for tests
//! of the HTTP layer itself (odd headers, streams that never end an event).

use bytes::Bytes;
use http::StatusCode;

use super::{Kind, Mock, Provider, Recorded, Reply, Resolved, to_bytes};

/// Renders scripted JSON as is; a request the script does not cover gets `{}`.
#[derive(Debug, Default)]
pub struct Plain;

/// A running [`Plain`] mock.
pub type MockHttp = Mock<Plain>;

impl Provider for Plain {
    fn render(&self, _req: &Recorded, reply: &Reply) -> Resolved {
        let json = |status, body: &serde_json::Value| {
            Resolved::whole(status, "application/json", to_bytes(body))
        };
        match reply.kind() {
            Kind::Json(status, body) => json(*status, body),
            Kind::Ok => json(StatusCode::OK, &serde_json::json!({})),
            Kind::Malformed => {
                Resolved::whole(StatusCode::OK, "application/json", Bytes::from_static(b"{"))
            }
            _ => Resolved::unsupported("plain", reply),
        }
    }
}

impl Mock<Plain> {
    /// Starts a plain mock on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start() -> MockHttp {
        Mock::serve_default(Plain).await
    }
}
