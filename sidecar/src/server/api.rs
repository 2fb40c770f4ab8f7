//! The OpenAI-compatible API: routes requests, runs the dispatcher and shapes every
//! answer, success or failure, the way OpenAI's SDKs expect.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::error::ApiError;
use super::request::{parse_call, read_limited};
use crate::config::routes::{Model, Routes};
use crate::config::snapshot::Pricing;
use crate::meter::usage::Usage;
use crate::meter::{Meter, Outcome};
use crate::metrics::Metrics;
use crate::provider::Endpoint;
use crate::router::dispatch::{Answer, Trace, dispatch};
use crate::router::relay::StreamEnd;

/// Everything the API handler needs; shared by all connections.
pub struct Proxy {
    /// The routing table in use; `None` until the first config arrives.
    pub routes: watch::Receiver<Option<Arc<Routes>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// Keys, limits, budgets and usage.
    pub meter: Arc<Meter>,
}

/// Handles one API request. Never fails: every error becomes an OpenAI-shaped answer.
pub async fn handle(proxy: Arc<Proxy>, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let path = request.uri().path();
    // Clients configured with a base URL with or without `/v1` both work.
    let route = path.strip_prefix("/v1").unwrap_or(path);
    let endpoint = match route {
        "/chat/completions" => Some(Endpoint::ChatCompletions),
        "/completions" => Some(Endpoint::Completions),
        "/embeddings" => Some(Endpoint::Embeddings),
        _ => None,
    };
    let method = request.method().clone();
    match (endpoint, &method) {
        (Some(endpoint), &Method::POST) => {
            return complete(proxy, endpoint, request, started).await;
        }
        (Some(_), _) => return error_response(&ApiError::method_not_allowed(&method, path), None),
        (None, _) => {}
    }
    let routes = proxy.routes.borrow().clone();
    match (route, &method) {
        ("/models", &Method::GET) => match routes {
            Some(routes) => models(&routes),
            None => error_response(&ApiError::not_ready(), None),
        },
        (r, &Method::GET) if r.starts_with("/models/") => {
            let id = &r["/models/".len()..];
            match routes {
                Some(routes) if routes.model(id).is_some() => {
                    json_response(StatusCode::OK, &model_object(id))
                }
                Some(_) => error_response(&ApiError::model_not_found(id), None),
                None => error_response(&ApiError::not_ready(), None),
            }
        }
        ("/models", _) => error_response(&ApiError::method_not_allowed(&method, path), None),
        _ => error_response(&ApiError::unknown_route(&method, path), None),
    }
}

async fn complete(
    proxy: Arc<Proxy>,
    endpoint: Endpoint,
    request: Request<Incoming>,
    started: Instant,
) -> Response<ProxyBody> {
    let metrics = &proxy.metrics;
    let Some(routes) = proxy.routes.borrow().clone() else {
        return error_response(&ApiError::not_ready(), None);
    };
    let (parts, body) = request.into_parts();
    let bytes = match read_limited(body, proxy.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => return rejected(metrics, &err),
    };
    let (model_name, mut call) = match parse_call(endpoint, &bytes) {
        Ok(parsed) => parsed,
        Err(err) => return rejected(metrics, &err),
    };
    drop(bytes);
    let key = match proxy.meter.authenticate(&routes, &parts.headers) {
        Ok(key) => key,
        Err(err) => return rejected(metrics, &err),
    };
    let Some(requested) = routes.model(&model_name).cloned() else {
        return rejected(metrics, &ApiError::model_not_found(&model_name));
    };
    let admission = match proxy
        .meter
        .admit(&routes, key, requested.clone(), &call)
        .await
    {
        Ok(admission) => admission,
        Err(err) => return rejected(metrics, &err),
    };
    let strip_usage = call.stream && ask_for_usage(&mut call);
    metrics.in_flight.inc();
    let in_flight = InFlightGauge(metrics.clone());
    let mut trace = Trace::default();
    let model = admission.model.clone();
    let result = dispatch(&routes, &model, &call, metrics, started, &mut trace).await;
    let overhead = started
        .elapsed()
        .saturating_sub(trace.upstream)
        .saturating_sub(trace.waiting);
    metrics
        .overhead
        .with_label_values(&[endpoint.as_str()])
        .observe(overhead.as_secs_f64());
    let success = match result {
        Ok(success) => success,
        Err(err) => {
            let served = trace.last.as_ref().map(|(m, i)| {
                let d = &m.deployments[*i];
                (m.name.as_str(), d.name.as_str(), d.provider_label)
            });
            metrics
                .requests
                .with_label_values(&[
                    requested.name.as_str(),
                    served.map_or("", |s| s.1),
                    served.map_or("", |s| s.2),
                    err.status.as_str(),
                ])
                .inc();
            metrics
                .request_duration
                .with_label_values(&[requested.name.as_str(), endpoint.as_str()])
                .observe(started.elapsed().as_secs_f64());
            tracing::info!(
                target: "llmesh::access",
                endpoint = endpoint.as_str(), model = %requested.name, served_by = served.map_or("", |s| s.0),
                deployment = served.map_or("", |s| s.1), status = err.status.as_u16(), attempts = trace.attempts,
                duration_ms = started.elapsed().as_millis() as u64, error = %err.message,
                "request failed"
            );
            proxy.meter.settle(
                admission,
                &Outcome {
                    requested: &requested.name,
                    served,
                    pricing: Pricing::default(),
                    usage: None,
                    maybe_billed: false,
                    status: err.status,
                    latency: started.elapsed(),
                },
            );
            drop(in_flight);
            return error_response(&err, Some((&trace, overhead)));
        }
    };
    // Shared handles, not copies of names: the stream's end callback keeps them.
    let served = Served {
        requested,
        model: success.model,
        deployment: success.deployment,
    };
    let mut response = match success.answer {
        Answer::Full(body, usage) => {
            record_success(metrics, &served, endpoint, started, trace.attempts, None);
            proxy
                .meter
                .settle(admission, &served.outcome(usage, false, started));
            drop(in_flight);
            let mut response = Response::new(ProxyBody::full(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Answer::Stream(mut relay) => {
            metrics
                .time_to_first_token
                .with_label_values(&[served.requested.name.as_str()])
                .observe(started.elapsed().as_secs_f64());
            if strip_usage {
                relay.strip_usage();
            }
            let metrics = metrics.clone();
            let attempts = trace.attempts;
            let served = served.clone();
            let proxy = proxy.clone();
            relay.on_end(Box::new(move |end, usage| {
                record_success(&metrics, &served, endpoint, started, attempts, Some(end));
                // Cut short or not, a stream without a usage report may have been billed.
                proxy
                    .meter
                    .settle(admission, &served.outcome(usage, usage.is_none(), started));
                drop(in_flight);
            }));
            let mut response = Response::new(ProxyBody::Stream(relay));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&served.model.deployments[served.deployment].name) {
        headers.insert("x-llmesh-deployment", value);
    }
    if let Ok(value) = HeaderValue::from_str(&served.model.name) {
        headers.insert("x-llmesh-model", value);
    }
    trace_headers(headers, &trace, overhead);
    response
}

/// Makes a streaming call ask for the usage chunk, which metering needs. True when the
/// client had not asked for it, so the relay removes it again.
fn ask_for_usage(call: &mut crate::router::dispatch::Call) -> bool {
    if call.endpoint == Endpoint::Embeddings {
        return false;
    }
    let options = call
        .body
        .entry("stream_options")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    let Some(options) = options.as_object_mut() else {
        // A malformed `stream_options` is the provider's to refuse, as it is.
        return false;
    };
    if options
        .get("include_usage")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        return false;
    }
    options.insert("include_usage".into(), serde_json::Value::Bool(true));
    true
}

/// Who served a request: the model asked for, the model that answered (a fallback,
/// maybe) and its deployment.
#[derive(Clone)]
struct Served {
    requested: Arc<Model>,
    model: Arc<Model>,
    deployment: usize,
}

impl Served {
    fn outcome(&self, usage: Option<Usage>, maybe_billed: bool, started: Instant) -> Outcome<'_> {
        let d = &self.model.deployments[self.deployment];
        Outcome {
            requested: &self.requested.name,
            served: Some((&self.model.name, &d.name, d.provider_label)),
            pricing: d.pricing,
            usage,
            maybe_billed,
            status: StatusCode::OK,
            latency: started.elapsed(),
        }
    }
}

fn record_success(
    metrics: &Metrics,
    served: &Served,
    endpoint: Endpoint,
    started: Instant,
    attempts: u32,
    end: Option<StreamEnd>,
) {
    let requested = served.requested.name.as_str();
    let deployment = &served.model.deployments[served.deployment];
    metrics
        .requests
        .with_label_values(&[
            requested,
            deployment.name.as_str(),
            deployment.provider_label,
            "200",
        ])
        .inc();
    let elapsed = started.elapsed();
    metrics
        .request_duration
        .with_label_values(&[requested, endpoint.as_str()])
        .observe(elapsed.as_secs_f64());
    tracing::debug!(
        target: "llmesh::access",
        endpoint = endpoint.as_str(), model = requested, attempts,
        stream_end = end.map(|e| match e {
            StreamEnd::Complete => "complete",
            StreamEnd::Failed => "failed",
            StreamEnd::ClientGone => "client_gone",
        }),
        "request served"
    );
}

/// Keeps the in-flight gauge up while a request (or its stream) lives.
struct InFlightGauge(Arc<Metrics>);

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// A request refused before routing (bad input, unknown model).
fn rejected(metrics: &Metrics, err: &ApiError) -> Response<ProxyBody> {
    metrics
        .requests
        .with_label_values(&["", "", "", err.status.as_str()])
        .inc();
    error_response(err, None)
}

fn trace_headers(headers: &mut http::HeaderMap, trace: &Trace, overhead: Duration) {
    headers.insert("x-llmesh-attempts", HeaderValue::from(trace.attempts));
    let ms = format!("{:.3}", overhead.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&ms) {
        headers.insert("x-llmesh-overhead-ms", value);
    }
}

/// An error answer; `trace` adds the attempt headers once routing ran.
pub fn error_response(err: &ApiError, trace: Option<(&Trace, Duration)>) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(err.body()));
    *response.status_mut() = err.status;
    err.apply_headers(response.headers_mut());
    if let Some((trace, overhead)) = trace {
        trace_headers(response.headers_mut(), trace, overhead);
    }
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn model_object(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "llmesh"})
}

fn models(routes: &Routes) -> Response<ProxyBody> {
    let data: Vec<_> = routes.names().iter().map(|n| model_object(n)).collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}
