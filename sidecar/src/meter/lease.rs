//! This sidecar's budget leases. Before a call the worst case it can cost is reserved
//! from the lease of every budget it spends from; after it the reservation becomes the
//! actual cost, which is reported to the operator. What is left to spend is the lease as
//! of the last acknowledged report, minus costs not yet acknowledged, minus reservations
//! of calls in flight, so a sidecar never spends more than it was granted, however
//! slowly reports travel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Report intervals of recent spend a lease covers.
pub const HORIZON: u64 = 10;

/// Why a reservation could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Short {
    /// What the budget has left, by the operator's last answer, cannot pay for the call.
    Exhausted(String),
    /// This sidecar's lease is too small (or lapsed) but the budget may still pay: ask
    /// the operator again.
    Waiting(String),
}

#[derive(Debug, Default)]
struct Lease {
    /// Granted at the last acknowledgement, net of everything it acknowledged.
    balance: u64,
    /// What the whole budget had left at the last acknowledgement.
    remaining: i64,
    /// Costs in the report on its way.
    in_batch: u64,
    /// Costs not yet in a report.
    unsent: u64,
    /// Reservations of calls in flight.
    reserved: u64,
    /// When the lease lapses; `None` before the first grant.
    valid_until: Option<Instant>,
    /// Reservations since the last report, for sizing the next request.
    recent: u64,
    /// Whether a call was refused as exhausted since the last report.
    refused: bool,
}

impl Lease {
    fn available(&self, now: Instant) -> u64 {
        if self.valid_until.is_none_or(|t| t <= now) {
            return 0;
        }
        self.balance
            .saturating_sub(self.in_batch)
            .saturating_sub(self.unsent)
            .saturating_sub(self.reserved)
    }

    /// Whether the whole budget, as last heard, cannot pay `amount` more.
    fn exhausted(&self, amount: u64, now: Instant) -> bool {
        let fresh = self.valid_until.is_some_and(|t| t > now);
        let committed = self.in_batch + self.unsent + self.reserved;
        let left = i128::from(self.remaining) - i128::from(committed);
        fresh && left < i128::from(amount)
    }

    /// The lease to ask for: what calls in flight hold, plus [`HORIZON`] reports'
    /// worth of recent reservations, so a steady load rides out an operator outage
    /// that long, and an idle lease goes back.
    fn want(&self) -> u64 {
        self.reserved
            .saturating_add(self.recent.saturating_mul(HORIZON))
    }
}

/// Every budget lease of this sidecar.
#[derive(Debug, Default)]
pub struct Leases {
    inner: Mutex<HashMap<String, Lease>>,
}

/// A lease grant as applied locally.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    /// The lease.
    pub balance: u64,
    /// What the whole budget has left (limit minus spent).
    pub remaining: i64,
    /// How long it lives.
    pub ttl: Duration,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves `amount` from every budget in `budgets`, all or none.
    ///
    /// When any is short, every budget of the call records the demand, not only the
    /// first short one: the call needs all of them, so each lease is asked for with its
    /// own share of it. Were only the short one told, the next report would give back
    /// the lease the other had just obtained, and two budgets of one call would take
    /// turns being short forever. The refusal names an exhausted budget before a
    /// waiting one: waiting cannot help a call some budget can never pay.
    pub fn reserve(&self, budgets: &[String], amount: u64, now: Instant) -> Result<(), Short> {
        let mut leases = self.lock();
        let mut short: Option<Short> = None;
        for name in budgets {
            let lease = leases.entry(name.clone()).or_default();
            if lease.available(now) >= amount {
                continue;
            }
            if lease.exhausted(amount, now) {
                lease.refused = true;
                short = Some(Short::Exhausted(name.clone()));
                break;
            }
            short.get_or_insert_with(|| Short::Waiting(name.clone()));
        }
        for name in budgets {
            if let Some(lease) = leases.get_mut(name) {
                // Ask for enough to cover this call: next time if short, else for the
                // calls like it to come.
                lease.recent = lease.recent.saturating_add(amount);
                if short.is_none() {
                    lease.reserved = lease.reserved.saturating_add(amount);
                }
            }
        }
        short.map_or(Ok(()), Err)
    }

    /// The budgets that refused a call as exhausted since this was last asked, for the
    /// next report.
    pub fn take_refused(&self) -> BTreeSet<String> {
        self.lock()
            .iter_mut()
            .filter_map(|(name, lease)| std::mem::take(&mut lease.refused).then(|| name.clone()))
            .collect()
    }

    /// Turns a reservation into the actual cost.
    pub fn settle(&self, budgets: &[String], reserved: u64, cost: u64) {
        let mut leases = self.lock();
        for name in budgets {
            let lease = leases.entry(name.clone()).or_default();
            lease.reserved = lease.reserved.saturating_sub(reserved);
            lease.unsent = lease.unsent.saturating_add(cost);
        }
    }

    /// Records spend that had no reservation (a downgraded call), so it is reported
    /// against the budget without being limited by it.
    pub fn charge(&self, budgets: &[String], cost: u64) {
        self.settle(budgets, 0, cost);
    }

    /// Starts a report: unsent costs go into it. Returns the lease wanted per budget.
    pub fn cut(&self) -> BTreeMap<String, u64> {
        let mut leases = self.lock();
        // A budget no longer used, with nothing owed or held, is forgotten; one whose
        // lease is still held first sends a want of zero, which returns it.
        leases.retain(|_, l| l.want() > 0 || l.unsent > 0 || l.in_batch > 0 || l.balance > 0);
        leases
            .iter_mut()
            .map(|(name, lease)| {
                lease.in_batch = lease
                    .in_batch
                    .saturating_add(std::mem::take(&mut lease.unsent));
                let want = lease.want();
                lease.recent = 0;
                (name.clone(), want)
            })
            .collect()
    }

    /// Wants again, for resending a report that was not acknowledged.
    pub fn wants(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|(name, lease)| (name.clone(), lease.want()))
            .collect()
    }

    /// Applies the operator's answer to a report sent at `sent`. Its lifetime counts
    /// from the sending, never from the arrival, so a lease lapses here no later than
    /// at the operator.
    pub fn acknowledged(&self, grants: &BTreeMap<String, Grant>, sent: Instant) {
        let mut leases = self.lock();
        for (name, lease) in leases.iter_mut() {
            lease.in_batch = 0;
            if let Some(grant) = grants.get(name) {
                lease.balance = grant.balance;
                lease.remaining = grant.remaining;
                lease.valid_until = sent.checked_add(grant.ttl);
            }
        }
    }

    /// Costs not yet acknowledged, micro-dollars.
    pub fn unreported(&self) -> u64 {
        self.lock().values().map(|l| l.unsent + l.in_batch).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    fn grant(balance: u64, remaining: i64) -> BTreeMap<String, Grant> {
        [(
            "b".to_owned(),
            Grant {
                balance,
                remaining,
                ttl: Duration::from_secs(30),
            },
        )]
        .into()
    }

    #[tokio::test(start_paused = true)]
    async fn spends_only_what_was_granted() {
        let now = Instant::now();
        let l = Leases::default();
        let b = names(&["b"]);
        assert_eq!(l.reserve(&b, 10, now), Err(Short::Waiting("b".into())));
        assert_eq!(l.cut()["b"], 10 * HORIZON, "asks for the horizon's worth");
        l.acknowledged(&grant(25, 1_000), now);
        l.reserve(&b, 10, now).unwrap();
        l.reserve(&b, 10, now).unwrap();
        // The lease is spent, the budget is not: ask again rather than refuse.
        assert_eq!(l.reserve(&b, 10, now), Err(Short::Waiting("b".into())));
        l.settle(&b, 10, 4);
        // 25 - 4 spent - 10 reserved = 11 left.
        l.reserve(&b, 10, now).unwrap();
        assert_eq!(l.unreported(), 4);
        // The wanted lease covers the calls in flight (20) and the horizon's worth of
        // what was asked for since the last report (four calls of 10, the refused one
        // included).
        assert_eq!(l.cut()["b"], 20 + HORIZON * 40);
        // The report with the 4 is acknowledged: the operator's balance is net of it.
        l.acknowledged(&grant(21, 996), now);
        assert_eq!(l.unreported(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_only_when_the_budget_itself_cannot_pay() {
        let now = Instant::now();
        let l = Leases::default();
        let b = names(&["b"]);
        let _ = l.reserve(&b, 10, now);
        l.cut();
        l.acknowledged(&grant(10, 15), now);
        l.reserve(&b, 10, now).unwrap();
        // 15 left in the budget, 10 of it reserved here: 5 cannot pay 10.
        assert!(l.take_refused().is_empty(), "nothing refused yet");
        assert_eq!(l.reserve(&b, 10, now), Err(Short::Exhausted("b".into())));
        // The refusal goes in the next report, once.
        assert_eq!(l.take_refused(), BTreeSet::from(["b".to_owned()]));
        assert!(l.take_refused().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_lease_is_not_spent() {
        let now = Instant::now();
        let l = Leases::default();
        let b = names(&["b"]);
        let _ = l.reserve(&b, 1, now);
        l.acknowledged(&grant(100, 100), now);
        l.reserve(&b, 1, now).unwrap();
        let later = now + Duration::from_secs(31);
        assert_eq!(l.reserve(&b, 1, later), Err(Short::Waiting("b".into())));
    }

    /// Two budgets of one call: both leases are asked for at once and both are kept,
    /// where the old code asked only for the first short one and then gave it back.
    #[tokio::test(start_paused = true)]
    async fn a_call_under_two_budgets_gets_both_leases() {
        let now = Instant::now();
        let l = Leases::default();
        let both = names(&["key", "model"]);
        assert_eq!(l.reserve(&both, 10, now), Err(Short::Waiting("key".into())));
        let wants = l.cut();
        assert_eq!((wants["key"], wants["model"]), (10 * HORIZON, 10 * HORIZON));
        let g = |balance| Grant {
            balance,
            remaining: 1_000_000,
            ttl: Duration::from_secs(30),
        };
        let grants: BTreeMap<String, Grant> = [
            ("key".to_owned(), g(wants["key"])),
            ("model".to_owned(), g(wants["model"])),
        ]
        .into();
        l.acknowledged(&grants, now);
        l.reserve(&both, 10, now).unwrap();
        // The next report keeps both leases: each wants what it holds and its demand.
        let wants = l.cut();
        assert!(wants["key"] >= 10 && wants["model"] >= 10, "{wants:?}");
        // An exhausted budget is named before a merely short one.
        let grants: BTreeMap<String, Grant> = [
            (
                "key".to_owned(),
                Grant {
                    balance: 0,
                    remaining: 1_000_000,
                    ttl: Duration::from_secs(30),
                },
            ),
            (
                "model".to_owned(),
                Grant {
                    balance: 0,
                    remaining: 5,
                    ttl: Duration::from_secs(30),
                },
            ),
        ]
        .into();
        l.acknowledged(&grants, now);
        assert_eq!(
            l.reserve(&both, 10, now),
            Err(Short::Exhausted("model".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_across_budgets_are_all_or_nothing() {
        let now = Instant::now();
        let l = Leases::default();
        let _ = l.reserve(&names(&["a", "b"]), 1, now);
        let _ = l.reserve(&names(&["b"]), 1, now);
        let g = |balance| Grant {
            balance,
            remaining: 1_000,
            ttl: Duration::from_secs(30),
        };
        let grants: BTreeMap<String, Grant> =
            [("a".to_owned(), g(100)), ("b".to_owned(), g(5))].into();
        l.acknowledged(&grants, now);
        assert!(l.reserve(&names(&["a", "b"]), 10, now).is_err());
        l.reserve(&names(&["a"]), 100, now).unwrap();
    }
}
