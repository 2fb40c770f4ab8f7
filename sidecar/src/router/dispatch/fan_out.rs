//! One attempt sent as several upstream requests: a call the provider takes only in
//! pieces (see [`Dialect::split`](crate::provider::Dialect::split); embeddings of several
//! inputs on Titan or Vertex AI's `gemini-embedding`).
//!
//! The pieces go out concurrently, at most [`CONCURRENCY`] at a time, each built by the
//! dialect, authenticated with the deployment's credential and bounded by the call's
//! deadline; their whole answers come back in request order for the dialect to
//! [`merge`](crate::provider::Dialect::merge). The first piece to fail fails the attempt
//! with that piece's error, classified as one request's would be (the pieces still
//! running are dropped), so retries, cooldowns and fallbacks treat the attempt as one
//! call. The answers together are held to the size limit one whole answer has.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{Answer, Clock, MAX_UPSTREAM_BODY, Trace, classify, failed, send, translate_failure};
use crate::domain::{CallView, ErrorClass, UpstreamError};
use crate::metrics::Metrics;
use crate::provider::UnsignedRequest;
use crate::router::routes::Deployment;
use crate::upstream::UpstreamBody;

/// Pieces of one call in flight at once: enough to hide one request's latency behind
/// the others', few enough not to trip the upstream's own rate limits in a burst.
pub const CONCURRENCY: usize = 8;

/// Sends `pieces` and merges their answers into one whole answer: one call in flight on
/// the deployment, its wait timed into `trace` and the latency metric, the tokens used
/// settled against the deployment's limits.
pub(super) async fn attempt(
    deployment: &Deployment,
    view: &CallView<'_>,
    pieces: Vec<UnsignedRequest>,
    deadline: Instant,
    trace: &mut Trace,
    metrics: &Metrics,
    estimated_tokens: u64,
) -> Result<Answer, UpstreamError> {
    let _in_flight = deployment.state.start();
    let mut clock = Clock {
        sent: Instant::now(),
        trace,
        metrics,
        deployment,
    };
    let budget = AtomicUsize::new(MAX_UPSTREAM_BODY);
    let answers: Result<Vec<Bytes>, UpstreamError> = stream::iter(pieces)
        .map(|request| piece(deployment, request, deadline, &budget))
        .buffered(CONCURRENCY)
        .try_collect()
        .await;
    let waited = clock.stop();
    let reply = deployment
        .dialect
        .merge(view, answers?)
        .map_err(|e| translate_failure(e, deployment))?;
    deployment.state.observe_latency(waited);
    if let Some(usage) = reply.usage {
        deployment
            .state
            .settle_tokens(Instant::now(), estimated_tokens, usage.total());
    }
    Ok(Answer::Full(reply))
}

/// Sends one piece and reads its whole answer, or says why it failed.
async fn piece(
    deployment: &Deployment,
    request: UnsignedRequest,
    deadline: Instant,
    budget: &AtomicUsize,
) -> Result<Bytes, UpstreamError> {
    let (parts, body) = send(deployment, request, deadline).await?;
    if !parts.status.is_success() {
        return Err(classify(deployment, &parts, body, deadline).await);
    }
    read_within(body, budget, deadline)
        .await
        .map_err(|class| failed(class, deployment, "failed while sending its answer"))
}

/// Reads a whole answer by `deadline`, taking its size out of the `budget` the pieces
/// share, so all of them together stay within one answer's limit.
async fn read_within(
    mut body: UpstreamBody,
    budget: &AtomicUsize,
    deadline: Instant,
) -> Result<Bytes, ErrorClass> {
    let collect = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| ErrorClass::Server)?.into_data() else {
                continue;
            };
            budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(data.len())
                })
                .map_err(|_| ErrorClass::Server)?;
            if buf.is_empty() && body.is_end_stream() {
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout_at(deadline, collect)
        .await
        .unwrap_or(Err(ErrorClass::Timeout))
}
