//! The admin server, on its own port: `/metrics` for Prometheus, `/healthz` (the process
//! is up) and `/readyz` (a config has arrived, so the API can serve).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use super::body::ProxyBody;
use crate::config::routes::Routes;
use crate::metrics::Metrics;

/// What the admin handler reads.
pub struct Admin {
    /// The routing table in use.
    pub routes: watch::Receiver<Option<Arc<Routes>>>,
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
}

/// Handles one admin request.
pub fn handle<B>(admin: &Admin, request: &Request<B>) -> Response<ProxyBody> {
    let text = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(ProxyBody::full(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/healthz" | "/live" => text(StatusCode::OK, "ok\n"),
        "/readyz" | "/ready" => {
            if admin.routes.borrow().is_some() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "waiting for config\n")
            }
        }
        "/metrics" => {
            let routes = admin.routes.borrow().clone();
            let mut response =
                Response::new(ProxyBody::full(admin.metrics.render(routes.as_deref())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
