//! Governance on the request path: who is calling (virtual keys), how fast they may call
//! (per-key limits, shared across the fleet), what each call cost (usage and price), and
//! whether a budget can pay for it (leases from the operator's ledger).
//!
//! A call is [`Meter::admit`]ted before routing: its key is checked and a limiter permit
//! taken. The router then enters each model it tries through the [`Admission`] (the
//! router's [`Gate`]), which reserves the worst case that model can cost from each
//! budget it spends from, so budgets follow the model that serves. Once the call ends (a
//! stream ends when its relay does) the admission is [`Admission::settle`]d: the
//! reservation becomes the actual cost, and one [`UsageRecord`](report::UsageRecord)
//! goes to the log, the metrics and the report to the operator. An admission is a
//! guard: dropped unsettled, it settles itself.
//!
//! A call answered from the response cache is admitted (key, model access, rpm and
//! parallel limits) with no tokens and enters no model: it reserves nothing, is charged
//! nothing, and its usage line says `cache="hit"`.

pub mod keys;
pub mod lease;
pub mod ledger;
pub mod limiter;
pub mod remote;
pub mod report;
pub mod usage;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use self::keys::Key;
use self::lease::{Leases, Short};
use self::limiter::{Permit, Refused};
use self::report::{Reporter, UsageRecord};
use self::usage::{Usage, worst_case_micros};
use crate::cache::Outcome as CacheOutcome;
use crate::config::snapshot::Pricing;
use crate::domain::Call;
use crate::domain::Endpoint;
use crate::domain::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use crate::router::gate::Gate;
use crate::router::routes::{Model, Routes};

/// Completion tokens reserved for a call that sets no `max_tokens` and whose model has
/// no default: enough for almost every answer, and settled to the actual usage after.
pub const DEFAULT_RESERVED_COMPLETION: u64 = 4_096;
/// How long a call waits for the operator to answer a lease request.
const LEASE_WAIT: Duration = Duration::from_secs(3);
/// How long a call waits for a lease while other sidecars hold what the budget has left.
const CONTENTION_WAIT: Duration = Duration::from_secs(5);

/// The sidecar's metering state.
pub struct Meter {
    /// Collects and reports usage.
    pub reporter: Arc<Reporter>,
    /// Budget leases.
    pub leases: Arc<Leases>,
    /// The key a pod is bound to: its calls need no header.
    pub bound_key: Option<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// What an admitted call holds until it is settled: its limiter permit and the
/// reservation on the budgets of the model it is trying.
///
/// It settles exactly once. [`Admission::settle`] says how the call ended; an admission
/// dropped unsettled (its request dropped mid-way by a panic, or by a caller that lost
/// it) settles itself as a call that may have been billed, so a reservation can never
/// outlive its call.
pub struct Admission {
    meter: Arc<Meter>,
    routes: Arc<Routes>,
    /// The caller's key, if the namespace has keys.
    pub key: Option<Arc<Key>>,
    /// The model asked for; usage is recorded under its name.
    requested: Arc<Model>,
    permit: Option<Permit>,
    /// Budgets the reservation was taken from.
    reserved_from: Vec<String>,
    /// Exhausted budgets with a downgrade: charged but not limited.
    charged_only: Vec<String>,
    /// The worst case of the model entered last: reserved from `reserved_from`, and the
    /// charge of a call that may have been billed without a usage report.
    reserved: u64,
    estimated_tokens: u64,
    /// What the response cache did for the call, and what a hit saved (micro-dollars).
    cache: Option<(CacheOutcome, u64)>,
    settled: bool,
}

/// How a call ended, for settling it.
pub struct Outcome<'a> {
    /// The model asked for.
    pub requested: &'a str,
    /// The model, deployment and provider that answered, if any did.
    pub served: Option<(&'a str, &'a str, &'static str)>,
    /// The answering deployment's prices.
    pub pricing: Pricing,
    /// Usage the provider reported.
    pub usage: Option<Usage>,
    /// Whether the provider may have billed the call without reporting usage (a stream
    /// cut short): then the reservation is charged.
    pub maybe_billed: bool,
    /// Status the client got.
    pub status: StatusCode,
    /// Time to the end of the answer.
    pub latency: Duration,
}

/// The key presented in `Authorization: Bearer` or `x-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The most completion tokens a call may produce.
fn max_completion(call: &Call, model: &Model) -> u64 {
    if call.endpoint == Endpoint::Embeddings {
        return 0;
    }
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|f| call.body.get(*f).and_then(Value::as_u64))
        .or(model.default_max_tokens.map(u64::from))
        .unwrap_or(DEFAULT_RESERVED_COMPLETION)
}

/// Micro-dollars as a gauge value.
fn gauge_value(micros: u64) -> i64 {
    i64::try_from(micros).unwrap_or(i64::MAX)
}

fn unix_now() -> i64 {
    report::unix_ms() / 1000
}

impl Meter {
    /// Who is calling: the presented key, else the pod's bound key; `None` when the
    /// namespace has no keys. The error is the answer.
    pub fn authenticate(
        &self,
        routes: &Routes,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Key>>, ApiError> {
        routes.keys.authenticate(
            presented_key(headers),
            self.bound_key.as_deref(),
            unix_now(),
        )
    }

    /// Checks that the caller may call `requested` and takes a limiter permit; the error
    /// is the answer. Budgets are reserved per model as the router enters each one
    /// ([`Admission`] is its [`Gate`]), so they follow the model that serves.
    pub fn admit(
        self: &Arc<Self>,
        routes: &Arc<Routes>,
        key: Option<Arc<Key>>,
        requested: Arc<Model>,
        call: &Call,
    ) -> Result<Admission, ApiError> {
        if let Some(key) = &key {
            keys::check_model(key, &requested.name)?;
        }
        let permit = match &key {
            Some(k) if k.limits.any() => Some(
                k.limiter
                    .acquire(call.estimated_tokens, Instant::now())
                    .map_err(|refused| {
                        self.refused(&k.name, refused_reason(refused));
                        rate_limited(&k.name, refused)
                    })?,
            ),
            _ => None,
        };
        Ok(Admission {
            meter: self.clone(),
            routes: routes.clone(),
            key,
            requested,
            permit,
            reserved_from: Vec::new(),
            charged_only: Vec::new(),
            reserved: 0,
            estimated_tokens: call.estimated_tokens,
            cache: None,
            settled: false,
        })
    }

    /// Reserves from every budget, asking the operator for more while a lease is short
    /// but its budget is not: other sidecars' leases shrink as their load does.
    async fn reserve(&self, budgets: &[String], amount: u64) -> Result<(), Short> {
        if budgets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + CONTENTION_WAIT;
        loop {
            match self.leases.reserve(budgets, amount, Instant::now()) {
                Ok(()) => return Ok(()),
                Err(Short::Exhausted(b)) => return Err(Short::Exhausted(b)),
                Err(Short::Waiting(b)) => {
                    if Instant::now() >= deadline || !self.reporter.report_now(LEASE_WAIT).await {
                        return Err(Short::Waiting(b));
                    }
                }
            }
        }
    }

    fn refused(&self, key: &str, reason: &str) {
        self.metrics
            .refusals
            .with_label_values(&[key, reason])
            .inc();
    }
}

impl Admission {
    /// Reserves the worst case of serving the call with `model` from the budgets that
    /// model spends from, after giving back what the model entered before held (it did
    /// not serve, and a call that failed is charged nothing). Answers the model to try:
    /// `model`, or the target of a spent budget's downgrade.
    pub async fn enter_model(
        &mut self,
        model: &Arc<Model>,
        call: &Call,
    ) -> Result<Arc<Model>, ApiError> {
        self.release();
        let routes = self.routes.clone();
        let key_label = self.key.as_ref().map_or("", |k| k.name.as_str());
        let mut model = model.clone();
        let mut charged_only: Vec<String> = Vec::new();
        // Each exhausted budget with a downgrade switches the model once.
        for _ in 0..=routes.budgets.len() {
            let budgets: Vec<String> = routes
                .budgets_for(self.key.as_deref(), &model.name)
                .into_iter()
                .filter(|b| !charged_only.contains(&b.name))
                .map(|b| b.name.clone())
                .collect();
            // Also what a call that may have been billed without a usage report is
            // charged, budget or not.
            let amount = worst_case_micros(
                call.estimated_tokens,
                max_completion(call, &model),
                &model.dearest,
            );
            match self.meter.reserve(&budgets, amount).await {
                Ok(()) => {
                    if !budgets.is_empty() {
                        self.meter.metrics.budget_reserved.add(gauge_value(amount));
                    }
                    self.reserved_from = budgets;
                    self.charged_only = charged_only;
                    self.reserved = amount;
                    return Ok(model);
                }
                Err(Short::Waiting(budget)) => {
                    self.meter.refused(key_label, "budget_unavailable");
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorKind::Server,
                        format!("Budget `{budget}` cannot grant this call now: the operator did not answer, or what is left is held by other sidecars. Retry shortly."),
                    )
                    .with_code("budget_unavailable")
                    .with_retry_after(Some(1)));
                }
                Err(Short::Exhausted(budget)) => {
                    let rule = routes.budgets.iter().find(|b| b.name == budget);
                    let target = rule
                        .and_then(|b| b.downgrade_to.as_deref())
                        .and_then(|to| routes.model(to));
                    match target {
                        Some(target) if target.name != model.name => {
                            tracing::debug!(budget, to = %target.name, "budget exhausted: downgrading");
                            model = target.clone();
                            charged_only.push(budget);
                        }
                        _ => {
                            self.meter.refused(key_label, "budget_exceeded");
                            return Err(ApiError::new(
                                StatusCode::TOO_MANY_REQUESTS,
                                ErrorKind::InsufficientQuota,
                                format!("Budget `{budget}` is exhausted for this period; calls are refused until it resets."),
                            )
                            .with_code("budget_exceeded"));
                        }
                    }
                }
            }
        }
        Err(ApiError::internal("budget downgrades form a loop"))
    }

    /// Gives back the reservation of the model entered last, charging nothing.
    fn release(&mut self) {
        let reserved_from = std::mem::take(&mut self.reserved_from);
        if !reserved_from.is_empty() {
            self.meter.leases.settle(&reserved_from, self.reserved, 0);
            self.meter
                .metrics
                .budget_reserved
                .sub(gauge_value(self.reserved));
        }
        self.charged_only.clear();
        self.reserved = 0;
    }

    /// Says what the response cache did for the call (for its usage line), and for a
    /// hit, what the answer had cost when it was stored: the spend the hit saved.
    pub fn set_cache(&mut self, outcome: CacheOutcome, saved_micros: u64) {
        self.cache = Some((outcome, saved_micros));
    }

    /// Settles the call: the reservation becomes its cost, and its record is logged,
    /// counted and queued for the operator.
    pub fn settle(mut self, outcome: &Outcome<'_>) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: &Outcome<'_>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let key = self.key.take();
        let permit = self.permit.take();
        let reserved_from = std::mem::take(&mut self.reserved_from);
        let charged_only = std::mem::take(&mut self.charged_only);
        let reserved = std::mem::take(&mut self.reserved);
        let estimated_tokens = self.estimated_tokens;
        let meter = self.meter.clone();
        let (cost, estimated) = match outcome.usage {
            Some(usage) => (usage.cost_micros(&outcome.pricing), false),
            None if outcome.maybe_billed => (reserved, true),
            None => (0, false),
        };
        let usage = outcome.usage.unwrap_or_default();
        if let Some(mut permit) = permit {
            permit.settle(if outcome.usage.is_some() {
                usage.total()
            } else if outcome.maybe_billed {
                estimated_tokens
            } else {
                0
            });
        }
        if !reserved_from.is_empty() {
            meter.leases.settle(&reserved_from, reserved, cost);
            meter.metrics.budget_reserved.sub(gauge_value(reserved));
        }
        if !charged_only.is_empty() {
            meter.leases.charge(&charged_only, cost);
        }
        let (served_model, deployment, provider) = outcome.served.unwrap_or(("", "", ""));
        let key_label = key.as_ref().map_or("", |k| k.name.as_str());
        let team_label = key.as_ref().and_then(|k| k.team.as_deref()).unwrap_or("");
        if outcome.usage.is_some() || cost > 0 {
            for (kind, n) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
                ("cached", usage.cached_tokens),
                ("reasoning", usage.reasoning_tokens),
            ] {
                if n > 0 {
                    meter
                        .metrics
                        .tokens
                        .with_label_values(&[key_label, team_label, outcome.requested, kind])
                        .inc_by(n);
                }
            }
            meter
                .metrics
                .spend
                .with_label_values(&[key_label, team_label, outcome.requested])
                .inc_by(cost);
        }
        if let Some((CacheOutcome::Hit, saved)) = self.cache {
            meter
                .metrics
                .cache_saved
                .with_label_values(&[key_label, team_label, outcome.requested])
                .inc_by(saved);
        }
        let cache = self.cache.map_or("none", |(c, _)| c.as_str());
        let latency_ms = u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "llmesh::usage",
            key = key_label, team = team_label, model = outcome.requested, served_by = served_model,
            deployment, provider, status = outcome.status.as_u16(),
            prompt_tokens = usage.prompt_tokens, completion_tokens = usage.completion_tokens,
            cached_tokens = usage.cached_tokens, reasoning_tokens = usage.reasoning_tokens,
            cost_micros = cost, estimated, latency_ms, cache,
            "call metered"
        );
        // The operator folds spend into budgets only: a call no budget pays for is
        // complete with its log line and metrics.
        if reserved_from.is_empty() && charged_only.is_empty() {
            return;
        }
        let mut budgets = reserved_from;
        budgets.extend(charged_only);
        meter.reporter.record(UsageRecord {
            key: key.as_ref().map(|k| k.name.clone()),
            team: key.as_ref().and_then(|k| k.team.clone()),
            model: outcome.requested.to_owned(),
            served_model: served_model.to_owned(),
            deployment: deployment.to_owned(),
            provider: provider.to_owned(),
            usage,
            cost_micros: cost,
            estimated,
            status: outcome.status.as_u16(),
            latency_ms,
            budgets,
        });
    }
}

impl Gate for Admission {
    fn enter(
        &mut self,
        model: &Arc<Model>,
        call: &Call,
    ) -> impl Future<Output = Result<Arc<Model>, ApiError>> + Send {
        self.enter_model(model, call)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Nobody said how the call ended: it may have reached a provider and been
        // billed, so it is charged its reservation (the rule of a call cut short).
        let requested = self.requested.clone();
        self.finish(&Outcome {
            requested: &requested.name,
            served: None,
            pricing: Pricing::default(),
            usage: None,
            maybe_billed: true,
            status: client_closed(),
            latency: Duration::ZERO,
        });
    }
}

/// The status of a call whose client went away first (nginx's 499): never sent, only
/// logged and counted.
pub fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

fn refused_reason(refused: Refused) -> &'static str {
    match refused {
        Refused::Rpm(_) => "rpm",
        Refused::Tpm(_) => "tpm",
        Refused::Parallel => "parallel",
    }
}

/// OpenAI's rate-limit answer, naming the key's limit that refused the call.
fn rate_limited(key: &str, refused: Refused) -> ApiError {
    let (what, wait) = match refused {
        Refused::Rpm(wait) => ("requests per minute", Some(wait)),
        Refused::Tpm(wait) => ("tokens per minute", Some(wait)),
        Refused::Parallel => ("requests in flight", None),
    };
    let secs = wait.map(|w| {
        u32::try_from(w.as_secs() + u64::from(w.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1)
    });
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::RateLimit,
        format!("Rate limit reached for virtual key `{key}` on {what}. Please try again later."),
    )
    .with_code("rate_limit_exceeded")
    .with_retry_after(secs.or(Some(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "sk-b".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-b"));
        h.insert(http::header::AUTHORIZATION, "Bearer sk-a".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-a"));
    }
}
