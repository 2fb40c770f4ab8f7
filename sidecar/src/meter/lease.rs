//! This sidecar's budget leases. Before a call the worst case it can cost is reserved
//! from the lease of every budget it spends from; after it the reservation becomes the
//! actual cost, which is reported to the operator. What is left to spend is the lease as
//! of the last acknowledged report, minus costs not yet acknowledged, minus reservations
//! of calls in flight, so a sidecar never spends more than it was granted, however
//! slowly reports travel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Why a reservation could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Short {
    /// The budget's lease is too small; the operator has been asked and answered.
    Exhausted(String),
    /// The lease is too small or lapsed and no fresh answer has come yet.
    Waiting(String),
}

#[derive(Debug, Default)]
struct Lease {
    /// Granted at the last acknowledgement, net of everything it acknowledged.
    balance: u64,
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
    /// The largest reservation seen, so an idle lease still covers one call.
    largest: u64,
    /// Whether the last answer came after the last shortfall.
    answered: bool,
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
    pub fn reserve(&self, budgets: &[String], amount: u64, now: Instant) -> Result<(), Short> {
        let mut leases = self.lock();
        for name in budgets {
            let lease = leases.entry(name.clone()).or_default();
            lease.largest = lease.largest.max(amount);
            if lease.available(now) < amount {
                let answered = std::mem::take(&mut lease.answered)
                    && lease.valid_until.is_some_and(|t| t > now);
                // Ask for enough to cover this call next time.
                lease.recent = lease.recent.saturating_add(amount);
                return Err(if answered {
                    Short::Exhausted(name.clone())
                } else {
                    Short::Waiting(name.clone())
                });
            }
        }
        for name in budgets {
            if let Some(lease) = leases.get_mut(name) {
                lease.reserved = lease.reserved.saturating_add(amount);
                lease.recent = lease.recent.saturating_add(amount);
            }
        }
        Ok(())
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

    /// Starts a report: unsent costs go into it. Returns the lease each budget wants:
    /// twice the recent reservations, at least two of the largest call.
    pub fn cut(&self) -> BTreeMap<String, u64> {
        let mut leases = self.lock();
        leases
            .iter_mut()
            .map(|(name, lease)| {
                lease.in_batch = lease
                    .in_batch
                    .saturating_add(std::mem::take(&mut lease.unsent));
                let recent = std::mem::take(&mut lease.recent);
                let want = recent.max(lease.largest).saturating_mul(2);
                (name.clone(), want)
            })
            .collect()
    }

    /// Wants again, for resending a report that was not acknowledged.
    pub fn wants(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|(name, lease)| {
                let want = lease.recent.max(lease.largest).saturating_mul(2);
                (name.clone(), want)
            })
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
                lease.valid_until = Some(sent + grant.ttl);
                lease.answered = true;
            }
        }
    }

    /// Unsent costs per budget, for tests and the shutdown log.
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

    fn grant(balance: u64) -> BTreeMap<String, Grant> {
        [(
            "b".to_owned(),
            Grant {
                balance,
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
        assert_eq!(l.cut()["b"], 20, "asks for twice the call");
        l.acknowledged(&grant(25), now);
        l.reserve(&b, 10, now).unwrap();
        l.reserve(&b, 10, now).unwrap();
        assert_eq!(l.reserve(&b, 10, now), Err(Short::Exhausted("b".into())));
        l.settle(&b, 10, 4);
        // 25 - 4 spent - 10 reserved = 11 left.
        l.reserve(&b, 10, now).unwrap();
        assert_eq!(l.unreported(), 4);
        // The report with the 4 is acknowledged: the operator's balance is net of it.
        l.cut();
        l.acknowledged(&grant(21), now);
        assert_eq!(l.unreported(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_lease_is_not_spent() {
        let now = Instant::now();
        let l = Leases::default();
        let b = names(&["b"]);
        let _ = l.reserve(&b, 1, now);
        l.acknowledged(&grant(100), now);
        l.reserve(&b, 1, now).unwrap();
        let later = now + Duration::from_secs(31);
        assert_eq!(l.reserve(&b, 1, later), Err(Short::Waiting("b".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_across_budgets_are_all_or_nothing() {
        let now = Instant::now();
        let l = Leases::default();
        let _ = l.reserve(&names(&["a", "b"]), 1, now);
        let grants: BTreeMap<String, Grant> = [
            (
                "a".to_owned(),
                Grant {
                    balance: 100,
                    ttl: Duration::from_secs(30),
                },
            ),
            (
                "b".to_owned(),
                Grant {
                    balance: 5,
                    ttl: Duration::from_secs(30),
                },
            ),
        ]
        .into();
        l.acknowledged(&grants, now);
        assert!(l.reserve(&names(&["a", "b"]), 10, now).is_err());
        l.reserve(&names(&["a"]), 100, now).unwrap();
    }
}
