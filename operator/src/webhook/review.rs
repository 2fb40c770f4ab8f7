//! The admission review: reads an AdmissionReview of a Pod, looks up what the pure
//! decision ([`inject::inject`]) needs (the namespace's label, the VirtualKey's Secret),
//! and answers with the patch, a skip or a denial.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::reflector::{ObjectRef, Store};
use llmesh_crds::VirtualKey;
use prometheus::IntCounterVec;

use super::inject::{self, Config, Context, Outcome};

/// The path the webhook configuration calls.
pub const PATH: &str = "/inject";
/// Admission reviews are at most a few MiB (etcd's object limit is 1.5 MiB).
const MAX_BODY: usize = 8 << 20;

/// What every review reads.
pub(super) struct State {
    pub(super) config: Config,
    pub(super) client: kube::Client,
    pub(super) namespaces: Store<Namespace>,
    pub(super) counter: IntCounterVec,
}

fn reply(status: StatusCode, body: Vec<u8>, json: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let kind = if json {
        "application/json"
    } else {
        "text/plain"
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    response
}

/// Answers one request to the webhook.
pub(super) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != http::Method::POST || req.uri().path() != PATH {
        return Ok(reply(StatusCode::NOT_FOUND, b"not found\n".to_vec(), false));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}\n").into_bytes(),
                false,
            ));
        }
    };
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview of a Pod: {e}\n").into_bytes(),
                false,
            ));
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(_) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                b"the AdmissionReview has no request\n".to_vec(),
                false,
            ));
        }
    };
    let response = review_pod(&state, &request).await;
    let review: AdmissionReview<DynamicObject> = response.into_review();
    match serde_json::to_vec(&review) {
        Ok(body) => Ok(reply(StatusCode::OK, body, true)),
        Err(e) => Ok(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e}\n").into_bytes(),
            false,
        )),
    }
}

/// Looks up what the pure decision needs, decides, and answers.
async fn review_pod(state: &State, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
    let Some(pod) = &request.object else {
        return AdmissionResponse::from(request);
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    let enabled = |ns: &Namespace| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(inject::NAMESPACE_LABEL))
            .is_some_and(|v| v == inject::NAMESPACE_ENABLED)
    };
    let namespace_enabled = match state.namespaces.get(&ObjectRef::new(&namespace)) {
        Some(ns) => enabled(&ns),
        // A namespace created a moment ago may not have reached the watch yet.
        None => match Api::<Namespace>::all(state.client.clone())
            .get_opt(&namespace)
            .await
        {
            Ok(ns) => ns.as_ref().is_some_and(enabled),
            Err(e) => {
                tracing::warn!(namespace, error = %e, "cannot read the namespace");
                false
            }
        },
    };
    let mut warnings = Vec::new();
    let virtual_key_secret = match inject::virtual_key(pod) {
        None => None,
        Some(name) => {
            let api: Api<VirtualKey> = Api::namespaced(state.client.clone(), &namespace);
            match api.get_opt(name).await {
                Ok(Some(vk)) => Some(vk.secret_name()),
                // Not there yet (applied in the same sync, say): the default Secret name,
                // which the pod waits for like any missing Secret.
                Ok(None) => {
                    warnings.push(format!(
                        "llmesh: VirtualKey {name:?} not found in {namespace}; using Secret {name}-key"
                    ));
                    Some(format!("{name}-key"))
                }
                Err(e) => {
                    tracing::warn!(namespace, key = name, error = %e, "cannot read the VirtualKey");
                    warnings.push(format!(
                        "llmesh: cannot read VirtualKey {name:?}; using Secret {name}-key"
                    ));
                    Some(format!("{name}-key"))
                }
            }
        }
    };
    let ctx = Context {
        namespace: namespace.clone(),
        namespace_enabled,
        virtual_key_secret,
    };
    let (response, result) = respond(request, &state.config, &ctx, warnings);
    state.counter.with_label_values(&[result]).inc();
    response
}

/// The answer to an admission request, given what was looked up: the pure part of the
/// handler. `warnings` are the lookups' own. Returns the response and a metric label.
pub fn respond(
    request: &AdmissionRequest<Pod>,
    config: &Config,
    ctx: &Context,
    mut warnings: Vec<String>,
) -> (AdmissionResponse, &'static str) {
    let response = AdmissionResponse::from(request);
    let Some(pod) = &request.object else {
        return (response, "skipped");
    };
    let namespace = &ctx.namespace;
    let pod_name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let (response, result) = match inject::inject(pod, config, ctx) {
        Outcome::Patch(patch, more) => {
            warnings.extend(more);
            match response.clone().with_patch(patch) {
                Ok(r) => {
                    tracing::info!(namespace, pod = %pod_name, dry_run = request.dry_run, "injected the sidecar");
                    (r, "injected")
                }
                Err(e) => (response.deny(format!("llmesh: {e}")), "error"),
            }
        }
        Outcome::Skip(skip) => {
            warnings.extend(skip.warning());
            tracing::debug!(namespace, pod = %pod_name, ?skip, "not injected");
            (response, "skipped")
        }
        Outcome::Deny(message) => {
            tracing::info!(namespace, pod = %pod_name, %message, "pod refused");
            (response.deny(message), "denied")
        }
    };
    let mut response = response;
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    (response, result)
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
