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
use super::cached::{self, Hit, Lookup};
use super::detached::Detached;
use super::error::{ApiError, Render, status_and_body};
use super::exchange::Exchange;
use super::request::{parse_call, read_limited};
use super::store::Store;
use super::{count, kept};
use crate::cache::Outcome;
use crate::domain::{Api, Endpoint};
use crate::meter::Meter;
use crate::meter::keys::Key;
use crate::metrics::Metrics;
use crate::router::dispatch::{Success, Trace};
use crate::router::routes::Routes;

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
    /// The Responses API's stored responses.
    pub responses: Arc<Store>,
    /// Makes the calls' spans, when OpenTelemetry tracing is on.
    pub tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
}

/// Handles one API request. Never fails: every error becomes an answer in the shape of
/// the client's API (Anthropic's under `/v1/messages`, OpenAI's elsewhere).
pub async fn handle(proxy: Arc<Proxy>, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let path = path.as_str();
    // Clients configured with a base URL with or without `/v1` both work.
    let route = path.strip_prefix("/v1").unwrap_or(path);
    let endpoint = Endpoint::from_route(route);
    let method = request.method().clone();
    let api = if route.starts_with("/messages") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    match (endpoint, &method) {
        (Some(endpoint), &Method::POST) => {
            return complete(proxy, endpoint, request, started).await;
        }
        (Some(_), _) => {
            return error_response(api, &ApiError::method_not_allowed(&method, path), None);
        }
        (None, _) => {}
    }
    let known = matches!(route, "/models" | "/messages/count_tokens")
        || route.starts_with("/models/")
        || route.starts_with("/responses/");
    if !known {
        return error_response(api, &ApiError::unknown_route(&method, path), None);
    }
    let Some(routes) = proxy.routes.borrow().clone() else {
        return error_response(api, &ApiError::not_ready(), None);
    };
    let key = match proxy.meter.authenticate(&routes, request.headers()) {
        Ok(key) => key,
        Err(err) => return error_response(api, &err, None),
    };
    // Anthropic's SDKs list models with `anthropic-version` set, and read its shape.
    let listing = if request.headers().contains_key("anthropic-version") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    if route == "/messages/count_tokens" && method == Method::POST {
        return count::count_tokens(proxy.clone(), routes, key, request)
            .await
            .unwrap_or_else(|err| error_response(Api::Anthropic, &err, None));
    }
    let result = match (route, &method) {
        ("/models", &Method::GET) => Ok(models(&routes, key.as_deref(), listing)),
        (r, &Method::GET) if r.starts_with("/models/") => {
            let id = &r["/models/".len()..];
            // A model the key may not call is not shown to exist.
            match key {
                Some(key) if !key.allows(id) => Err(ApiError::model_not_found(id)),
                _ if routes.model(id).is_some() => {
                    Ok(json_response(StatusCode::OK, &model_object(id, listing)))
                }
                _ => Err(ApiError::model_not_found(id)),
            }
        }
        (r, &Method::GET | &Method::DELETE) if r.starts_with("/responses/") => {
            let owner = key.as_ref().map(|k| k.name.as_str());
            kept::serve(&proxy, &method, &r["/responses/".len()..], owner)
        }
        ("/models" | "/messages/count_tokens", _) => {
            Err(ApiError::method_not_allowed(&method, path))
        }
        _ => Err(ApiError::unknown_route(&method, path)),
    };
    result.unwrap_or_else(|err| error_response(api, &err, None))
}

/// Serves one completion call. The exchange is the request's guard: however the call
/// ends, it ends in [`Exchange::respond`], and the exchange's drop settles it.
async fn complete(
    proxy: Arc<Proxy>,
    endpoint: Endpoint,
    request: Request<Incoming>,
    started: Instant,
) -> Response<ProxyBody> {
    let mut exchange = Exchange::new(proxy.clone(), endpoint, started);
    exchange.start_span(request.headers());
    match serve(&proxy, &mut exchange, endpoint, request).await {
        Ok(Served::Cached(hit)) => exchange.respond_hit(hit),
        Ok(Served::Routed(success)) => exchange.respond(Ok(success)),
        Err(err) => exchange.respond(Err(err)),
    }
}

/// How a call was answered: by an upstream, or from the response cache.
enum Served {
    Routed(Success),
    Cached(Hit),
}

/// Authenticates, reads, validates, admits and routes one call, or answers it from the
/// response cache: a hit is admitted like any call (key, model, rpm and parallel
/// limits) but with no tokens, and enters no model, so it reserves and spends nothing.
async fn serve(
    proxy: &Proxy,
    exchange: &mut Exchange,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Result<Served, ApiError> {
    let routes = proxy
        .routes
        .borrow()
        .clone()
        .ok_or_else(ApiError::not_ready)?;
    let (parts, body) = request.into_parts();
    let key = proxy.meter.authenticate(&routes, &parts.headers)?;
    let read = read_limited(body, proxy.max_body_bytes, &proxy.body_bytes);
    let (bytes, buffered) = tokio::time::timeout(proxy.body_timeout, read)
        .await
        .map_err(|_| ApiError::body_timeout(proxy.body_timeout))??;
    let (model_name, mut call) = parse_call(endpoint, &bytes)?;
    drop((bytes, buffered));
    call.anthropic_beta = parts
        .headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if endpoint == Endpoint::Responses {
        let owner = key.as_ref().map(|k| k.name.as_str());
        let prepared = kept::prepare(proxy, &mut call, owner)?;
        exchange.keep = prepared.keep;
        exchange.continued = prepared.continued;
    }
    let requested = routes
        .model(&model_name)
        .cloned()
        .ok_or_else(|| ApiError::model_not_found(&model_name))?;
    exchange.set_requested(requested.clone());
    exchange.capture_input(&call);
    let scope = key.as_deref().map(|k| k.name.as_str());
    let stateful = exchange.continued.is_some();
    let lookup = cached::lookup(&requested, &call, scope, &parts.headers, stateful);
    if let Lookup::Hit(_) = lookup {
        // A hit takes no tokens: the key's rpm and parallel limits count it, its tpm
        // does not.
        call.estimated_tokens = 0;
    }
    let mut admission = proxy.meter.admit(&routes, key, requested.clone(), &call)?;
    match lookup {
        Lookup::Off => {}
        Lookup::Hit(hit) => {
            admission.set_cache(Outcome::Hit, hit.saved_micros);
            cached::count(&proxy.metrics, &requested, Outcome::Hit);
            exchange.admitted(admission);
            return Ok(Served::Cached(hit));
        }
        Lookup::Routed(outcome, pending) => {
            admission.set_cache(outcome, 0);
            cached::count(&proxy.metrics, &requested, outcome);
            exchange.cache = Some((outcome, pending));
        }
    }
    exchange.admitted(admission);
    let success = if call.stream {
        // A stream is relayed by this task: a client that leaves ends it.
        exchange.route(&routes, &requested, &call).await
    } else {
        // A whole answer is routed in its own task, which finishes (and is metered)
        // even if the client leaves (see `detached`).
        exchange.route_detached(routes, requested, call).await
    };
    success.map(Served::Routed)
}

pub(super) fn trace_headers(headers: &mut http::HeaderMap, trace: &Trace, overhead: Duration) {
    headers.insert("x-llmesh-attempts", HeaderValue::from(trace.attempts));
    let ms = format!("{:.3}", overhead.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&ms) {
        headers.insert("x-llmesh-overhead-ms", value);
    }
}

/// An error answer in `api`'s shape; `trace` adds the attempt headers once routing ran.
pub fn error_response(
    api: Api,
    err: &ApiError,
    trace: Option<(&Trace, Duration)>,
) -> Response<ProxyBody> {
    let (status, body) = status_and_body(api, err);
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    err.apply_headers(response.headers_mut());
    if let Some((trace, overhead)) = trace {
        trace_headers(response.headers_mut(), trace, overhead);
    }
    response
}

pub(super) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn model_object(id: &str, api: Api) -> serde_json::Value {
    match api {
        Api::OpenAi => json!({"id": id, "object": "model", "created": 0, "owned_by": "llmesh"}),
        Api::Anthropic => json!({
            "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"
        }),
    }
}

/// The models `key` may call: all of them in a namespace without keys.
fn models(routes: &Routes, key: Option<&Key>, api: Api) -> Response<ProxyBody> {
    let names: Vec<&String> = routes
        .names()
        .iter()
        .filter(|n| key.is_none_or(|k| k.allows(n)))
        .collect();
    let data: Vec<_> = names.iter().map(|n| model_object(n, api)).collect();
    let body = match api {
        Api::OpenAi => json!({"object": "list", "data": data}),
        Api::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        }),
    };
    json_response(StatusCode::OK, &body)
}
