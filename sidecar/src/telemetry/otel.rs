//! The OpenTelemetry trace pipeline: a tracer provider configured by the standard
//! `OTEL_*` variables, exporting OTLP over HTTP through the sidecar's own hyper client
//! (the upstream [`Transports`], so an OTLP endpoint behind a private CA is trusted as
//! upstreams are). Off unless an OTLP endpoint is set.
//!
//! Read by the SDK and the exporter themselves: `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `_HEADERS`, `_TIMEOUT`, `_PROTOCOL` (`http/protobuf` or `http/json`),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]` and the
//! batch processor's `OTEL_BSP_*`. Read here: whether tracing is on at all
//! (`OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER`, an endpoint).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::upstream::transports::Transports;

/// Largest OTLP response body read (a partial-success message); the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The exporter's timeout when `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` is unset (the
/// specification's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "llmesh-sidecar";

/// A running trace pipeline: the provider (its batch processor runs on a thread of its
/// own) and the tracer the request path uses.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// Why tracing could not start; the sidecar then serves without it.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry tracing is off: {0}")]
pub struct TracingError(String);

impl Tracing {
    /// Starts the pipeline if the environment asks for it (`Ok(None)` when it does not).
    /// Must run inside the tokio runtime: exports are sent on it.
    pub fn from_env(transports: Arc<Transports>) -> Result<Option<Tracing>, TracingError> {
        Self::from_vars(transports, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read from `var`.
    fn from_vars(
        transports: Arc<Transports>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Tracing>, TracingError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        if let Some(exporters) = set("OTEL_TRACES_EXPORTER") {
            let exporters = exporters.to_ascii_lowercase();
            if !exporters.split(',').any(|e| e.trim() == "otlp") {
                return Ok(None);
            }
        }
        if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .is_none()
        {
            return Ok(None);
        }
        let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        // Set here, not left to the exporter: with both encodings built in, its own
        // default would be JSON, where the specification's is protobuf.
        let protocol = match protocol.trim() {
            "http/protobuf" => Protocol::HttpBinary,
            "http/json" => Protocol::HttpJson,
            _ => {
                return Err(TracingError(format!(
                    "OTLP protocol `{protocol}` is not supported; use http/protobuf (the default) or http/json"
                )));
            }
        };
        let timeout = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .iter()
        .find_map(|name| set(name)?.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let client = OtlpClient {
            transports,
            runtime: tokio::runtime::Handle::current(),
            timeout,
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(protocol)
            .with_timeout(timeout)
            .build()
            .map_err(|e| TracingError(e.to_string()))?;
        let mut resource = Resource::builder();
        let named = set("OTEL_SERVICE_NAME").is_some()
            || set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
                attrs
                    .split(',')
                    .any(|kv| kv.trim().starts_with("service.name="))
            });
        if !named {
            resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
        }
        if let Some(pod) = set("POD_NAME") {
            resource = resource.with_attribute(KeyValue::new("k8s.pod.name", pod));
        }
        if let Some(namespace) = set("POD_NAMESPACE") {
            resource = resource.with_attribute(KeyValue::new("k8s.namespace.name", namespace));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        Ok(Some(Tracing { provider, tracer }))
    }

    /// The tracer spans are made with.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Exports what is still queued and stops the pipeline (at exit). Blocks: the batch
    /// processor's thread does the export, so call it from a blocking context.
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown_with_timeout(DEFAULT_TIMEOUT) {
            tracing::warn!(error = %err, "OpenTelemetry: spans may have been lost at exit");
        }
    }
}

/// The exporter's HTTP client: hands each export to the sidecar's runtime and its
/// upstream transport. The batch processor runs on a thread of its own, outside the
/// runtime, so the request is spawned onto it and its answer awaited.
struct OtlpClient {
    transports: Arc<Transports>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpClient").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Taken per export: a changed `--ca-file` applies to the next one.
        let transport = self.transports.default_transport();
        let timeout = self.timeout;
        // Errors travel as text: a boxed error cannot cross the spawn's `Send` bound
        // without losing its lifetime.
        let exported = self.runtime.spawn(async move {
            let send = async {
                let response = match transport.send(request.map(Full::new)).await {
                    Ok(response) => response,
                    Err(err) => return Err(err.to_string()),
                };
                let (parts, mut body) = response.into_parts();
                let mut read = bytes::BytesMut::new();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        let room = MAX_RESPONSE_BYTES.saturating_sub(read.len());
                        read.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Ok(Response::from_parts(parts, read.freeze()))
            };
            match tokio::time::timeout(timeout, send).await {
                Ok(result) => result,
                Err(_) => Err("the OTLP endpoint did not answer in time".to_owned()),
            }
        });
        match exported.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(HttpError::from(err)),
            Err(err) => Err(HttpError::from(err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tls::Trust;

    fn transports() -> Arc<Transports> {
        #[allow(clippy::unwrap_used)]
        Arc::new(Transports::new(Trust::default()).unwrap())
    }

    fn start(vars: &[(&str, &str)]) -> Result<Option<Tracing>, TracingError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Tracing::from_vars(transports(), move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[tokio::test]
    async fn off_without_an_endpoint_or_when_disabled() {
        assert!(start(&[]).unwrap().is_none());
        assert!(start(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9");
        assert!(
            start(&[endpoint, ("OTEL_SDK_DISABLED", "true")])
                .unwrap()
                .is_none()
        );
        assert!(
            start(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .is_none()
        );
        let on = start(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")]).unwrap();
        on.unwrap().shutdown();
        let traces_only = start(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:9/v1/traces",
        )]);
        traces_only.unwrap().unwrap().shutdown();
    }

    #[tokio::test]
    async fn grpc_is_refused_with_a_reason() {
        let err = start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .err()
        .unwrap();
        assert!(err.to_string().contains("`grpc` is not supported"), "{err}");
    }
}
