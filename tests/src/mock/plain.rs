//! A mock with no provider behind it: it answers only what the test scripts, for tests
//! of the HTTP layer itself (odd headers, streams that never end an event).

use bytes::Bytes;
use http::StatusCode;

use super::{Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, to_bytes};

/// Renders scripted replies as they are; a request the script does not cover gets `{}`.
#[derive(Debug, Default)]
pub struct Plain;

/// A running [`Plain`] mock.
pub type MockHttp = Mock<Plain>;

impl Provider for Plain {
    fn render(&self, _req: &Recorded, reply: &Reply) -> Resolved {
        let json = |body: &'static [u8]| {
            Resolved::whole(StatusCode::OK, Self::JSON, Bytes::from_static(body))
        };
        match reply.kind() {
            Kind::Ok => json(b"{}"),
            Kind::Malformed => json(b"{"),
            _ => Resolved::unsupported("plain", reply),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let body = serde_json::json!({"error": {"message": failure.message}});
        Resolved::whole(failure.status, Self::JSON, to_bytes(&body))
    }
}
