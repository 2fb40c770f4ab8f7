//! Plain (non-streaming) calls are routed in a task of their own, so a client that
//! leaves before the answer does not cut the upstream call short. The provider bills a
//! call it received whether or not anyone reads the answer; letting the call finish is
//! what tells the sidecar what it cost. Without it the sidecar could only charge the
//! call's worst case, and a few abandoned calls to a slow model would hold a small
//! budget's worth of reservations for nothing (issue 12).
//!
//! While the client waits, the task hands the routing result back to its
//! [`Exchange`](super::exchange::Exchange) and the request ends as any other. Once the
//! client has left, the request ends at once (status 499, in-flight gauge down, access
//! log line), and the task, still holding the call's reservation and limiter permit,
//! settles the admission itself when the upstream answers: with the usage it reports,
//! else (upstream error, timeout, a body without usage) with the reservation, the
//! charge of a call that may have been billed. The task is bounded by the model's total
//! timeout (the router's deadline) plus the budget waits before it.
//!
//! [`Detached`] counts these tasks: shutdown waits for them within its grace period and
//! then stops the rest, which settle at their reservation, before the last usage report
//! is flushed, so no reservation or record is lost.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::api::Proxy;
use crate::config::snapshot::Pricing;
use crate::domain::{ApiError, Call, ErrorKind};
use crate::meter::{Admission, Outcome, client_closed};
use crate::router::dispatch::{Answer, Success, Trace, dispatch};
use crate::router::routes::{Model, Routes};
use crate::telemetry::spans::Finish;

/// How long shutdown waits for stopped tasks to settle.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What a routing task hands back to the exchange of a client that still waits.
pub struct Routed {
    /// The answer, or why there is none.
    pub result: Result<Success, ApiError>,
    /// What routing did.
    pub trace: Trace,
    /// The call's admission, not yet settled.
    pub admission: Admission,
}

/// The routing tasks of plain calls: how many run, and the signal that stops them at
/// shutdown.
pub struct Detached {
    running: watch::Sender<usize>,
    stop: watch::Sender<bool>,
}

impl Default for Detached {
    fn default() -> Self {
        Detached {
            running: watch::Sender::new(0),
            stop: watch::Sender::new(false),
        }
    }
}

/// Counts one routing task while it lives.
struct Running(watch::Sender<usize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Detached {
    /// Waits for every routing task to settle until `deadline`; then stops those left,
    /// which settle at their reservation, and waits (briefly) for them. Answers how many
    /// were stopped.
    pub async fn settle_all(&self, deadline: Instant) -> usize {
        let mut running = self.running.subscribe();
        if tokio::time::timeout_at(deadline, running.wait_for(|n| *n == 0))
            .await
            .is_ok()
        {
            return 0;
        }
        let stopped = *running.borrow();
        self.stop.send_replace(true);
        let _ = tokio::time::timeout(STOP_WAIT, running.wait_for(|n| *n == 0)).await;
        stopped
    }
}

/// Routes `call` in a task of its own; the answer arrives on the receiver while it is
/// held. Dropped (the client left), the task settles the call itself once it ends.
/// `trace` starts with where to publish progress and how attempts carry the trace.
pub fn spawn(
    proxy: &Arc<Proxy>,
    routes: Arc<Routes>,
    requested: Arc<Model>,
    call: Call,
    started: Instant,
    mut admission: Admission,
    mut trace: Trace,
) -> oneshot::Receiver<Routed> {
    let (tx, rx) = oneshot::channel();
    let detached = &proxy.detached;
    detached.running.send_modify(|n| *n += 1);
    let running = Running(detached.running.clone());
    let mut stop = detached.stop.subscribe();
    let metrics = proxy.metrics.clone();
    tokio::spawn(async move {
        let _running = running;
        let routing = dispatch(
            &routes,
            &requested,
            &call,
            &metrics,
            started,
            &mut trace,
            &mut admission,
        );
        let result = tokio::select! {
            result = routing => result,
            () = stopped(&mut stop) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Server,
                "The gateway is shutting down.",
            )),
        };
        let routed = Routed {
            result,
            trace,
            admission,
        };
        // Refused only once the exchange has closed the receiver: the client left.
        if let Err(routed) = tx.send(routed) {
            settle(routed, &requested, started);
        }
    });
    rx
}

/// Resolves once shutdown stops routing tasks; never if nobody can stop them anymore.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Settles a call whose client left before the answer: at the usage the upstream
/// reported, else at the reservation if an upstream had the call, else at nothing.
pub fn settle(routed: Routed, requested: &Model, started: Instant) {
    let Routed {
        result,
        trace,
        admission,
    } = routed;
    let (served, usage) = match &result {
        Ok(Success {
            model,
            deployment,
            answer: Answer::Full(reply),
            ..
        }) => (Some((model.clone(), *deployment)), reply.usage),
        // A plain call is never answered with a stream; dropping one cuts it.
        Ok(Success {
            model, deployment, ..
        }) => (Some((model.clone(), *deployment)), None),
        Err(_) => (trace.last.clone(), None),
    };
    let served = served
        .as_ref()
        .and_then(|(m, i)| Some((m.as_ref(), m.deployments.get(*i)?)));
    if let Ok(success) = result {
        let provider = served.map(|(_, d)| d.provider_label);
        success.attempt.finish(&Finish {
            status: Some(client_closed().as_u16()),
            error: Some("client_closed"),
            provider,
            usage,
            ..Finish::default()
        });
    }
    tracing::debug!(
        model = %requested.name,
        usage = usage.is_some(),
        attempts = trace.attempts,
        "call settled after its client left"
    );
    admission.settle(&Outcome {
        requested: &requested.name,
        served: served.map(|(m, d)| (m.name.as_str(), d.name.as_str(), d.provider_label)),
        pricing: served.map_or_else(Pricing::default, |(_, d)| d.pricing),
        usage,
        maybe_billed: usage.is_none() && trace.attempts > 0,
        status: client_closed(),
        latency: started.elapsed(),
    });
}
