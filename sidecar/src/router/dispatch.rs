//! The request path's core: for one client call, try the model's deployments with
//! retries and backoff, rest failing deployments, and fall back to other models, until
//! one upstream answers or the options (or the total timeout) run out.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

use super::gate::Gate;
use super::images::CallImages;
use super::params::{self, check_hosted_tools, check_params};
use super::relay::{EarlyEnd, Relay};
use super::retry::{backoff, cools_down, fallback, retries, retry_after};
use super::strategy::pick;
use crate::domain::{
    ApiError, Call, CallView, Endpoint, ErrorClass, ErrorKind, Reply, UpstreamError,
};
use crate::metrics::Metrics;
use crate::provider::bridge::{self, ChatCall};
use crate::provider::{TranslateError, UnsignedRequest};
use crate::router::routes::{Deployment, Model, Routes};
use crate::telemetry::spans::{AttemptSpan, AttemptStart, Finish, Propagation};
use crate::upstream::{TransportError, UpstreamBody};

mod fan_out;

/// Largest upstream response body read whole (non-streaming answers, error bodies).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// Largest upstream error body kept to show the client.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the client gets on success.
pub enum Answer {
    /// A whole body and the usage it reports.
    Full(Reply),
    /// A stream being relayed.
    Stream(Box<Relay>),
}

/// A successful upstream answer.
pub struct Success {
    /// The model that served it (the requested one or a fallback).
    pub model: Arc<Model>,
    /// Index of the deployment that served it.
    pub deployment: usize,
    /// Body.
    pub answer: Answer,
    /// The span of the attempt that served it, ended with the call.
    pub attempt: AttemptSpan,
}

/// What happened along the way, for headers, metrics and logs.
#[derive(Default)]
pub struct Trace {
    /// Upstream attempts made.
    pub attempts: u32,
    /// Time spent waiting on upstreams.
    pub upstream: Duration,
    /// Time spent in backoff or waiting for a deployment to free up.
    pub waiting: Duration,
    /// Last deployment tried: its model and index (shared, not copied, per attempt).
    pub last: Option<Tried>,
    /// Where attempts and the last deployment are also published, for an exchange
    /// whose call is routed in another task (see `server::detached`).
    pub progress: Option<Arc<Progress>>,
    /// How attempts carry the trace: spans under the call's, or the client's headers.
    pub propagation: Propagation,
}

/// Attempts made and the last deployment tried, as a call routed in another task
/// makes them: its exchange reads them if the client leaves before the answer.
#[derive(Default)]
pub struct Progress(Mutex<(u32, Option<Tried>)>);

/// A deployment tried: its model and index.
pub type Tried = (Arc<Model>, usize);

/// The call restated as chat, once a deployment that does not speak its API needs it:
/// restated once, however many deployments are tried.
type Restated = OnceLock<Result<ChatCall, TranslateError>>;

/// What is made once per call, however many attempts and deployments are tried: the
/// call restated as chat, and its image URLs fetched (see `router::images`).
struct PerCall<'a> {
    restated: Restated,
    images: CallImages<'a>,
}

impl Progress {
    fn set(&self, attempts: u32, last: &Option<Tried>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = (attempts, last.clone());
    }

    /// Attempts made so far and the last deployment tried.
    pub fn get(&self) -> (u32, Option<Tried>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The error the client sees once nothing is left to try.
fn client_error(error: UpstreamError) -> ApiError {
    let retry_secs = error.retry_after.map(|d| {
        u32::try_from(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
            .unwrap_or(u32::MAX)
    });
    let status = error.status.and_then(|s| StatusCode::from_u16(s).ok());
    let refusal = status.filter(StatusCode::is_client_error);
    let (status, kind, code) = match error.class {
        ErrorClass::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::RateLimit,
            "rate_limit_exceeded",
        ),
        ErrorClass::Server => {
            let status = match status {
                // Anthropic's 529 (overloaded) is not a status OpenAI clients know.
                Some(s) if s.as_u16() == 529 => StatusCode::SERVICE_UNAVAILABLE,
                Some(s) if s.is_server_error() => s,
                _ => StatusCode::BAD_GATEWAY,
            };
            (status, ErrorKind::Server, "upstream_error")
        }
        ErrorClass::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Server,
            "upstream_timeout",
        ),
        ErrorClass::Connect => (
            StatusCode::BAD_GATEWAY,
            ErrorKind::Server,
            "upstream_unreachable",
        ),
        ErrorClass::ContextWindow => (
            refusal.unwrap_or(StatusCode::BAD_REQUEST),
            ErrorKind::InvalidRequest,
            "context_length_exceeded",
        ),
        ErrorClass::ContentPolicy => (
            refusal.unwrap_or(StatusCode::BAD_REQUEST),
            ErrorKind::InvalidRequest,
            "content_policy_violation",
        ),
        ErrorClass::Auth => {
            let status = refusal.unwrap_or(StatusCode::UNAUTHORIZED);
            let kind = if status == StatusCode::FORBIDDEN {
                ErrorKind::Permission
            } else {
                ErrorKind::Authentication
            };
            (status, kind, "invalid_api_key")
        }
        ErrorClass::Invalid => {
            let status = refusal.unwrap_or(StatusCode::BAD_REQUEST);
            let kind = match status {
                StatusCode::PAYMENT_REQUIRED => ErrorKind::InsufficientQuota,
                StatusCode::NOT_FOUND => ErrorKind::NotFound,
                _ => ErrorKind::InvalidRequest,
            };
            (status, kind, "upstream_rejected")
        }
        ErrorClass::Unavailable => (
            refusal.unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            ErrorKind::Server,
            "no_healthy_deployment",
        ),
    };
    let mut api = ApiError::new(status, kind, error.message)
        .with_code(error.code.map_or(Cow::Borrowed(code), Cow::Owned))
        .with_retry_after(retry_secs);
    api.param = error.param.map(Cow::Owned);
    api.details = error.details;
    // An answer's message is the upstream's own words.
    api.quotes_upstream = error.status.is_some();
    api
}

/// Serves `call` from `primary`, falling back to other models of `routes` as the
/// primary's fallback lists say. `gate` is asked before each model is tried: a refusal
/// of the model asked for is the answer; a refused fallback is skipped, and named in the
/// error if nothing serves.
pub async fn dispatch(
    routes: &Routes,
    primary: &Arc<Model>,
    call: &Call,
    metrics: &Metrics,
    started: Instant,
    trace: &mut Trace,
    gate: &mut impl Gate,
) -> Result<Success, ApiError> {
    let primary = gate.enter(primary, call).await?;
    let deadline = started + primary.total_timeout;
    let once = PerCall {
        restated: Restated::new(),
        images: CallImages::new(&routes.fetcher),
    };
    let failure = match try_model(&primary, call, &once, metrics, deadline, trace).await {
        Ok(success) => return Ok(success),
        Err(failure) => failure,
    };
    let Some(kind) = fallback(failure.class) else {
        return Err(client_error(failure));
    };
    let mut last = failure;
    let mut skipped: Vec<String> = Vec::new();
    for name in primary.fallbacks_for(kind) {
        if Instant::now() >= deadline {
            break;
        }
        let Some(model) = routes.model(name) else {
            continue;
        };
        let model = match gate.enter(model, call).await {
            Ok(model) => model,
            Err(refused) => {
                tracing::info!(from = %primary.name, to = %name, reason = refused.code.as_deref().unwrap_or(""), "fallback skipped");
                skipped.push(format!(
                    "fallback `{name}` was skipped: {}",
                    refused.message
                ));
                continue;
            }
        };
        metrics
            .fallbacks
            .with_label_values(&[primary.name.as_str(), name.as_str(), kind.as_str()])
            .inc();
        tracing::info!(from = %primary.name, to = %model.name, kind = kind.as_str(), reason = last.class.as_str(), "falling back");
        match try_model(&model, call, &once, metrics, deadline, trace).await {
            Ok(success) => return Ok(success),
            Err(failure) => {
                let stop = fallback(failure.class).is_none();
                last = failure;
                if stop {
                    break;
                }
            }
        }
    }
    if !skipped.is_empty() {
        // Why nothing else served: the client sees that fallbacks existed and why they
        // could not take the call.
        // The upstream's own error body would hide that, so the gateway's is sent.
        last.message = format!("{} Also, {}.", last.message, skipped.join("; "));
    }
    Err(client_error(last))
}

/// Tries one model's deployments, with retries per the model's policy.
async fn try_model(
    model: &Arc<Model>,
    call: &Call,
    once: &PerCall<'_>,
    metrics: &Metrics,
    deadline: Instant,
    trace: &mut Trace,
) -> Result<Success, UpstreamError> {
    let mut avoid: Vec<usize> = Vec::new();
    let mut used = [0u32; ErrorClass::ALL.len()];
    let mut retried = 0u32;
    let mut last: Option<UpstreamError> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(last.unwrap_or_else(|| {
                UpstreamError::new(
                    ErrorClass::Timeout,
                    "The request exceeded the model's total timeout.",
                )
            }));
        }
        let picked = match pick(model, now, &avoid, call.estimated_tokens) {
            Ok(picked) => picked,
            Err(none) => {
                // Wait for the pool if it frees up within one backoff and the deadline.
                let max_wait = Duration::from_millis(model.retry.max_backoff_ms);
                if none.until > now && none.until - now <= max_wait && none.until < deadline {
                    tokio::time::sleep_until(none.until).await;
                    trace.waiting += now.elapsed();
                    continue;
                }
                return Err(last.unwrap_or_else(|| unavailable(model, &none, now)));
            }
        };
        let index = picked.index;
        let deployment = &model.deployments[index];
        trace.attempts += 1;
        trace.last = Some((model.clone(), index));
        if let Some(progress) = &trace.progress {
            progress.set(trace.attempts, &trace.last);
        }
        let mut span = trace.propagation.attempt(&AttemptStart {
            endpoint: call.endpoint,
            provider: deployment.provider_label,
            upstream_model: &deployment.upstream_model,
            model: &model.name,
            deployment: &deployment.name,
            number: trace.attempts,
        });
        let tried = attempt(
            model, deployment, call, once, metrics, deadline, trace, &mut span,
        );
        let failure = match tried.await {
            Ok(answer) => {
                if picked.probe.is_some() {
                    deployment.state.recovered();
                    tracing::info!(model = %model.name, deployment = %deployment.name, "probe succeeded: cooldown ended");
                }
                return Ok(Success {
                    model: model.clone(),
                    deployment: index,
                    answer,
                    attempt: span,
                });
            }
            Err(failure) => {
                span.finish(&Finish {
                    status: failure.status,
                    error: Some(failure.class.as_str()),
                    ..Finish::default()
                });
                failure
            }
        };
        drop(picked);
        let now = Instant::now();
        if cools_down(failure.class) && deployment.state.record_failure(now, &model.cooldown) {
            metrics
                .cooldowns
                .with_label_values(&[model.name.as_str(), deployment.name.as_str()])
                .inc();
            tracing::warn!(model = %model.name, deployment = %deployment.name, reason = failure.class.as_str(), "deployment cooling down");
        }
        if let Some(until) = failure.retry_after.and_then(|wait| now.checked_add(wait)) {
            deployment.state.rest_until(until);
        }
        tracing::debug!(model = %model.name, deployment = %deployment.name, reason = failure.class.as_str(), status = failure.status, "attempt failed");
        let slot = failure.class as usize;
        if used[slot] >= retries(failure.class, &model.retry) {
            return Err(failure);
        }
        used[slot] += 1;
        let wait = backoff(&model.retry, retried);
        retried += 1;
        if now.checked_add(wait).is_none_or(|at| at >= deadline) {
            return Err(failure);
        }
        metrics
            .retries
            .with_label_values(&[
                model.name.as_str(),
                deployment.name.as_str(),
                failure.class.as_str(),
            ])
            .inc();
        avoid.retain(|&i| i != index);
        avoid.push(index);
        last = Some(failure);
        // Timers round up, so count the time actually slept, not the time asked for.
        let slept = Instant::now();
        tokio::time::sleep(wait).await;
        trace.waiting += slept.elapsed();
    }
}

/// Why no deployment of `model` could take the call.
fn unavailable(
    model: &Model,
    none: &super::strategy::NoneAvailable,
    now: Instant,
) -> UpstreamError {
    let mut failure = UpstreamError::new(
        ErrorClass::Unavailable,
        if none.all_limited {
            format!(
                "Every deployment of model `{}` is at its rate limit.",
                model.name
            )
        } else {
            format!(
                "Every deployment of model `{}` is cooling down after failures.",
                model.name
            )
        },
    );
    if none.all_limited {
        failure.status = Some(StatusCode::TOO_MANY_REQUESTS.as_u16());
    }
    failure.retry_after = Some(none.until.saturating_duration_since(now));
    failure
}

/// One upstream attempt on one deployment: [`send`], then [`classify`] an error answer,
/// or read a good one (whole, or its [`first_event`]).
///
/// A deployment whose provider does not speak the call's API natively gets the call
/// restated as chat, and its answer is restated back (see `provider::bridge`). A
/// provider that takes images only as bytes gets the call's image URLs fetched and
/// inlined (see `router::images`). The request carries `span`'s trace context.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    model: &Model,
    deployment: &Deployment,
    call: &Call,
    once: &PerCall<'_>,
    metrics: &Metrics,
    deadline: Instant,
    trace: &mut Trace,
    span: &mut AttemptSpan,
) -> Result<Answer, UpstreamError> {
    let client = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: call.stream,
        model: &deployment.upstream_model,
        default_max_tokens: model.default_max_tokens,
        anthropic_beta: call.anthropic_beta.as_deref(),
    };
    let bridged = !deployment.dialect.native(call.endpoint);
    let view = if bridged {
        let chat = once
            .restated
            .get_or_init(|| bridge::to_chat(call.endpoint, &call.body))
            .as_ref()
            .map_err(|e| translate_failure(e.clone(), deployment))?;
        check_hosted_tools(model, deployment, &chat.hosted_tools, metrics)
            .map_err(|e| translate_failure(e, deployment))?;
        for param in &chat.dropped {
            metrics
                .dropped_params
                .with_label_values(&[model.name.as_str(), deployment.provider_label, param])
                .inc();
        }
        CallView {
            endpoint: Endpoint::ChatCompletions,
            body: &chat.body,
            ..client
        }
    } else {
        client
    };
    check_params(model, deployment, &view, metrics)
        .map_err(|e| translate_failure(e, deployment))?;
    let fetching = Instant::now();
    let inlined = once
        .images
        .inline(model, deployment.dialect.as_ref(), &view, deadline, metrics)
        .await?;
    trace.upstream += fetching.elapsed();
    let view = match &inlined {
        Some(body) => CallView { body, ..view },
        None => view,
    };
    // A provider that takes the call only in pieces gets them sent together. Streams and
    // calls restated as chat are never split.
    let (pieces, trimmed) = if !call.stream && !bridged {
        params::request(model, deployment, &view, metrics, |v| {
            deployment.dialect.split(v)
        })
        .map_err(|e| translate_failure(e, deployment))?
    } else {
        (None, None)
    };
    let view = match &trimmed {
        Some(body) => CallView { body, ..view },
        None => view,
    };
    if let Some(mut pieces) = pieces {
        for piece in &mut pieces {
            span.send(&trace.propagation, piece);
        }
        let tokens = call.estimated_tokens;
        return fan_out::attempt(deployment, &view, pieces, deadline, trace, metrics, tokens).await;
    }
    let (mut request, trimmed) = params::request(model, deployment, &view, metrics, |v| {
        deployment.dialect.request(v)
    })
    .map_err(|e| translate_failure(e, deployment))?;
    span.send(&trace.propagation, &mut request);
    let view = match &trimmed {
        Some(body) => CallView { body, ..view },
        None => view,
    };
    // A stream must show its first event within the time-to-first-token limit; a plain
    // answer arrives whole, so only the total deadline bounds it.
    let first_deadline = if call.stream {
        deadline.min(Instant::now() + model.ttft_timeout)
    } else {
        deadline
    };
    let in_flight = deployment.state.start();
    let mut clock = Clock {
        sent: Instant::now(),
        trace,
        metrics,
        deployment,
    };
    let (parts, body) = send(deployment, request, first_deadline)
        .await
        .inspect_err(|_| {
            clock.stop();
        })?;
    if !parts.status.is_success() {
        let error = classify(deployment, &parts, body, deadline).await;
        clock.stop();
        return Err(error);
    }
    if call.stream && deployment.dialect.is_stream(&parts.headers) {
        let mut translator = deployment.dialect.stream(&view);
        if bridged {
            translator = bridge::stream(&client, translator);
        }
        let relay = Relay::new(
            body,
            translator,
            deadline,
            in_flight,
            deployment.state.clone(),
            model.cooldown,
        );
        return first_event(relay, deployment, first_deadline, clock).await;
    }
    let bytes = read_body(body, MAX_UPSTREAM_BODY, deadline)
        .await
        .map_err(|class| {
            clock.stop();
            failed(class, deployment, "failed while sending its answer")
        })?;
    let waited = clock.stop();
    // A 2xx that is not the provider's format is an upstream fault: retry it rather
    // than hand it on.
    let mut reply = deployment
        .dialect
        .response(&view, bytes)
        .map_err(|e| translate_failure(e, deployment))?;
    if bridged {
        reply = bridge::reply(&client, reply).map_err(|e| translate_failure(e, deployment))?;
    }
    deployment.state.observe_latency(waited);
    if let Some(usage) = reply.usage {
        deployment
            .state
            .settle_tokens(Instant::now(), call.estimated_tokens, usage.total());
    }
    Ok(Answer::Full(reply))
}

/// Times one attempt's wait on its upstream, into the trace and the latency metric.
struct Clock<'a> {
    sent: Instant,
    trace: &'a mut Trace,
    metrics: &'a Metrics,
    deployment: &'a Deployment,
}

impl Clock<'_> {
    /// The wait ended: records and returns it.
    fn stop(&mut self) -> Duration {
        let waited = self.sent.elapsed();
        self.trace.upstream += waited;
        self.metrics
            .upstream_latency
            .with_label_values(&[
                self.deployment.provider_label,
                self.deployment.name.as_str(),
            ])
            .observe(waited.as_secs_f64());
        waited
    }
}

/// Authenticates and sends the upstream request; the answer's head must arrive by
/// `deadline`. An upstream that refuses a fetched credential (a 401, an expired AWS
/// session) gets the call once more with a fresh one, within the same attempt: not a
/// retry, as nothing was wrong with the deployment.
async fn send(
    deployment: &Deployment,
    mut request: UnsignedRequest,
    deadline: Instant,
) -> Result<(http::response::Parts, UpstreamBody), UpstreamError> {
    let mut refreshed = false;
    loop {
        // The unsigned request, kept while a refused credential may still be refreshed.
        let spare = (!refreshed && deployment.credential.refreshable()).then(|| copy(&request));
        let used = deployment
            .credential
            .apply(&mut request)
            .await
            .map_err(|e| failed(ErrorClass::Connect, deployment, &e.to_string()))?;
        let sent = deployment.transport.send(request.map(Full::new));
        let (parts, body) = match tokio::time::timeout_at(deadline, sent).await {
            Err(_) => {
                return Err(failed(
                    ErrorClass::Timeout,
                    deployment,
                    "did not answer in time",
                ));
            }
            Ok(Err(TransportError::Connect(e))) => {
                return Err(failed(
                    ErrorClass::Connect,
                    deployment,
                    &format!("is unreachable: {e}"),
                ));
            }
            Ok(Err(TransportError::Io(e))) => {
                return Err(failed(
                    ErrorClass::Connect,
                    deployment,
                    &format!("dropped the connection: {e}"),
                ));
            }
            Ok(Ok(response)) => response.into_parts(),
        };
        match spare {
            Some(unsigned) if deployment.credential.refused(used, &parts) => {
                refreshed = true;
                request = unsigned;
                tracing::info!(deployment = %deployment.name, status = parts.status.as_u16(), "the upstream refused the credential: sending again with a fresh one");
            }
            _ => return Ok((parts, body)),
        }
    }
}

/// A copy of an unsigned request (its body is shared, not copied).
fn copy(request: &UnsignedRequest) -> UnsignedRequest {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Reads an error answer (bounded) and has the provider, which knows its wire, say what
/// it means; the wait an upstream asks for in its headers is kept.
async fn classify(
    deployment: &Deployment,
    parts: &http::response::Parts,
    body: UpstreamBody,
    deadline: Instant,
) -> UpstreamError {
    let bytes = read_body(body, MAX_ERROR_BODY, deadline)
        .await
        .unwrap_or_default();
    let mut error = deployment.dialect.error(parts.status, &bytes);
    if error.retry_after.is_none() {
        error.retry_after = retry_after(&parts.headers, SystemTime::now());
    }
    error
}

/// Hands a stream on once its first event arrived, within the time-to-first-token
/// limit: a stream that fails before then can still be retried or fall back.
async fn first_event(
    mut relay: Relay,
    deployment: &Deployment,
    first_deadline: Instant,
    mut clock: Clock<'_>,
) -> Result<Answer, UpstreamError> {
    let first = tokio::time::timeout_at(first_deadline, relay.first_event()).await;
    let waited = clock.stop();
    match first {
        Ok(Ok(())) => {
            deployment.state.observe_latency(waited);
            Ok(Answer::Stream(Box::new(relay)))
        }
        Ok(Err(EarlyEnd::Error(e))) => Err(failed(
            ErrorClass::Server,
            deployment,
            &format!("failed before the first token: {e}"),
        )),
        Ok(Err(EarlyEnd::Empty)) => Err(failed(
            ErrorClass::Server,
            deployment,
            "ended the stream without an event",
        )),
        Err(_) => Err(failed(
            ErrorClass::Timeout,
            deployment,
            "sent no token within the time-to-first-token limit",
        )),
    }
}

/// A failure the sidecar saw (no answer to read), worded with the deployment's name.
fn failed(class: ErrorClass, deployment: &Deployment, what: &str) -> UpstreamError {
    UpstreamError::new(class, format!("Deployment `{}` {what}.", deployment.name))
}

/// A request the provider cannot take is the client's to fix (400); an answer we cannot
/// read is the upstream's fault (502, retried).
fn translate_failure(err: TranslateError, deployment: &Deployment) -> UpstreamError {
    match &err {
        TranslateError::Unsupported { .. }
        | TranslateError::UnsupportedValue { .. }
        | TranslateError::UnsupportedTool { .. } => {
            UpstreamError::answered(ErrorClass::Invalid, 400, err.to_string())
                .with_code(Some("unsupported_parameter".into()))
                .with_param(err.droppable().map(str::to_owned))
        }
        TranslateError::Invalid { param, .. } => {
            UpstreamError::answered(ErrorClass::Invalid, 400, err.to_string())
                .with_code(Some("invalid_value".into()))
                .with_param(Some((*param).to_owned()))
        }
        TranslateError::Malformed(_) => failed(
            ErrorClass::Server,
            deployment,
            "answered with a malformed body",
        ),
    }
}

/// Reads a whole upstream body within the deadline and size limit.
async fn read_body(
    mut body: UpstreamBody,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, ErrorClass> {
    let collect = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| ErrorClass::Server)?.into_data() else {
                continue;
            };
            if buf.len() + data.len() > limit {
                return Err(ErrorClass::Server);
            }
            if buf.is_empty() && body.is_end_stream() {
                // A body in one frame is handed on without copying.
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
