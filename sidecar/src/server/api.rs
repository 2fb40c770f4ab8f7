//! The OpenAI-compatible API: routes requests, runs the dispatcher and shapes every
//! answer, success or failure, the way OpenAI's SDKs expect.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::detached::Detached;
use super::error::ApiError;
use super::exchange::Exchange;
use super::request::{parse_call, read_limited};
use crate::config::routes::Routes;
use crate::meter::Meter;
use crate::meter::keys::Key;
use crate::metrics::Metrics;
use crate::provider::Endpoint;
use crate::router::dispatch::{Answer, Trace, dispatch};

/// Everything the API handler needs; shared by all connections.
pub struct Proxy {
    /// The routing table in use; `None` until the first config arrives.
    pub routes: watch::Receiver<Option<Arc<Routes>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// How long a client has to send its whole body.
    pub body_timeout: Duration,
    /// Request body bytes all connections may buffer at once.
    pub body_bytes: Arc<Semaphore>,
    /// Keys, limits, budgets and usage.
    pub meter: Arc<Meter>,
    /// Plain calls' routing tasks, which outlive a client that leaves.
    pub detached: Arc<Detached>,
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
    let Some(routes) = proxy.routes.borrow().clone() else {
        return error_response(&ApiError::not_ready(), None);
    };
    match (route, &method) {
        ("/models", &Method::GET) => match proxy.meter.authenticate(&routes, request.headers()) {
            Ok(key) => models(&routes, key.as_deref()),
            Err(err) => error_response(&err, None),
        },
        (r, &Method::GET) if r.starts_with("/models/") => {
            let id = &r["/models/".len()..];
            let key = match proxy.meter.authenticate(&routes, request.headers()) {
                Ok(key) => key,
                Err(err) => return error_response(&err, None),
            };
            // A model the key may not call is not shown to exist.
            match key {
                Some(key) if !key.allows(id) => {
                    error_response(&ApiError::model_not_found(id), None)
                }
                _ if routes.model(id).is_some() => json_response(StatusCode::OK, &model_object(id)),
                _ => error_response(&ApiError::model_not_found(id), None),
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
    // Ends the request (metrics, log, settling) however this function is left.
    let mut exchange = Exchange::new(proxy.clone(), endpoint, started);
    let Some(routes) = proxy.routes.borrow().clone() else {
        return refuse(&mut exchange, &ApiError::not_ready());
    };
    let (parts, body) = request.into_parts();
    // The key comes from the headers: a caller without one is refused before its body
    // is read, so no one can make the sidecar buffer bodies without a key.
    let key = match proxy.meter.authenticate(&routes, &parts.headers) {
        Ok(key) => key,
        Err(err) => return refuse(&mut exchange, &err),
    };
    let read = read_limited(body, proxy.max_body_bytes, &proxy.body_bytes);
    let (bytes, buffered) = match tokio::time::timeout(proxy.body_timeout, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(err)) => return refuse(&mut exchange, &err),
        Err(_) => return refuse(&mut exchange, &ApiError::body_timeout(proxy.body_timeout)),
    };
    let (model_name, mut call) = match parse_call(endpoint, &bytes) {
        Ok(parsed) => parsed,
        Err(err) => return refuse(&mut exchange, &err),
    };
    drop((bytes, buffered));
    let Some(requested) = routes.model(&model_name).cloned() else {
        return refuse(&mut exchange, &ApiError::model_not_found(&model_name));
    };
    exchange.set_requested(requested.clone());
    let admission = match proxy.meter.admit(&routes, key, requested.clone(), &call) {
        Ok(admission) => admission,
        Err(err) => return refuse(&mut exchange, &err),
    };
    exchange.admitted(requested.clone(), admission);
    let strip_usage = call.stream && ask_for_usage(&mut call);
    let metrics = &proxy.metrics;
    // The trace stays in the exchange while routing runs: a client leaving mid-way
    // ends the request knowing whether an upstream was reached.
    let result = if call.stream {
        // A stream's upstream is cut when its client leaves: it is routed here.
        match exchange.routing() {
            (trace, Some(gate)) => {
                dispatch(&routes, &requested, &call, metrics, started, trace, gate).await
            }
            (_, None) => Err(ApiError::internal("admitted call without an admission")),
        }
    } else {
        // A plain call runs to its end even if the client leaves, so it is charged what
        // it cost (see `detached`).
        exchange
            .route_detached(routes.clone(), requested.clone(), call)
            .await
    };
    let overhead = started
        .elapsed()
        .saturating_sub(exchange.trace.upstream)
        .saturating_sub(exchange.trace.waiting);
    metrics
        .overhead
        .with_label_values(&[endpoint.as_str()])
        .observe(overhead.as_secs_f64());
    let success = match result {
        Ok(success) => success,
        Err(err) => {
            exchange.failed(err.status, &err.message);
            return error_response(&err, Some((&exchange.trace, overhead)));
        }
    };
    let (model, deployment) = (success.model, success.deployment);
    let mut response = match success.answer {
        Answer::Full(body, usage) => {
            let mut response = Response::new(ProxyBody::full(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            exchange.served(model.clone(), deployment, usage);
            response
        }
        Answer::Stream(relay) => {
            metrics
                .time_to_first_token
                .with_label_values(&[requested.name.as_str()])
                .observe(started.elapsed().as_secs_f64());
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
    if let Ok(value) = HeaderValue::from_str(&model.deployments[deployment].name) {
        headers.insert("x-llmesh-deployment", value);
    }
    if let Ok(value) = HeaderValue::from_str(&model.name) {
        headers.insert("x-llmesh-model", value);
    }
    trace_headers(headers, &exchange.trace, overhead);
    if let ProxyBody::Stream(relay) = response.body_mut() {
        if strip_usage {
            relay.strip_usage();
        }
        // The stream's end ends the request; a relay dropped before it starts (the
        // client gone before the headers went out) drops the callback, and with it the
        // exchange, which ends the request as the client's leaving.
        relay.on_end(Box::new(move |end, usage| {
            exchange.streamed(model, deployment, end, usage);
        }));
    }
    response
}

/// Refuses a request: its exchange ends with this error, which is the answer.
fn refuse(exchange: &mut Exchange, err: &ApiError) -> Response<ProxyBody> {
    exchange.failed(err.status, &err.message);
    error_response(err, None)
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

/// The models `key` may call: all of them in a namespace without keys.
fn models(routes: &Routes, key: Option<&Key>) -> Response<ProxyBody> {
    let data: Vec<_> = routes
        .names()
        .iter()
        .filter(|n| key.is_none_or(|k| k.allows(n)))
        .map(|n| model_object(n))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}
