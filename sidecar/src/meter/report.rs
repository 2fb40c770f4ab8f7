//! Usage reporting: the sidecar → operator half of metering, and the protocol of it.
//!
//! A sidecar sends `POST /v1/usage` (same TLS endpoint and token as the config stream)
//! about once a second, or at once when a lease runs short: a sequence-numbered batch of
//! usage records, the lease it wants per budget, and its demand per rate-limited key.
//! The operator folds the batch into Budget status exactly once (deduplicated by
//! reporter id and sequence, see [`super::ledger`]) and answers with the leases granted
//! and this sidecar's share of each key's limits. A batch is resent, unchanged, until it
//! is acknowledged; only then is the next one cut, so sequences arrive in order.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::lease::{Grant, Leases};
use super::ledger;
use super::limiter::Demand;
use super::usage::Usage;
use crate::router::routes::Routes;

/// The path reports are posted to.
pub const PATH: &str = "/v1/usage";
/// How often a sidecar reports.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// A report is cut early once this many records wait.
pub const MAX_RECORDS: usize = 500;

/// At most one outage warning per this long.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// Lets one event through per period and counts the ones held back.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    held: u32,
}

impl RateLimit {
    /// One event per `every`.
    pub fn new(every: Duration) -> Self {
        RateLimit {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(events held back since the last one let through)` if this one may pass.
    pub fn allow(&mut self, now: Instant) -> Option<u32> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }

    /// The next event passes (a new outage deserves its own warning).
    pub fn reset(&mut self) {
        self.last = None;
        self.held = 0;
    }
}

/// One served (or failed) call, as metered. Never holds content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The virtual key's name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The model asked for.
    pub model: String,
    /// The model that answered (a fallback or downgrade, maybe).
    pub served_model: String,
    /// The deployment that answered.
    pub deployment: String,
    /// Its provider.
    pub provider: String,
    /// Tokens.
    pub usage: Usage,
    /// What it cost, micro-dollars.
    pub cost_micros: u64,
    /// Whether the cost is the reservation because the provider reported no usage.
    #[serde(default)]
    pub estimated: bool,
    /// HTTP status the client got.
    pub status: u16,
    /// Time to the end of the answer, milliseconds.
    pub latency_ms: u64,
    /// Budgets the cost counts against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<String>,
}

/// A batch of usage and the sidecar's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Who reports: unique per sidecar process.
    pub reporter: String,
    /// 1, 2, 3... per reporter; a resend keeps its number.
    pub seq: u64,
    /// What was served since the last batch.
    pub records: Vec<UsageRecord>,
    /// The lease wanted per budget, micro-dollars.
    #[serde(default)]
    pub leases: BTreeMap<String, u64>,
    /// Demand per rate-limited key since the last batch.
    #[serde(default)]
    pub demand: BTreeMap<String, Demand>,
    /// Budgets that refused calls as exhausted since the last batch: what is left, by
    /// the last answer, could not pay a call's worst case. The operator shows such a
    /// budget exhausted (and alerts) though its spend may be short of the limit. Absent
    /// when empty, so an operator that predates it reads the batch as before.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exhausted: BTreeSet<String>,
}

impl Report {
    /// Each budget the batch spends from or asks a lease of, with its part.
    pub fn parts(&self) -> BTreeMap<&str, ledger::Part<'_>> {
        let mut parts: BTreeMap<&str, ledger::Part<'_>> = BTreeMap::new();
        let empty = ledger::Part {
            reporter: &self.reporter,
            seq: self.seq,
            cost_micros: 0,
            want: None,
        };
        for record in &self.records {
            for budget in &record.budgets {
                let p = parts.entry(budget.as_str()).or_insert(empty);
                p.cost_micros = p.cost_micros.saturating_add(record.cost_micros);
            }
        }
        for (budget, want) in &self.leases {
            parts.entry(budget.as_str()).or_insert(empty).want = Some(*want);
        }
        for budget in &self.exhausted {
            parts.entry(budget.as_str()).or_insert(empty);
        }
        parts
    }
}

/// The longest lease a sidecar honours, whatever an answer says (the operator grants
/// [`ledger::LEASE_TTL_MS`]).
pub const MAX_LEASE_TTL_MS: u64 = 60_000;

/// A lease in an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseGrant {
    /// The lease, net of everything the acknowledged batch spent.
    pub balance_micros: u64,
    /// What the whole budget has left (limit minus spent), micro-dollars.
    #[serde(default)]
    pub remaining_micros: i64,
    /// How long it lives, from the report's sending.
    pub ttl_ms: u64,
}

impl LeaseGrant {
    /// A lease of `balance_micros` from a budget of `limit_micros` with `spent_micros`.
    pub fn new(balance_micros: u64, limit_micros: u64, spent_micros: i64) -> Self {
        LeaseGrant {
            balance_micros,
            remaining_micros: i64::try_from(limit_micros)
                .unwrap_or(i64::MAX)
                .saturating_sub(spent_micros),
            ttl_ms: ledger::LEASE_TTL_MS.unsigned_abs(),
        }
    }
}

/// The operator's answer to a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The batch acknowledged: everything in it is in Budget status.
    pub seq: u64,
    /// Leases per budget.
    #[serde(default)]
    pub leases: BTreeMap<String, LeaseGrant>,
    /// This sidecar's share of each key's limits, parts per million.
    #[serde(default)]
    pub shares: BTreeMap<String, u32>,
}

/// Future of a report's answer.
pub type AckFuture<'a> = Pin<Box<dyn Future<Output = Result<Ack, String>> + Send + 'a>>;

/// Where reports go: the operator, or an in-process ledger.
pub trait Authority: Send + Sync + 'static {
    /// Folds a report and answers it.
    fn submit<'a>(&'a self, report: &'a Report) -> AckFuture<'a>;
}

/// An in-process ledger for a sidecar run without an operator (`--config`,
/// `llmesh-local`): budgets hold within this one process, from its start.
#[derive(Default)]
pub struct LocalAuthority {
    budgets: Mutex<BTreeMap<String, (i64, Vec<ledger::Reporter>)>>,
    limits: Mutex<BTreeMap<String, u64>>,
}

impl LocalAuthority {
    /// Sets the budgets' limits (from the snapshot).
    pub fn set_limits(&self, limits: BTreeMap<String, u64>) {
        *self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// Spent so far on `budget`.
    pub fn spent(&self, budget: &str) -> i64 {
        self.budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(budget)
            .map_or(0, |b| b.0)
    }
}

impl Authority for LocalAuthority {
    fn submit<'a>(&'a self, report: &'a Report) -> AckFuture<'a> {
        Box::pin(async move {
            let limits = self
                .limits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let mut budgets = self
                .budgets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = unix_ms();
            let mut ack = Ack {
                seq: report.seq,
                ..Ack::default()
            };
            for (name, part) in report.parts() {
                let Some(&limit) = limits.get(name) else {
                    continue;
                };
                let (spent, reporters) = budgets.entry(name.to_owned()).or_default();
                let folded = ledger::fold(limit, spent, reporters, part, now);
                ack.leases.insert(
                    name.to_owned(),
                    LeaseGrant::new(folded.lease_micros, limit, *spent),
                );
            }
            Ok(ack)
        })
    }
}

/// Wall-clock Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Collects records and runs the report loop.
pub struct Reporter {
    id: String,
    authority: Arc<dyn Authority>,
    leases: Arc<Leases>,
    records: Mutex<Vec<UsageRecord>>,
    /// The batch on its way (resent until acknowledged).
    pending: tokio::sync::Mutex<Option<Report>>,
    next_seq: Mutex<u64>,
    urgent: Notify,
    /// Counts acknowledgements, so callers can wait for a fresh answer.
    acks: watch::Sender<u64>,
    /// Records not yet acknowledged, for the metric.
    gauge: Option<prometheus::IntGauge>,
}

impl Reporter {
    /// A reporter named `id`, sending to `authority`.
    pub fn new(id: String, authority: Arc<dyn Authority>, leases: Arc<Leases>) -> Self {
        Reporter {
            id,
            authority,
            leases,
            records: Mutex::new(Vec::new()),
            pending: tokio::sync::Mutex::new(None),
            next_seq: Mutex::new(1),
            urgent: Notify::new(),
            acks: watch::channel(0).0,
            gauge: None,
        }
    }

    /// Keeps `gauge` at the number of records not yet acknowledged.
    pub fn with_gauge(mut self, gauge: prometheus::IntGauge) -> Self {
        self.gauge = Some(gauge);
        self
    }

    /// The reporter's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a record.
    pub fn record(&self, record: UsageRecord) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records.push(record);
        if let Some(gauge) = &self.gauge {
            gauge.inc();
        }
        if records.len() >= MAX_RECORDS {
            self.urgent.notify_one();
        }
    }

    /// Asks for a report now and waits (up to `wait`) for its answer. True if one came.
    pub async fn report_now(&self, wait: Duration) -> bool {
        let mut acks = self.acks.subscribe();
        acks.borrow_and_update();
        // Callers waiting on leases coalesce into one report per pause.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.urgent.notify_one();
        matches!(tokio::time::timeout(wait, acks.changed()).await, Ok(Ok(())))
    }

    /// Records not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        let queued = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let pending = self
            .pending
            .try_lock()
            .map_or(0, |p| p.as_ref().map_or(0, |r| r.records.len()));
        queued + pending
    }

    /// Sends one report (the pending one, or a new one) and applies the answer.
    pub async fn send_once(&self, routes: Option<&Routes>) -> Result<(), String> {
        let mut pending = self.pending.lock().await;
        if pending.is_none() {
            let records = std::mem::take(
                &mut *self
                    .records
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let leases = self.leases.cut();
            let demand: BTreeMap<String, Demand> = routes
                .map(|r| {
                    r.keys
                        .keys()
                        .filter(|k| k.limits.any())
                        .map(|k| (k.name.clone(), k.limiter.take_demand()))
                        .collect()
                })
                .unwrap_or_default();
            let exhausted = self.leases.take_refused();
            if records.is_empty() && leases.is_empty() && demand.is_empty() && exhausted.is_empty()
            {
                return Ok(());
            }
            let mut next = self
                .next_seq
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *pending = Some(Report {
                reporter: self.id.clone(),
                seq: *next,
                records,
                leases,
                demand,
                exhausted,
            });
            *next += 1;
        } else if let Some(report) = pending.as_mut() {
            report.leases = self.leases.wants();
        }
        let Some(report) = pending.as_ref() else {
            return Ok(());
        };
        let sent = Instant::now();
        let ack = self.authority.submit(report).await?;
        if ack.seq != report.seq {
            return Err(format!(
                "the answer acknowledges batch {} instead of {}",
                ack.seq, report.seq
            ));
        }
        let grants = ack
            .leases
            .iter()
            .map(|(name, g)| {
                (
                    name.clone(),
                    Grant {
                        balance: g.balance_micros,
                        remaining: g.remaining_micros,
                        // Bounded, so no later `Instant` arithmetic can overflow.
                        ttl: Duration::from_millis(g.ttl_ms.min(MAX_LEASE_TTL_MS)),
                    },
                )
            })
            .collect();
        self.leases.acknowledged(&grants, sent);
        if let Some(routes) = routes {
            let now = Instant::now();
            for (name, share) in &ack.shares {
                if let Some(key) = routes.keys.by_name(name) {
                    key.limiter.set_share(*share, now);
                }
            }
        }
        if let Some(gauge) = &self.gauge {
            gauge.sub(i64::try_from(report.records.len()).unwrap_or(i64::MAX));
        }
        *pending = None;
        self.acks.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Reports every [`INTERVAL`] (or at once when asked) until `stop`, retrying failed
    /// batches with backoff.
    pub async fn run(
        self: Arc<Self>,
        routes: watch::Receiver<Option<Arc<Routes>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failures = 0u32;
        let mut quiet = RateLimit::new(WARN_EVERY);
        // The first report goes at once: it brings this sidecar's shares and leases.
        let mut first = true;
        loop {
            let wait = if std::mem::take(&mut first) {
                Duration::ZERO
            } else if failures == 0 {
                INTERVAL
            } else {
                Duration::from_millis(250).saturating_mul(1 << failures.min(5))
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.urgent.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let current = routes.borrow().clone();
            match self.send_once(current.as_deref()).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "the operator acknowledges usage reports again");
                    }
                    failures = 0;
                    quiet.reset();
                }
                Err(err) => {
                    failures += 1;
                    if let Some(suppressed) = quiet.allow(Instant::now()) {
                        self.warn_unacknowledged(&err, failures, suppressed);
                    }
                }
            }
        }
    }

    /// The outage warning. Calls waiting for a lease ask for reports at once, so failures
    /// can come several a second: the caller rate-limits this to one per
    /// [`WARN_EVERY`] and says how many it held back.
    fn warn_unacknowledged(&self, err: &str, failures: u32, suppressed: u32) {
        // Taken after the failed send let go of the pending batch, so it is counted.
        let records = self.unacknowledged();
        if records > 0 {
            tracing::warn!(error = %err, records, failures, suppressed, "usage report not acknowledged; will resend");
        } else {
            tracing::warn!(error = %err, failures, suppressed, "the operator did not answer a lease or limit request (no usage is waiting); will retry");
        }
    }

    /// Sends everything queued, for up to `deadline`; returns the records left unsent.
    pub async fn flush(&self, routes: Option<&Routes>, deadline: Instant) -> usize {
        while self.unacknowledged() > 0 && Instant::now() < deadline {
            if let Err(err) = tokio::time::timeout_at(deadline, self.send_once(routes))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
            {
                tracing::warn!(error = %err, "usage flush failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.unacknowledged()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cost: u64) -> UsageRecord {
        UsageRecord {
            key: Some("k".into()),
            team: None,
            model: "m".into(),
            served_model: "m".into(),
            deployment: "d".into(),
            provider: "openai".into(),
            usage: Usage::default(),
            cost_micros: cost,
            estimated: false,
            status: 200,
            latency_ms: 1,
            budgets: vec!["b".into()],
        }
    }

    /// Fails the first `n` submissions after folding them, like an answer lost on the way.
    struct Lossy {
        inner: LocalAuthority,
        lose: Mutex<u32>,
    }

    impl Authority for Lossy {
        fn submit<'a>(&'a self, report: &'a Report) -> AckFuture<'a> {
            Box::pin(async move {
                let ack = self.inner.submit(report).await?;
                let mut lose = self.lose.lock().unwrap();
                if *lose > 0 {
                    *lose -= 1;
                    return Err("connection reset".into());
                }
                Ok(ack)
            })
        }
    }

    /// Old and new sidecars and operators read each other's reports: the refusals are
    /// absent when there are none, and a report without them reads as none.
    #[test]
    fn refusals_in_reports_are_compatible_both_ways() {
        let old = serde_json::json!({"reporter": "a", "seq": 1, "records": []});
        let read: Report = serde_json::from_value(old).unwrap();
        assert!(read.exhausted.is_empty());
        let plain = serde_json::to_value(Report::default()).unwrap();
        assert!(plain.get("exhausted").is_none());
        let refusing = Report {
            seq: 1,
            exhausted: BTreeSet::from(["b".to_owned()]),
            ..Report::default()
        };
        let text = serde_json::to_value(&refusing).unwrap();
        assert_eq!(text["exhausted"], serde_json::json!(["b"]));
        // A budget refusing with nothing spent or asked still gets folded.
        assert!(refusing.parts().contains_key("b"));
    }

    #[test]
    fn outage_warnings_pass_once_per_period_with_the_count_held_back() {
        let mut quiet = RateLimit::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(quiet.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(quiet.allow(t0 + Duration::from_millis(500 * i)), None);
        }
        assert_eq!(quiet.allow(t0 + Duration::from_secs(30)), Some(5));
        assert_eq!(quiet.allow(t0 + Duration::from_secs(31)), None);
        quiet.reset();
        assert_eq!(quiet.allow(t0 + Duration::from_secs(32)), Some(0));
    }

    /// A batch with nothing but lease and limit requests fails: nothing is
    /// unacknowledged, and once records are queued they are counted (pending included).
    #[tokio::test]
    async fn the_unacknowledged_count_is_the_records_waiting() {
        struct Down;
        impl Authority for Down {
            fn submit<'a>(&'a self, _: &'a Report) -> AckFuture<'a> {
                Box::pin(async { Err("connection refused".to_owned()) })
            }
        }
        let leases = Arc::new(Leases::default());
        let reporter = Reporter::new("r".into(), Arc::new(Down), leases.clone());
        // A call waiting for a lease makes the next report ask for one.
        let _ = leases.reserve(&["b".to_owned()], 10, Instant::now());
        assert!(reporter.send_once(None).await.is_err());
        assert_eq!(reporter.unacknowledged(), 0);
        reporter.record(record(5));
        assert_eq!(reporter.unacknowledged(), 1);
        assert!(reporter.send_once(None).await.is_err());
        assert_eq!(reporter.unacknowledged(), 1);
    }

    #[tokio::test]
    async fn a_lost_answer_resends_the_same_batch_and_nothing_counts_twice() {
        let authority = Arc::new(Lossy {
            inner: LocalAuthority::default(),
            lose: Mutex::new(2),
        });
        authority
            .inner
            .set_limits([("b".to_owned(), 1_000_000)].into());
        let reporter = Reporter::new("r".into(), authority.clone(), Arc::new(Leases::default()));
        reporter.record(record(5));
        reporter.record(record(7));
        assert!(reporter.send_once(None).await.is_err());
        reporter.record(record(100));
        assert!(reporter.send_once(None).await.is_err());
        reporter.send_once(None).await.unwrap();
        assert_eq!(authority.inner.spent("b"), 12, "batch 1 once");
        assert_eq!(reporter.unacknowledged(), 1);
        reporter.send_once(None).await.unwrap();
        assert_eq!(authority.inner.spent("b"), 112);
        assert_eq!(reporter.unacknowledged(), 0);
        let ended = reporter
            .flush(None, Instant::now() + Duration::from_secs(1))
            .await;
        assert_eq!(ended, 0);
    }
}
