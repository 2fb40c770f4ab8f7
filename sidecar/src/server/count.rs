//! `POST /v1/messages/count_tokens` at the API's edge: the key may call the model, the
//! body is a Messages request; the count comes from the provider where it has one and
//! is estimated elsewhere (`x-llmesh-token-count: estimated` says which).

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::api::Proxy;
use super::body::ProxyBody;
use super::error::ApiError;
use super::request::read_limited;
use crate::meter::keys::Key;
use crate::router::count;
use crate::router::routes::{Model, Routes};

/// The model a count is for, if the body names one the key may call.
fn target(
    routes: &Routes,
    key: Option<&Key>,
    body: &Map<String, Value>,
) -> Result<Arc<Model>, ApiError> {
    let Some(Value::String(name)) = body.get("model") else {
        return Err(ApiError::invalid_request("model: Field required").with_param("model"));
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(ApiError::invalid_request("messages: Field required").with_param("messages"));
    }
    if key.is_some_and(|k| !k.allows(name)) {
        return Err(ApiError::model_not_found(name));
    }
    routes
        .model(name)
        .cloned()
        .ok_or_else(|| ApiError::model_not_found(name))
}

/// Serves one count.
pub async fn count_tokens(
    proxy: Arc<Proxy>,
    routes: Arc<Routes>,
    key: Option<Arc<Key>>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ApiError> {
    let (parts, body) = request.into_parts();
    let read = read_limited(body, proxy.max_body_bytes, &proxy.body_bytes);
    let (bytes, buffered) = tokio::time::timeout(proxy.body_timeout, read)
        .await
        .map_err(|_| ApiError::body_timeout(proxy.body_timeout))??;
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(body)) => body,
        _ => {
            return Err(ApiError::invalid_request(
                "The request body must be a JSON object.",
            ));
        }
    };
    drop((bytes, buffered));
    let model = target(&routes, key.as_deref(), &body)?;
    let beta = parts
        .headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let counted = count::count_tokens(model, body, beta).await;
    let mut response = Response::new(ProxyBody::full(counted.body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-llmesh-token-count",
        HeaderValue::from_static(if counted.estimated {
            "estimated"
        } else {
            "provider"
        }),
    );
    Ok(response)
}
