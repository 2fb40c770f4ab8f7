//! Per-key rate limits: requests per minute, tokens per minute and requests in flight.
//!
//! A key's limit holds across every sidecar using it. The operator gives each sidecar a
//! share of it (see `docs/architecture.md`, "Limits across the fleet"); until the first
//! share arrives a sidecar uses the whole limit. Minute limits are token buckets holding
//! a minute's worth that refill continuously, kept in integer units (1/60,000 of a
//! request or token per millisecond of refill) so shares and refills are exact. Tokens
//! are pre-charged with the call's estimate and settled to the actual usage after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One minute in milliseconds: the bucket scale.
const MINUTE_MS: u64 = 60_000;
/// Shares are parts per million of the key's limit.
pub const WHOLE: u32 = 1_000_000;

/// A key's configured limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Requests in flight.
    pub parallel: Option<u32>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.parallel.is_some()
    }
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Requests per minute; retry after the duration.
    Rpm(Duration),
    /// Tokens per minute; retry after the duration.
    Tpm(Duration),
    /// Too many requests in flight.
    Parallel,
}

/// Demand seen since the last report, which the operator's shares follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Demand {
    /// Requests asked for (admitted or not).
    pub requests: u64,
    /// Tokens used or estimated.
    pub tokens: u64,
}

/// A continuously refilling bucket of one minute's allowance.
#[derive(Debug)]
struct Bucket {
    /// Units ×60,000.
    level: i128,
    last: Instant,
}

impl Bucket {
    fn full(per_minute: u64, now: Instant) -> Self {
        Bucket {
            level: i128::from(per_minute) * i128::from(MINUTE_MS),
            last: now,
        }
    }

    fn refill(&mut self, per_minute: u64, now: Instant) {
        let ms = now.saturating_duration_since(self.last).as_millis();
        if ms == 0 {
            return;
        }
        self.last += Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        let cap = i128::from(per_minute) * i128::from(MINUTE_MS);
        let added = i128::try_from(ms).unwrap_or(i128::MAX) * i128::from(per_minute);
        self.level = self.level.saturating_add(added).min(cap);
    }

    /// Time until `units` are available.
    fn wait_for(&self, units: u64, per_minute: u64) -> Duration {
        let missing = i128::from(units) * i128::from(MINUTE_MS) - self.level;
        if missing <= 0 || per_minute == 0 {
            return Duration::from_secs(if per_minute == 0 { 60 } else { 0 });
        }
        let ms = missing.div_euclid(i128::from(per_minute)) + 1;
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn has(&self, units: u64) -> bool {
        self.level >= i128::from(units) * i128::from(MINUTE_MS)
    }

    fn take(&mut self, units: i128) {
        self.level -= units * i128::from(MINUTE_MS);
    }
}

/// The bucket for a new size: the old one refilled and capped, or a full one.
fn resized(old: Option<Bucket>, per_minute: u64, now: Instant) -> Bucket {
    match old {
        Some(mut b) => {
            b.refill(per_minute, now);
            b.level = b.level.min(i128::from(per_minute) * i128::from(MINUTE_MS));
            b
        }
        None => Bucket::full(per_minute, now),
    }
}

#[derive(Debug)]
struct State {
    limits: Limits,
    /// This sidecar's share, parts per million; `None` until the operator sets one.
    share: Option<u32>,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    in_flight: u32,
    demand: Demand,
}

/// The live limit state of one key in this sidecar; kept across config reloads.
#[derive(Debug)]
pub struct KeyLimiter {
    state: Mutex<State>,
}

/// An admitted request: holds its parallel slot and its token pre-charge.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<KeyLimiter>,
    estimate: u64,
}

fn scaled(limit: u64, share: Option<u32>) -> u64 {
    match share {
        None => limit,
        Some(share) => u64::try_from(u128::from(limit) * u128::from(share) / u128::from(WHOLE))
            .unwrap_or(u64::MAX),
    }
}

impl State {
    fn rpm(&self) -> Option<u64> {
        self.limits.rpm.map(|l| scaled(u64::from(l), self.share))
    }
    fn tpm(&self) -> Option<u64> {
        self.limits.tpm.map(|l| scaled(l, self.share))
    }
    /// At least one, so a sidecar with a small share is slowed, never shut out; the
    /// fleet bound accounts for it.
    fn parallel(&self) -> Option<u32> {
        self.limits.parallel.map(|l| {
            u32::try_from(scaled(u64::from(l), self.share))
                .unwrap_or(u32::MAX)
                .max(1)
        })
    }
}

impl KeyLimiter {
    /// A limiter with full buckets.
    pub fn new(limits: Limits, now: Instant) -> Self {
        let state = State {
            limits,
            share: None,
            rpm: limits.rpm.map(|l| Bucket::full(u64::from(l), now)),
            tpm: limits.tpm.map(|l| Bucket::full(l, now)),
            in_flight: 0,
            demand: Demand::default(),
        };
        KeyLimiter {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies edited limits, keeping the buckets' levels (capped to the new size).
    pub fn configure(&self, limits: Limits, now: Instant) {
        let mut s = self.lock();
        if s.limits == limits {
            return;
        }
        s.limits = limits;
        let (rpm, tpm) = (s.rpm(), s.tpm());
        let old = s.rpm.take();
        s.rpm = rpm.map(|per| resized(old, per, now));
        let old = s.tpm.take();
        s.tpm = tpm.map(|per| resized(old, per, now));
    }

    /// Sets this sidecar's share of the key's limits, in parts per million.
    pub fn set_share(&self, share: u32, now: Instant) {
        let mut s = self.lock();
        let share = share.min(WHOLE);
        if s.share == Some(share) {
            return;
        }
        // Settle refills at the old rate before the rate changes.
        let (rpm, tpm) = (s.rpm(), s.tpm());
        if let (Some(per), Some(b)) = (rpm, s.rpm.as_mut()) {
            b.refill(per, now);
        }
        if let (Some(per), Some(b)) = (tpm, s.tpm.as_mut()) {
            b.refill(per, now);
        }
        s.share = Some(share);
        let (rpm, tpm) = (s.rpm(), s.tpm());
        if let (Some(per), Some(b)) = (rpm, s.rpm.as_mut()) {
            b.level = b.level.min(i128::from(per) * i128::from(MINUTE_MS));
        }
        if let (Some(per), Some(b)) = (tpm, s.tpm.as_mut()) {
            b.level = b.level.min(i128::from(per) * i128::from(MINUTE_MS));
        }
    }

    /// Admits a request estimated at `tokens`, or says which limit refuses it.
    pub fn acquire(self: &Arc<Self>, tokens: u64, now: Instant) -> Result<Permit, Refused> {
        let mut s = self.lock();
        s.demand.requests += 1;
        s.demand.tokens = s.demand.tokens.saturating_add(tokens);
        if let Some(max) = s.parallel()
            && s.in_flight >= max
        {
            return Err(Refused::Parallel);
        }
        let (rpm, tpm) = (s.rpm(), s.tpm());
        if let (Some(per), Some(b)) = (rpm, s.rpm.as_mut()) {
            b.refill(per, now);
            if !b.has(1) {
                return Err(Refused::Rpm(b.wait_for(1, per)));
            }
        }
        // A call bigger than the whole bucket needs only a bucket out of debt; a call
        // that takes no tokens (answered from the response cache) needs nothing of it.
        let charge = tpm.map_or(0, |per| tokens.min(per));
        if let (Some(per), Some(b), true) = (tpm, s.tpm.as_mut(), tokens > 0) {
            b.refill(per, now);
            if !b.has(charge) {
                return Err(Refused::Tpm(b.wait_for(charge, per)));
            }
        }
        if let Some(b) = s.rpm.as_mut() {
            b.take(1);
        }
        if let Some(b) = s.tpm.as_mut() {
            b.take(i128::from(tokens));
        }
        s.in_flight += 1;
        Ok(Permit {
            limiter: self.clone(),
            estimate: tokens,
        })
    }

    /// Demand since the last call, which resets it.
    pub fn take_demand(&self) -> Demand {
        std::mem::take(&mut self.lock().demand)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.lock().in_flight
    }
}

impl Permit {
    /// Corrects the token pre-charge to what the request actually used.
    pub fn settle(&mut self, actual: u64) {
        let mut s = self.limiter.lock();
        let delta = i128::from(actual) - i128::from(self.estimate);
        if let Some(b) = s.tpm.as_mut() {
            b.take(delta);
        }
        s.demand.tokens = s
            .demand
            .tokens
            .saturating_add(actual)
            .saturating_sub(self.estimate);
        self.estimate = actual;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.limiter.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpm: Option<u64>, parallel: Option<u32>) -> Limits {
        Limits { rpm, tpm, parallel }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_refills_continuously() {
        let now = Instant::now();
        let l = Arc::new(KeyLimiter::new(limits(Some(60), None, None), now));
        for _ in 0..60 {
            drop(l.acquire(1, now).unwrap());
        }
        let Err(Refused::Rpm(wait)) = l.acquire(1, now) else {
            panic!("61st request admitted");
        };
        assert!(wait <= Duration::from_millis(1001), "{wait:?}");
        assert!(l.acquire(1, now + Duration::from_secs(1)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_is_precharged_and_settled() {
        let now = Instant::now();
        let l = Arc::new(KeyLimiter::new(limits(None, Some(1000), None), now));
        let mut p = l.acquire(900, now).unwrap();
        assert!(matches!(l.acquire(200, now), Err(Refused::Tpm(_))));
        p.settle(100);
        drop(p);
        assert!(
            l.acquire(200, now).is_ok(),
            "settling returned the unused estimate"
        );
        // Debt: a request that used more than estimated holds the next ones back.
        let mut p = l.acquire(10, now).unwrap();
        p.settle(2000);
        drop(p);
        assert!(matches!(l.acquire(1, now), Err(Refused::Tpm(_))));
        // A call that takes no tokens (a cache hit) is not held back by the debt.
        assert!(l.acquire(0, now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_slots_are_released_by_dropping_the_permit() {
        let now = Instant::now();
        let l = Arc::new(KeyLimiter::new(limits(None, None, Some(2)), now));
        let a = l.acquire(1, now).unwrap();
        let _b = l.acquire(1, now).unwrap();
        assert_eq!(l.acquire(1, now).unwrap_err(), Refused::Parallel);
        drop(a);
        assert!(l.acquire(1, now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_scales_every_limit() {
        let now = Instant::now();
        let l = Arc::new(KeyLimiter::new(limits(Some(10), None, Some(4)), now));
        l.set_share(WHOLE / 2, now);
        for _ in 0..5 {
            drop(l.acquire(1, now).unwrap());
        }
        assert!(matches!(l.acquire(1, now), Err(Refused::Rpm(_))));
        let _p: Vec<_> = (0..2)
            .map(|_| l.acquire(0, now + Duration::from_secs(60)).unwrap())
            .collect();
        assert_eq!(
            l.acquire(0, now + Duration::from_secs(60)).unwrap_err(),
            Refused::Parallel
        );
        assert_eq!(l.take_demand().requests, 9);
        assert_eq!(l.take_demand().requests, 0);
    }
}
