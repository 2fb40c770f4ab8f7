//! Unit tests of the Messages bridge: requests to chat, whole answers and streams back.

mod reply;
mod request;
mod stream;

use serde_json::{Map, Value};

use crate::domain::{CallView, Endpoint};
use crate::provider::test_support;

/// A Messages call of `body` to a deployment of `upstream-model`.
pub(super) fn view(body: &Map<String, Value>, stream: bool) -> CallView<'_> {
    test_support::view(Endpoint::Messages, body, stream, "upstream-model")
}
