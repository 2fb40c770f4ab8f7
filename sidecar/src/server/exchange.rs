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

use std::sync::Arc;

use http::StatusCode;
use tokio::time::Instant;

use tokio::sync::oneshot;

use super::api::Proxy;
use super::detached::{self, Routed};
use super::error::ApiError;
use crate::config::routes::{Model, Routes};
use crate::config::snapshot::Pricing;
use crate::meter::usage::Usage;
use crate::meter::{Admission, Outcome, client_closed};
use crate::provider::Endpoint;
use crate::router::dispatch::{Call, Progress, Success, Trace};
use crate::router::relay::StreamEnd;

/// How the request ended, as far as is known.
enum End {
    /// Not ended: dropped like this, the client went away (or a panic unwound).
    Open,
    /// Answered with an error.
    Failed { status: StatusCode, message: String },
    /// Answered by a deployment; a stream says how it ended.
    Served {
        model: Arc<Model>,
        deployment: usize,
        usage: Option<Usage>,
        stream: Option<StreamEnd>,
    },
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
    end: End,
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
            end: End::Open,
        }
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
            progress.clone(),
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

    /// The request was admitted for `requested`: it is in flight from now on.
    pub fn admitted(&mut self, requested: Arc<Model>, admission: Admission) {
        self.requested = Some(requested);
        self.admission = Some(admission);
        self.proxy.metrics.in_flight.inc();
        self.in_flight = true;
    }

    /// The model asked for, once known.
    pub fn set_requested(&mut self, requested: Arc<Model>) {
        self.requested = Some(requested);
    }

    /// What routing fills in and enters models through: the trace and the admission.
    pub fn routing(&mut self) -> (&mut Trace, Option<&mut Admission>) {
        (&mut self.trace, self.admission.as_mut())
    }

    /// The answer was an error.
    pub fn failed(&mut self, status: StatusCode, message: &str) {
        self.end = End::Failed {
            status,
            message: message.to_owned(),
        };
    }

    /// The answer was whole and came from `deployment` of `model`.
    pub fn served(&mut self, model: Arc<Model>, deployment: usize, usage: Option<Usage>) {
        self.end = End::Served {
            model,
            deployment,
            usage,
            stream: None,
        };
    }

    /// A stream from `deployment` of `model` ended.
    pub fn streamed(
        &mut self,
        model: Arc<Model>,
        deployment: usize,
        end: StreamEnd,
        usage: Option<Usage>,
    ) {
        self.end = End::Served {
            model,
            deployment,
            usage,
            stream: Some(end),
        };
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
        let metrics = &self.proxy.metrics;
        let elapsed = self.started.elapsed();
        let requested = self.requested.as_ref().map_or("", |m| m.name.as_str());
        // Who answered: the deployment that served, else the last one tried.
        let (served, deployment) = match &self.end {
            End::Served {
                model, deployment, ..
            } => (Some(model), *deployment),
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
        };
        metrics
            .requests
            .with_label_values(&[
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
            // Refused before a model was known (bad input, no key): not worth a line
            // each at info, where anyone able to connect could flood the log.
            End::Failed { status, message } if self.requested.is_none() => tracing::debug!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), status = status.as_u16(), duration_ms,
                error = %message, "request refused"
            ),
            End::Failed { status, message } => tracing::info!(
                target: "llmesh::access",
                endpoint = self.endpoint.as_str(), model = requested, served_by,
                deployment = deployment_name, status = status.as_u16(), attempts = self.trace.attempts,
                duration_ms, error = %message,
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
