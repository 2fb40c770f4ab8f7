//! One API request from its start to its end. An [`Exchange`] is created when a request
//! arrives and ends it when dropped, however it ends: refused, failed, answered, its
//! stream finished or cut, its client gone before the answer (hyper drops the handler),
//! or a panic unwinding. Ending means, once and in this one place: the request counter
//! and duration, the access log line, the in-flight gauge, and settling the call's
//! [`Admission`] (which gives back the unused reservation and records usage).
//!
//! A plain call is routed in a task of its own ([`super::detached`]): if its client
//! leaves first, the exchange still ends the request then, and leaves settling to the
//! task, which knows what the call cost once the upstream answers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::{Proxy, error_response, trace_headers};
use super::body::ProxyBody;
use super::cached::{self, Hit, Pending};
use super::detached::{self, Routed};
use super::error::{self as render, ApiError};
use super::kept;
use super::store::Turn;
use crate::cache::Outcome as CacheOutcome;
use crate::config::snapshot::Pricing;
use crate::domain::{Call, Endpoint, Usage};
use crate::meter::{Admission, Outcome, client_closed};
use crate::router::dispatch::{Answer, Progress, Success, Trace, dispatch};
use crate::router::relay::StreamEnd;
use crate::router::routes::{Deployment, Model, Routes};
use crate::telemetry::content;
use crate::telemetry::spans::{self, AttemptSpan, CallSpan, Finish, ResponseFacts};

/// How the request ended, as far as is known.
enum End {
    /// Not ended: dropped like this, the client went away (or a panic unwound).
    Open,
    /// Answered with an error; `detail` is what the log says of it, `code` the
    /// gateway's own error code, if it is one (an upstream's code is not: its
    /// `error.type` is then the status, so the set stays bounded).
    Failed {
        status: StatusCode,
        detail: String,
        code: Option<&'static str>,
    },
    /// Answered by a deployment; a stream says how it ended.
    Served {
        model: Arc<Model>,
        deployment: usize,
        usage: Option<Usage>,
        stream: Option<StreamEnd>,
    },
    /// Answered from the response cache: no deployment served, nothing is charged.
    Cached,
}

/// A request in progress; see the module doc.
pub struct Exchange {
    proxy: Arc<Proxy>,
    endpoint: Endpoint,
    started: Instant,
    /// The model asked for, once known.
    requested: Option<Arc<Model>>,
    admission: Option<Admission>,
    /// Whether the in-flight gauge counts this request.
    in_flight: bool,
    /// What routing did; the dispatcher fills it in.
    pub trace: Trace,
    /// A call being routed in its own task: where its answer arrives, and what it has
    /// tried so far.
    routing: Option<(oneshot::Receiver<Routed>, Arc<Progress>)>,
    /// Whether the call reached the router (its overhead is then measured).
    dispatched: bool,
    /// A Responses turn whose answer is to be kept (see `kept`).
    pub keep: Option<Turn>,
    /// The kept response a Responses call continued.
    pub continued: Option<String>,
    /// What the response cache did for a call to a model with one, and where the
    /// answer is to be kept (see `cached`).
    pub cache: Option<(CacheOutcome, Option<Pending>)>,
    end: End,
    /// The call's span, when tracing is on.
    span: Option<CallSpan>,
    /// The span of the attempt that answered, ended with the call.
    attempt: Option<AttemptSpan>,
    /// What a whole answer says of itself, read only for a span that records.
    facts: Option<ResponseFacts>,
}

impl Exchange {
    /// A request that just arrived.
    pub fn new(proxy: Arc<Proxy>, endpoint: Endpoint, started: Instant) -> Self {
        Exchange {
            proxy,
            endpoint,
            started,
            requested: None,
            admission: None,
            in_flight: false,
            trace: Trace::default(),
            routing: None,
            dispatched: false,
            keep: None,
            continued: None,
            cache: None,
            end: End::Open,
            span: None,
            attempt: None,
            facts: None,
        }
    }

    /// Starts the call's span under the client's trace context (`traceparent`), or
    /// keeps that context to pass upstream when tracing is off.
    pub fn start_span(&mut self, headers: &http::HeaderMap) {
        let (span, propagation) =
            spans::start_call(self.proxy.tracer.as_ref(), headers, self.endpoint);
        self.span = span;
        self.trace.propagation = propagation;
    }

    /// Routes a call in this task (streams: a client that leaves ends the stream).
    pub async fn route(
        &mut self,
        routes: &Routes,
        requested: &Arc<Model>,
        call: &Call,
    ) -> Result<Success, ApiError> {
        self.dispatched = true;
        let Some(gate) = self.admission.as_mut() else {
            return Err(ApiError::internal("admitted call without an admission"));
        };
        let metrics = &self.proxy.metrics;
        dispatch(
            routes,
            requested,
            call,
            metrics,
            self.started,
            &mut self.trace,
            gate,
        )
        .await
    }

    /// Routes a plain call in a task of its own and waits for its answer. If the client
    /// leaves meanwhile, this exchange ends the request and the task settles the call
    /// once the upstream answers (see [`super::detached`]).
    pub async fn route_detached(
        &mut self,
        routes: Arc<Routes>,
        requested: Arc<Model>,
        call: Call,
    ) -> Result<Success, ApiError> {
        self.dispatched = true;
        let Some(admission) = self.admission.take() else {
            return Err(ApiError::internal("admitted call without an admission"));
        };
        let progress = Arc::new(Progress::default());
        let rx = detached::spawn(
            &self.proxy,
            routes,
            requested,
            call,
            self.started,
            admission,
            Trace {
                progress: Some(progress.clone()),
                // The task's trace replaces this one when it answers.
                propagation: std::mem::take(&mut self.trace.propagation),
                ..Trace::default()
            },
        );
        let (rx, _) = self.routing.insert((rx, progress));
        let routed = rx.await;
        self.routing = None;
        match routed {
            Ok(routed) => {
                self.trace = routed.trace;
                self.admission = Some(routed.admission);
                routed.result
            }
            // The task ended without an answer: it panicked, and its admission settled
            // as it was dropped.
            Err(_) => Err(ApiError::internal("the call's routing task failed")),
        }
    }

    /// Records the call's prompt on its span, if its model opts in (and the span records).
    pub fn capture_input(&mut self, call: &Call) {
        if let (Some(span), Some(model)) = (&mut self.span, &self.requested)
            && model.capture_content
            && span.is_recording()
        {
            span.add(content::input(self.endpoint, &call.body));
        }
    }

    /// The request was admitted (for the model [`set_requested`](Self::set_requested) named): it is in flight from now on.
    pub fn admitted(&mut self, admission: Admission) {
        self.admission = Some(admission);
        self.proxy.metrics.in_flight.inc();
        self.in_flight = true;
    }

    /// The model asked for, once known.
    pub fn set_requested(&mut self, requested: Arc<Model>) {
        if let Some(span) = &mut self.span {
            span.requested(&requested.name);
        }
        self.requested = Some(requested);
    }

    /// The answer to a call the response cache answered (its exchange admitted).
    pub fn respond_hit(mut self, hit: Hit) -> Response<ProxyBody> {
        self.end = End::Cached;
        self.mark_cache(CacheOutcome::Hit);
        let mut response = cached::hit_response(hit);
        if let Some(Ok(value)) = self
            .requested
            .as_ref()
            .map(|m| HeaderValue::from_str(&m.name))
        {
            response.headers_mut().insert("x-llmesh-model", value);
        }
        response
    }

    /// Says on the call's span how the response cache took it.
    fn mark_cache(&mut self, outcome: CacheOutcome) {
        if let Some(span) = &mut self.span {
            span.add([opentelemetry::KeyValue::new(
                "llmesh.cache",
                outcome.as_str(),
            )]);
        }
    }

    /// The one place a call's answer is made: the error, the whole body, or the stream
    /// (which ends the exchange when it ends), with the headers that say how it went.
    pub fn respond(mut self, result: Result<Success, ApiError>) -> Response<ProxyBody> {
        let overhead = self.dispatched.then(|| self.overhead());
        let (cached, pending) = match self.cache.take() {
            Some((outcome, pending)) => (Some(outcome), pending),
            None => (None, None),
        };
        if let Some(outcome) = cached {
            self.mark_cache(outcome);
        }
        let success = match result {
            Ok(success) => success,
            Err(err) => {
                self.failed(&err);
                let trace = overhead.map(|o| (&self.trace, o));
                let mut response = error_response(self.endpoint.api(), &err, trace);
                if let Some(outcome) = cached {
                    let value = HeaderValue::from_static(outcome.header());
                    response.headers_mut().insert(cached::HEADER, value);
                }
                return response;
            }
        };
        let (model, deployment) = (success.model, success.deployment);
        self.attempt = Some(success.attempt);
        // Only the model asked for has its answers kept (see `cached`).
        let pending = pending.filter(|_| {
            self.requested
                .as_ref()
                .is_some_and(|r| r.name == model.name)
        });
        let pricing = model.deployments[deployment].pricing;
        let mut response = match success.answer {
            Answer::Full(mut reply) => {
                self.served(model.clone(), deployment, reply.usage);
                if let Some(span) = self.span.as_mut().filter(|s| s.is_recording()) {
                    self.facts = Some(ResponseFacts::read(&reply.body));
                    if model.capture_content {
                        span.add(content::output(self.endpoint, &reply.body));
                    }
                }
                if let Some(pending) = &pending {
                    pending.keep(&reply, &pricing);
                }
                if let Some(previous) = &self.continued {
                    reply.body = kept::name_previous(reply.body, previous);
                }
                if let Some(turn) = self.keep.take() {
                    kept::keep(&self.proxy, turn, reply.body.clone());
                }
                let estimated = reply.usage_estimated;
                let mut response = Response::new(ProxyBody::full(reply.body));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if estimated {
                    // As count_tokens says of its estimates.
                    response.headers_mut().insert(
                        "x-llmesh-token-count",
                        HeaderValue::from_static("estimated"),
                    );
                }
                response
            }
            Answer::Stream(relay) => {
                if let Some(requested) = &self.requested {
                    self.proxy
                        .metrics
                        .time_to_first_token
                        .with_label_values(&[requested.name.as_str()])
                        .observe(self.started.elapsed().as_secs_f64());
                }
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
        if let Some(overhead) = overhead {
            trace_headers(headers, &self.trace, overhead);
        }
        if let Some(outcome) = cached {
            headers.insert(cached::HEADER, HeaderValue::from_static(outcome.header()));
        }
        if let ProxyBody::Stream(relay) = response.body_mut() {
            if self.span.as_ref().is_some_and(CallSpan::is_recording) {
                relay.watch_facts();
            }
            let render = render::stream_renderer(self.endpoint);
            relay.deliver(
                Box::new(move |end, usage, answer, facts| {
                    self.facts = facts;
                    self.streamed(model, deployment, end, usage, answer)
                }),
                render,
            );
        }
        match pending {
            Some(pending) => response.map(|body| cached::storing(body, pending, pricing)),
            None => response,
        }
    }

    /// The time the sidecar added: all but the upstream's and the waits'. Observed once.
    fn overhead(&self) -> Duration {
        let overhead = self
            .started
            .elapsed()
            .saturating_sub(self.trace.upstream)
            .saturating_sub(self.trace.waiting);
        self.proxy
            .metrics
            .overhead
            .with_label_values(&[self.endpoint.as_str()])
            .observe(overhead.as_secs_f64());
        overhead
    }

    /// The answer was an error.
    /// Records an error answer. A message quoting an upstream may echo the request, so
    /// the log names its code instead.
    fn failed(&mut self, err: &ApiError) {
        let detail = if err.quotes_upstream {
            format!("upstream error {}", err.code.as_deref().unwrap_or("-"))
        } else {
            err.message.clone()
        };
        let code = match &err.code {
            Some(Cow::Borrowed(code)) => Some(*code),
            _ => None,
        };
        self.end = End::Failed {
            status: err.status,
            detail,
            code,
        };
    }

    /// The answer was whole and came from `deployment` of `model`.
    fn served(&mut self, model: Arc<Model>, deployment: usize, usage: Option<Usage>) {
        self.end = End::Served {
            model,
            deployment,
            usage,
            stream: None,
        };
    }

    /// A stream from `deployment` of `model` ended.
    fn streamed(
        &mut self,
        model: Arc<Model>,
        deployment: usize,
        end: StreamEnd,
        usage: Option<Usage>,
        answer: Option<Bytes>,
    ) {
        if let (Some(turn), Some(answer)) = (self.keep.take(), answer) {
            kept::keep(&self.proxy, turn, answer);
        }
        self.end = End::Served {
            model,
            deployment,
            usage,
            stream: Some(end),
        };
    }
}

impl Exchange {
    /// The call's GenAI metrics and its spans (the call's and the answering attempt's),
    /// at its end.
    fn observe(
        &self,
        (span, attempt): (Option<CallSpan>, Option<AttemptSpan>),
        served: Option<(&Model, &Deployment)>,
        status: StatusCode,
        usage: Option<Usage>,
        elapsed: Duration,
    ) {
        let error: Option<&str> = match &self.end {
            End::Open
            | End::Served {
                stream: Some(StreamEnd::ClientGone),
                ..
            } => Some("client_closed"),
            End::Failed { status, code, .. } => Some(code.unwrap_or_else(|| status.as_str())),
            End::Served {
                stream: Some(StreamEnd::Failed),
                ..
            } => Some("stream_failed"),
            End::Served { .. } | End::Cached => None,
        };
        let provider = served.map(|(_, d)| d.provider_label);
        if let Some(requested) = &self.requested {
            let operation = spans::operation(self.endpoint);
            let provider = provider.map_or("", spans::provider_name);
            let model = requested.name.as_str();
            let metrics = &self.proxy.metrics;
            metrics
                .genai_duration
                .with_label_values(&[operation, provider, model, error.unwrap_or("")])
                .observe(elapsed.as_secs_f64());
            if let Some(usage) = usage {
                let tokens = [
                    ("input", usage.prompt_tokens),
                    ("output", usage.completion_tokens),
                ];
                for (kind, n) in tokens {
                    metrics
                        .genai_tokens
                        .with_label_values(&[operation, provider, model, kind])
                        .observe(n as f64);
                }
            }
        }
        let attempt_end = Finish {
            status: Some(status.as_u16()),
            error,
            provider,
            deployment: served.map(|(_, d)| d.name.as_str()),
            usage,
            response: self.facts.as_ref(),
            ..Finish::default()
        };
        if let Some(attempt) = attempt {
            attempt.finish(&attempt_end);
        }
        if let Some(span) = span {
            let key = self.admission.as_ref().and_then(|a| a.key.as_deref());
            span.finish(&Finish {
                served_model: served.map(|(m, _)| m.name.as_str()),
                cost_micros: usage
                    .zip(served)
                    .map(|(u, (_, d))| u.cost_micros(&d.pricing)),
                key: key.map(|k| (k.name.as_str(), k.team.as_deref())),
                attempts: Some(self.trace.attempts),
                ..attempt_end
            });
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some((mut rx, progress)) = self.routing.take() {
            // The client left while the call was routed elsewhere. Closing first means
            // the task either handed its answer over already (settled here) or learns
            // that nobody waits and settles the call itself.
            rx.close();
            if let Ok(routed) = rx.try_recv() {
                if let Some(requested) = self.requested.clone() {
                    self.trace.attempts = routed.trace.attempts;
                    self.trace.last.clone_from(&routed.trace.last);
                    detached::settle(routed, &requested, self.started);
                }
            } else {
                (self.trace.attempts, self.trace.last) = progress.get();
            }
        }
        let spans = (self.span.take(), self.attempt.take());
        let metrics = &self.proxy.metrics;
        let elapsed = self.started.elapsed();
        let requested = self.requested.as_ref().map_or("", |m| m.name.as_str());
        // Who answered: the deployment that served, else the last one tried.
        let (served, deployment) = match &self.end {
            End::Served {
                model, deployment, ..
            } => (Some(model), *deployment),
            End::Cached => (None, 0),
            _ => match &self.trace.last {
                Some((model, index)) => (Some(model), *index),
                None => (None, 0),
            },
        };
        let served = served.and_then(|m| Some((m, m.deployments.get(deployment)?)));
        let (status, usage, maybe_billed) = match &self.end {
            // The client left while the call was on its way: a provider that got it may
            // bill it, so it is charged as a stream cut short is.
            End::Open => (client_closed(), None, self.trace.attempts > 0),
            End::Failed { status, .. } => (*status, None, false),
            // A whole answer without usage: the provider reported none, nothing is
            // charged. A stream without a usage report may have been billed.
            End::Served { usage, stream, .. } => {
                (StatusCode::OK, *usage, stream.is_some() && usage.is_none())
            }
            End::Cached => (StatusCode::OK, None, false),
        };
        metrics
            .requests
            .with_label_values(&[
                self.endpoint.as_str(),
                requested,
                served.map_or("", |(_, d)| d.name.as_str()),
                served.map_or("", |(_, d)| d.provider_label),
                status.as_str(),
            ])
            .inc();
        if self.requested.is_some() {
            metrics
                .request_duration
                .with_label_values(&[requested, self.endpoint.as_str()])
                .observe(elapsed.as_secs_f64());
        }
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let served_by = served.map_or("", |(m, _)| m.name.as_str());
        let deployment_name = served.map_or("", |(_, d)| d.name.as_str());
        match &self.end {
            End::Served { stream, .. } => tracing::debug!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), model = requested, served_by,
                deployment = deployment_name, attempts = self.trace.attempts, duration_ms,
                stream_end = stream.map(|e| match e {
                    StreamEnd::Complete => "complete",
                    StreamEnd::Failed => "failed",
                    StreamEnd::ClientGone => "client_gone",
                }),
                "request served"
            ),
            End::Cached => tracing::debug!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), model = requested, duration_ms,
                "request served from the response cache"
            ),
            // Refused before a model was known (bad input, no key): not worth a line
            // each at info, where anyone able to connect could flood the log.
            End::Failed { status, detail, .. } if self.requested.is_none() => tracing::debug!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), status = status.as_u16(), duration_ms,
                error = %detail, "request refused"
            ),
            End::Failed { status, detail, .. } => tracing::info!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), model = requested, served_by,
                deployment = deployment_name, status = status.as_u16(), attempts = self.trace.attempts,
                duration_ms, error = %detail,
                "request failed"
            ),
            End::Open => tracing::info!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), model = requested, served_by,
                deployment = deployment_name, status = status.as_u16(), attempts = self.trace.attempts,
                duration_ms,
                "client went away before the answer"
            ),
        }
        self.observe(
            spans,
            served.map(|(m, d)| (m.as_ref(), d)),
            status,
            usage,
            elapsed,
        );
        if let Some(admission) = self.admission.take() {
            admission.settle(&Outcome {
                requested,
                served: served.map(|(m, d)| (m.name.as_str(), d.name.as_str(), d.provider_label)),
                pricing: served.map_or_else(Pricing::default, |(_, d)| d.pricing),
                usage,
                maybe_billed,
                status,
                latency: elapsed,
            });
        }
        if self.in_flight {
            metrics.in_flight.dec();
        }
    }
}
