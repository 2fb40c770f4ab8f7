//! Governance on the request path: who is calling (virtual keys), how fast they may call
//! (per-key limits, shared across the fleet), what each call cost (usage and price), and
//! whether a budget can pay for it (leases from the operator's ledger).
//!
//! A call is [`Meter::admit`]ted before routing: its key is checked, a limiter permit
//! taken and the worst case it can cost reserved from each budget it spends from. Once
//! it ends (a stream ends when its relay does) it is [`Meter::settle`]d: the reservation
//! becomes the actual cost, and one [`UsageRecord`](report::UsageRecord) goes to the log,
//! the metrics and the report to the operator.

pub mod keys;
pub mod lease;
pub mod ledger;
pub mod limiter;
pub mod remote;
pub mod report;
pub mod stream_tap;
pub mod usage;

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
use crate::config::routes::{Model, Routes};
use crate::config::snapshot::Pricing;
use crate::metrics::Metrics;
use crate::provider::Endpoint;
use crate::router::dispatch::Call;
use crate::server::error::ApiError;

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

/// What an admitted call holds until it is settled.
pub struct Admission {
    /// The caller's key, if the namespace has keys.
    pub key: Option<Arc<Key>>,
    /// The model that will serve the call (the downgrade target once a budget is spent).
    pub model: Arc<Model>,
    permit: Option<Permit>,
    /// Budgets the reservation was taken from.
    reserved_from: Vec<String>,
    /// Exhausted budgets with a downgrade: charged but not limited.
    charged_only: Vec<String>,
    reserved: u64,
    estimated_tokens: u64,
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
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| call.body.get(*f).and_then(Value::as_u64))
        .or(model.default_max_tokens.map(u64::from))
        .unwrap_or(DEFAULT_RESERVED_COMPLETION)
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

    /// Checks the caller's limits and reserves what the call may cost; the error is the
    /// answer.
    pub async fn admit(
        &self,
        routes: &Routes,
        key: Option<Arc<Key>>,
        model: Arc<Model>,
        call: &Call,
    ) -> Result<Admission, ApiError> {
        if let Some(key) = &key {
            keys::check_model(key, &model.name)?;
        }
        let key_label = key.as_ref().map_or("", |k| k.name.as_str());
        let permit = match &key {
            Some(k) if k.limits.any() => Some(
                k.limiter
                    .acquire(call.estimated_tokens, Instant::now())
                    .map_err(|refused| {
                        self.refused(key_label, refused_reason(refused));
                        rate_limited(&k.name, refused)
                    })?,
            ),
            _ => None,
        };
        let mut model = model;
        let mut charged_only: Vec<String> = Vec::new();
        // Each exhausted budget with a downgrade switches the model once.
        for _ in 0..=routes.budgets.len() {
            let budgets: Vec<String> = routes
                .budgets_for(key.as_deref(), &model.name)
                .into_iter()
                .filter(|b| !charged_only.contains(&b.name))
                .map(|b| b.name.clone())
                .collect();
            // Also what a stream cut short is charged, budget or not.
            let amount = worst_case_micros(
                call.estimated_tokens,
                max_completion(call, &model),
                &model.dearest,
            );
            match self.reserve(&budgets, amount).await {
                Ok(()) => {
                    return Ok(Admission {
                        key,
                        model,
                        permit,
                        reserved_from: budgets,
                        charged_only,
                        reserved: amount,
                        estimated_tokens: call.estimated_tokens,
                    });
                }
                Err(Short::Waiting(budget)) => {
                    self.refused(key_label, "budget_unavailable");
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
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
                            self.refused(key_label, "budget_exceeded");
                            return Err(ApiError::new(
                                StatusCode::TOO_MANY_REQUESTS,
                                "insufficient_quota",
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

    /// Reserves from every budget, asking the operator for more while the lease is
    /// short but the budget is not: other sidecars' leases shrink as their load does.
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

    /// Settles a call: the reservation becomes its cost, and its record is logged,
    /// counted and queued for the operator.
    pub fn settle(&self, admission: Admission, outcome: &Outcome<'_>) {
        let Admission {
            key,
            permit,
            reserved_from,
            charged_only,
            reserved,
            estimated_tokens,
            ..
        } = admission;
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
            self.leases.settle(&reserved_from, reserved, cost);
        }
        if !charged_only.is_empty() {
            self.leases.charge(&charged_only, cost);
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
                    self.metrics
                        .tokens
                        .with_label_values(&[key_label, team_label, outcome.requested, kind])
                        .inc_by(n);
                }
            }
            self.metrics
                .spend
                .with_label_values(&[key_label, team_label, outcome.requested])
                .inc_by(cost);
        }
        let latency_ms = u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "llmesh::usage",
            key = key_label, team = team_label, model = outcome.requested, served_by = served_model,
            deployment, provider, status = outcome.status.as_u16(),
            prompt_tokens = usage.prompt_tokens, completion_tokens = usage.completion_tokens,
            cached_tokens = usage.cached_tokens, reasoning_tokens = usage.reasoning_tokens,
            cost_micros = cost, estimated, latency_ms,
            "call metered"
        );
        // The operator folds spend into budgets only: a call no budget pays for is
        // complete with its log line and metrics.
        if reserved_from.is_empty() && charged_only.is_empty() {
            return;
        }
        let mut budgets = reserved_from;
        budgets.extend(charged_only);
        self.reporter.record(UsageRecord {
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
        "rate_limit_error",
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
