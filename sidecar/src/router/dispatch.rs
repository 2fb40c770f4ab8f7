//! The request path's core: for one client call, try the model's deployments with
//! retries and backoff, rest failing deployments, and fall back to other models, until
//! one upstream answers or the options (or the total timeout) run out.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::gate::Gate;
use super::relay::{EarlyEnd, Relay};
use super::retry::{FailureClass, backoff, classify, retry_after};
use super::strategy::pick;
use crate::config::routes::{Deployment, Model, Routes};
use crate::meter::usage::Usage;
use crate::metrics::Metrics;
use crate::provider::{CallView, Endpoint, TranslateError};
use crate::server::error::ApiError;
use crate::upstream::{TransportError, UpstreamBody};

/// Largest upstream response body read whole (non-streaming answers, error bodies).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// Largest upstream error body kept to show the client.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One validated client call.
pub struct Call {
    /// Which API operation.
    pub endpoint: Endpoint,
    /// The request body; `model` is rewritten per deployment.
    pub body: Map<String, Value>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Rough token count for rpm/tpm accounting before usage is known.
    pub estimated_tokens: u64,
}

/// What the client gets on success.
pub enum Answer {
    /// A whole JSON body and the usage it reports.
    Full(Bytes, Option<Usage>),
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
}

/// Attempts made and the last deployment tried, as a call routed in another task
/// makes them: its exchange reads them if the client leaves before the answer.
#[derive(Default)]
pub struct Progress(Mutex<(u32, Option<Tried>)>);

/// A deployment tried: its model and index.
pub type Tried = (Arc<Model>, usize);

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

/// Why an attempt (or a model) failed.
#[derive(Debug)]
struct Failure {
    class: FailureClass,
    status: Option<StatusCode>,
    message: String,
    body: Option<Bytes>,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            status: None,
            message: message.into(),
            body: None,
            retry_after: None,
        }
    }

    /// The error the client sees once nothing is left to try.
    fn into_api_error(self) -> ApiError {
        let retry_secs = self.retry_after.map(|d| {
            u32::try_from(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)))
                .unwrap_or(u32::MAX)
        });
        let shaped = self.body.filter(|b| ApiError::is_openai_shaped(b));
        let (status, kind, code) = match self.class {
            FailureClass::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            FailureClass::ServerError => (
                self.status
                    .filter(StatusCode::is_server_error)
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                "server_error",
                "upstream_error",
            ),
            FailureClass::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
            ),
            FailureClass::Connect => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_unreachable",
            ),
            FailureClass::ContextWindow => (
                self.status.unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "context_length_exceeded",
            ),
            FailureClass::ContentPolicy => (
                self.status.unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "content_policy_violation",
            ),
            FailureClass::ClientError => (
                self.status.unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "upstream_rejected",
            ),
            FailureClass::NoDeployment => (
                self.status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "server_error",
                "no_healthy_deployment",
            ),
        };
        let mut error = ApiError::new(status, kind, self.message)
            .with_code(code)
            .with_retry_after(retry_secs);
        error.upstream_body = shaped;
        error
    }
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
    let failure = match try_model(&primary, call, metrics, deadline, trace).await {
        Ok(success) => return Ok(success),
        Err(failure) => failure,
    };
    let Some(kind) = failure.class.fallback() else {
        return Err(failure.into_api_error());
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
                tracing::info!(from = %primary.name, to = %name, reason = refused.code.unwrap_or(""), "fallback skipped");
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
        match try_model(&model, call, metrics, deadline, trace).await {
            Ok(success) => return Ok(success),
            Err(failure) => {
                let stop = failure.class.fallback().is_none();
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
        last.body = None;
    }
    Err(last.into_api_error())
}

/// Tries one model's deployments, with retries per the model's policy.
async fn try_model(
    model: &Arc<Model>,
    call: &Call,
    metrics: &Metrics,
    deadline: Instant,
    trace: &mut Trace,
) -> Result<Success, Failure> {
    let mut avoid: Vec<usize> = Vec::new();
    let mut used = [0u32; 8];
    let mut retries = 0u32;
    let mut last: Option<Failure> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(last.unwrap_or_else(|| {
                Failure::new(
                    FailureClass::Timeout,
                    "The request exceeded the model's total timeout.",
                )
            }));
        }
        let index = match pick(model, now, &avoid, call.estimated_tokens) {
            Ok(index) => index,
            Err(none) => {
                // Wait for the pool if it frees up within one backoff and the deadline.
                let max_wait = Duration::from_millis(model.retry.max_backoff_ms);
                if none.until > now && none.until - now <= max_wait && none.until < deadline {
                    tokio::time::sleep_until(none.until).await;
                    trace.waiting += now.elapsed();
                    continue;
                }
                if let Some(last) = last {
                    return Err(last);
                }
                let mut failure = Failure::new(
                    FailureClass::NoDeployment,
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
                    failure.status = Some(StatusCode::TOO_MANY_REQUESTS);
                }
                failure.retry_after = Some(none.until.saturating_duration_since(now));
                return Err(failure);
            }
        };
        let deployment = &model.deployments[index];
        trace.attempts += 1;
        trace.last = Some((model.clone(), index));
        if let Some(progress) = &trace.progress {
            progress.set(trace.attempts, &trace.last);
        }
        let failure = match attempt(model, deployment, call, metrics, deadline, trace).await {
            Ok(answer) => {
                return Ok(Success {
                    model: model.clone(),
                    deployment: index,
                    answer,
                });
            }
            Err(failure) => failure,
        };
        let now = Instant::now();
        if failure.class.counts_toward_cooldown()
            && deployment.state.record_failure(now, &model.cooldown)
        {
            metrics
                .cooldowns
                .with_label_values(&[model.name.as_str(), deployment.name.as_str()])
                .inc();
            tracing::warn!(model = %model.name, deployment = %deployment.name, reason = failure.class.as_str(), "deployment cooling down");
        }
        if let Some(until) = failure.retry_after.and_then(|wait| now.checked_add(wait)) {
            deployment.state.rest_until(until);
        }
        tracing::debug!(model = %model.name, deployment = %deployment.name, reason = failure.class.as_str(), error = %failure.message, "attempt failed");
        let slot = failure.class as usize;
        if used[slot] >= failure.class.retries(&model.retry) {
            return Err(failure);
        }
        used[slot] += 1;
        let wait = backoff(&model.retry, retries);
        retries += 1;
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

/// One upstream attempt on one deployment.
async fn attempt(
    model: &Model,
    deployment: &Deployment,
    call: &Call,
    metrics: &Metrics,
    deadline: Instant,
    trace: &mut Trace,
) -> Result<Answer, Failure> {
    let view = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: call.stream,
        model: &deployment.upstream_model,
        default_max_tokens: model.default_max_tokens,
    };
    check_params(model, deployment, &view, metrics)?;
    let mut request = deployment
        .dialect
        .request(&view)
        .map_err(|e| translate_failure(e, deployment))?;
    deployment
        .credential
        .apply(&mut request)
        .await
        .map_err(|e| {
            Failure::new(
                FailureClass::Connect,
                format!("Deployment `{}`: {e}", deployment.name),
            )
        })?;
    let request = request.map(Full::new);
    let in_flight = deployment.state.start();
    let sent = Instant::now();
    // A stream must show its first event within the time-to-first-token limit; a plain
    // answer arrives whole, so only the total deadline bounds it.
    let first_deadline = if call.stream {
        deadline.min(sent + model.ttft_timeout)
    } else {
        deadline
    };
    let result = tokio::time::timeout_at(first_deadline, deployment.transport.send(request)).await;
    let observe = |trace: &mut Trace| {
        let waited = sent.elapsed();
        trace.upstream += waited;
        metrics
            .upstream_latency
            .with_label_values(&[deployment.provider_label, deployment.name.as_str()])
            .observe(waited.as_secs_f64());
        waited
    };
    let response = match result {
        Err(_) => {
            observe(trace);
            return Err(Failure::new(
                FailureClass::Timeout,
                format!("Deployment `{}` did not answer in time.", deployment.name),
            ));
        }
        Ok(Err(TransportError::Connect(e))) => {
            observe(trace);
            return Err(Failure::new(
                FailureClass::Connect,
                format!("Deployment `{}` is unreachable: {e}", deployment.name),
            ));
        }
        Ok(Err(TransportError::Io(e))) => {
            observe(trace);
            return Err(Failure::new(
                FailureClass::Connect,
                format!(
                    "Deployment `{}` dropped the connection: {e}",
                    deployment.name
                ),
            ));
        }
        Ok(Ok(response)) => response,
    };
    let (parts, body) = response.into_parts();
    if !parts.status.is_success() {
        let bytes = read_body(body, MAX_ERROR_BODY, deadline)
            .await
            .unwrap_or_default();
        observe(trace);
        let (status, bytes) = deployment.dialect.error(parts.status, bytes);
        let class = classify(status, &bytes);
        return Err(Failure {
            class,
            status: Some(status),
            message: format!(
                "Deployment `{}` answered {}.",
                deployment.name, parts.status
            ),
            body: Some(bytes),
            retry_after: retry_after(&parts.headers, SystemTime::now()),
        });
    }
    if call.stream && deployment.dialect.is_stream(&parts.headers) {
        let mut relay = Relay::new(
            body,
            deployment.dialect.stream(&view),
            deadline,
            in_flight,
            deployment.state.clone(),
            model.cooldown,
        );
        let first = tokio::time::timeout_at(first_deadline, relay.first_event()).await;
        let waited = observe(trace);
        return match first {
            Ok(Ok(())) => {
                deployment.state.observe_latency(waited);
                Ok(Answer::Stream(Box::new(relay)))
            }
            Ok(Err(EarlyEnd::Error(e))) => Err(Failure::new(
                FailureClass::ServerError,
                format!(
                    "Deployment `{}` failed before the first token: {e}",
                    deployment.name
                ),
            )),
            Ok(Err(EarlyEnd::Empty)) => Err(Failure::new(
                FailureClass::ServerError,
                format!(
                    "Deployment `{}` ended the stream without an event.",
                    deployment.name
                ),
            )),
            Err(_) => Err(Failure::new(
                FailureClass::Timeout,
                format!(
                    "Deployment `{}` sent no token within the time-to-first-token limit.",
                    deployment.name
                ),
            )),
        };
    }
    let bytes = match read_body(body, MAX_UPSTREAM_BODY, deadline).await {
        Ok(bytes) => bytes,
        Err(class) => {
            observe(trace);
            return Err(Failure::new(
                class,
                format!(
                    "Deployment `{}` failed while sending its answer.",
                    deployment.name
                ),
            ));
        }
    };
    let waited = observe(trace);
    // A 2xx that is not the provider's format is an upstream fault: retry it rather
    // than hand it on.
    let bytes = deployment.dialect.response(&view, bytes).map_err(|e| {
        Failure::new(
            FailureClass::ServerError,
            format!(
                "Deployment `{}` answered with a malformed body: {e}",
                deployment.name
            ),
        )
    })?;
    let Ok(usage) = Usage::from_answer(&bytes) else {
        return Err(Failure::new(
            FailureClass::ServerError,
            format!(
                "Deployment `{}` answered with a malformed body.",
                deployment.name
            ),
        ));
    };
    deployment.state.observe_latency(waited);
    if let Some(usage) = usage {
        deployment
            .state
            .settle_tokens(Instant::now(), call.estimated_tokens, usage.total());
    }
    Ok(Answer::Full(bytes, usage))
}

/// Parameters every endpoint accepts whatever the provider.
const ALWAYS_SUPPORTED: &[&str] = &["model", "stream"];

/// Refuses (or, with `dropUnsupportedParams`, counts and drops) request parameters the
/// deployment's provider cannot honour. Dialects only read the fields they know, so
/// dropping needs no rewrite of the body.
fn check_params(
    model: &Model,
    deployment: &Deployment,
    view: &CallView<'_>,
    metrics: &Metrics,
) -> Result<(), Failure> {
    let Some(supported) = deployment.dialect.supported_params(view.endpoint) else {
        return Ok(());
    };
    for key in view.body.keys() {
        let key = key.as_str();
        if ALWAYS_SUPPORTED.contains(&key) || supported.contains(&key) {
            continue;
        }
        if model.drop_unsupported_params {
            metrics
                .dropped_params
                .with_label_values(&[
                    model.name.as_str(),
                    deployment.provider_label,
                    param_label(key),
                ])
                .inc();
            continue;
        }
        return Err(translate_failure(
            TranslateError::Unsupported {
                param: key.to_owned(),
                provider: deployment.provider_label,
            },
            deployment,
        ));
    }
    Ok(())
}

/// OpenAI request parameters that may be metric labels; anything else a client sends is
/// counted as `other`, so client-chosen names never become series.
const KNOWN_PARAMS: &[&str] = &[
    "audio",
    "dimensions",
    "encoding_format",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt",
    "reasoning_effort",
    "response_format",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream_options",
    "suffix",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "web_search_options",
    "best_of",
    "echo",
    "input",
];

/// The label for a dropped parameter: its name if OpenAI defines it, else `other`.
fn param_label(param: &str) -> &str {
    if KNOWN_PARAMS.contains(&param) {
        param
    } else {
        "other"
    }
}

/// A request the provider cannot take is the client's to fix (400); an answer we cannot
/// read is the upstream's fault (502, retried).
fn translate_failure(err: TranslateError, deployment: &Deployment) -> Failure {
    let (class, status, api) = match &err {
        TranslateError::Unsupported { .. } => (
            FailureClass::ClientError,
            StatusCode::BAD_REQUEST,
            ApiError::invalid_request(err.to_string()).with_code("unsupported_parameter"),
        ),
        TranslateError::Invalid { param, .. } => (
            FailureClass::ClientError,
            StatusCode::BAD_REQUEST,
            ApiError::invalid_request(err.to_string())
                .with_param(param)
                .with_code("invalid_value"),
        ),
        TranslateError::Malformed(_) => (
            FailureClass::ServerError,
            StatusCode::BAD_GATEWAY,
            ApiError::new(StatusCode::BAD_GATEWAY, "server_error", err.to_string()),
        ),
    };
    Failure {
        class,
        status: Some(status),
        message: format!("Deployment `{}`: {err}", deployment.name),
        body: Some(api.body()),
        retry_after: None,
    }
}

/// Reads a whole upstream body within the deadline and size limit.
async fn read_body(
    mut body: UpstreamBody,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, FailureClass> {
    let collect = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| FailureClass::ServerError)?.into_data() else {
                continue;
            };
            if buf.len() + data.len() > limit {
                return Err(FailureClass::ServerError);
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
        .unwrap_or(Err(FailureClass::Timeout))
}
