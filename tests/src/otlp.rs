//! An OpenTelemetry collector's OTLP/HTTP trace receiver, on the mock core: it takes
//! `POST /v1/traces` in protobuf (`application/x-protobuf`, the exporters' default) or
//! OTLP/JSON (`application/json`), refuses what it cannot decode (400), answers as a
//! collector does (an empty `ExportTraceServiceResponse`), and hands the spans it got to
//! the test, decoded.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::Value;

use crate::mock::{Failure, Mock, Provider, Recorded, Reply, Resolved};

/// The receiver's behaviour: accepts traces, refuses anything else.
#[derive(Debug, Default)]
pub struct Otlp;

/// A running OTLP receiver.
pub type MockOtlp = Mock<Otlp>;

/// `Span.kind` values (the OTLP protobuf's `SpanKind`).
pub mod kind {
    /// SPAN_KIND_SERVER.
    pub const SERVER: i32 = 2;
    /// SPAN_KIND_CLIENT.
    pub const CLIENT: i32 = 3;
}

/// `Status.code` values.
pub mod status {
    /// STATUS_CODE_UNSET.
    pub const UNSET: i32 = 0;
    /// STATUS_CODE_ERROR.
    pub const ERROR: i32 = 2;
}

/// One span as received, with its resource's attributes.
#[derive(Clone, Debug)]
pub struct Span {
    /// Span name.
    pub name: String,
    /// Span kind (see [`kind`]).
    pub kind: i32,
    /// Trace id, lower-case hex.
    pub trace_id: String,
    /// Span id, lower-case hex.
    pub span_id: String,
    /// Parent span id, lower-case hex; empty for a root.
    pub parent_span_id: String,
    /// Attributes, as JSON values (strings, numbers, booleans, arrays).
    pub attributes: BTreeMap<String, Value>,
    /// Status code (see [`status`]).
    pub status: i32,
    /// The resource's attributes (`service.name`, ...).
    pub resource: BTreeMap<String, Value>,
}

impl Span {
    /// An attribute, `Value::Null` when missing.
    pub fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

impl Provider for Otlp {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        if req.method != Method::POST || req.path_only() != "/v1/traces" {
            return Some(Resolved::whole(
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"404 page not found"),
            ));
        }
        let json = req
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        let decoded = decode(req).is_some();
        Some(match (decoded, json) {
            (false, _) => Resolved::whole(
                StatusCode::BAD_REQUEST,
                "text/plain",
                Bytes::from_static(b"cannot decode the export request"),
            ),
            (true, true) => Resolved::whole(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(b"{}"),
            ),
            (true, false) => {
                Resolved::whole(StatusCode::OK, "application/x-protobuf", Bytes::new())
            }
        })
    }

    fn render(&self, _req: &Recorded, _reply: &Reply) -> Resolved {
        Resolved::whole(StatusCode::OK, "application/x-protobuf", Bytes::new())
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        Resolved::whole(failure.status, "text/plain", Bytes::new())
    }
}

impl Mock<Otlp> {
    /// Every span received so far, from protobuf and JSON exports alike.
    pub fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for req in self.requests() {
            let Some(export) = decode(&req) else {
                continue;
            };
            for resource_spans in export.resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(Span {
                            name: span.name,
                            kind: span.kind,
                            trace_id: crate::mock::hex(&span.trace_id),
                            span_id: crate::mock::hex(&span.span_id),
                            parent_span_id: crate::mock::hex(&span.parent_span_id),
                            attributes: attributes(&span.attributes),
                            status: span.status.map_or(status::UNSET, |s| s.code),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Waits (up to `limit`) until at least `n` spans arrived, and returns them all.
    pub async fn wait_for_spans(&self, n: usize, limit: Duration) -> Vec<Span> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let spans = self.spans();
            if spans.len() >= n || tokio::time::Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An export request, by its content type: OTLP/JSON (ids in hex) or protobuf.
fn decode(req: &Recorded) -> Option<ExportTraceServiceRequest> {
    let json = req
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        serde_json::from_slice(&req.body).ok()
    } else {
        ExportTraceServiceRequest::decode(req.body.as_ref()).ok()
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, value)))
        .collect()
}

fn value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(value).collect()),
        _ => Value::Null,
    }
}
