//! `POST /v1/messages/count_tokens`: asked of the first deployment whose provider counts
//! tokens itself (Anthropic), else estimated from the request's size. Counting spends
//! no tokens, so it is neither retried across deployments nor metered.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};
use tokio::time::Instant;

use std::sync::Arc;

use crate::domain::{CallView, Endpoint};
use crate::provider::{Credential, UnsignedRequest};
use crate::router::routes::Model;
use crate::upstream::Transport;

/// Largest count answer read from an upstream.
const MAX_ANSWER: usize = 64 * 1024;

/// A token count and how it was made.
pub struct Count {
    /// The answer's body, Anthropic's `{"input_tokens": N}`.
    pub body: Bytes,
    /// Whether the sidecar estimated it rather than a provider counting it.
    pub estimated: bool,
}

/// Counts the input tokens of a Messages request `body` for `model`.
pub async fn count_tokens(
    model: Arc<Model>,
    body: Map<String, Value>,
    beta: Option<String>,
) -> Count {
    let deadline = Instant::now() + model.total_timeout;
    if let Some((request, credential, transport)) = counter(&model, &body, beta.as_deref()) {
        let answer = ask(credential, transport, request);
        if let Ok(Some(body)) = tokio::time::timeout_at(deadline, answer).await {
            return Count {
                body,
                estimated: false,
            };
        }
        tracing::debug!(model = %model.name, "token count failed upstream: estimating");
    }
    Count {
        body: Bytes::from(format!("{{\"input_tokens\":{}}}", estimate(&body))),
        estimated: true,
    }
}

/// The count request of the first deployment whose provider counts, and what sends it.
fn counter(
    model: &Model,
    body: &Map<String, Value>,
    beta: Option<&str>,
) -> Option<(UnsignedRequest, Credential, Arc<dyn Transport>)> {
    model.deployments.iter().find_map(|deployment| {
        let view = CallView {
            endpoint: Endpoint::Messages,
            body,
            stream: false,
            model: &deployment.upstream_model,
            default_max_tokens: model.default_max_tokens,
            anthropic_beta: beta,
        };
        let request = deployment.dialect.count_tokens(&view)?.ok()?;
        Some((
            request,
            deployment.credential.clone(),
            deployment.transport.clone(),
        ))
    })
}

/// Sends a count request; the count, if the upstream answered one.
async fn ask(
    credential: Credential,
    transport: Arc<dyn Transport>,
    mut request: UnsignedRequest,
) -> Option<Bytes> {
    credential.apply(&mut request).await.ok()?;
    let response = transport.send(request.map(Full::new)).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut upstream = response.into_body();
    let mut body = bytes::BytesMut::new();
    while let Some(frame) = upstream.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if body.len() + data.len() > MAX_ANSWER {
                return None;
            }
            body.extend_from_slice(&data);
        }
    }
    // Only a well-formed count is handed on.
    let count: Value = serde_json::from_slice(&body).ok()?;
    count.get("input_tokens")?.as_u64()?;
    Some(body.freeze())
}

/// About four bytes of JSON per token, over what the model reads: the system prompt,
/// the messages and the tools.
fn estimate(body: &Map<String, Value>) -> u64 {
    let bytes: usize = ["system", "messages", "tools"]
        .iter()
        .filter_map(|f| body.get(*f))
        .map(|v| serde_json::to_vec(v).map_or(0, |b| b.len()))
        .sum();
    (bytes as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn estimates_from_what_the_model_reads() {
        let body = json!({"model": "m", "max_tokens": 100000, "messages": [{"role": "user", "content": "abcdefgh"}]});
        let n = estimate(body.as_object().unwrap());
        // [{"role":"user","content":"abcdefgh"}] is 38 bytes.
        assert_eq!(n, 10);
    }
}
