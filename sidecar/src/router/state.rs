//! Live state of one deployment, shared by every request and kept across config
//! reloads: requests in flight, a latency average, recent failures and cooldown, and
//! this minute's request and token counts. All times are `tokio::time::Instant` so
//! tests can drive them with paused time.
//!
//! A cooldown is half-open, as a circuit breaker's: while a model has nothing else to
//! offer, one call at a time may go to a cooling deployment as a probe
//! ([`DeploymentState::try_probe`]), and a probe that succeeds ends the cooldown. A
//! rest an upstream asked for (`Retry-After`) is not probed: the upstream said when.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::snapshot::CooldownSpec;

const MINUTE: Duration = Duration::from_secs(60);

/// Shared state of one deployment.
#[derive(Debug)]
pub struct DeploymentState {
    in_flight: AtomicU32,
    /// Exponentially weighted moving average of latency in microseconds; 0 = no sample.
    ewma_latency_us: AtomicU64,
    health: Mutex<Health>,
    usage: Mutex<MinuteUsage>,
}

#[derive(Debug, Default)]
struct Health {
    /// Failure times within the current window, oldest first.
    fails: VecDeque<Instant>,
    /// The deployment rests until then.
    resting_until: Option<Instant>,
    /// The rest is a cooldown after failures, which a probe may end early (not a wait
    /// the upstream asked for).
    cooling: bool,
    /// A probe is in flight.
    probing: bool,
}

#[derive(Debug)]
struct MinuteUsage {
    started: Instant,
    requests: u32,
    tokens: u64,
}

/// Why a deployment cannot take a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// Cooling down (or told to back off by `Retry-After`) until then.
    Resting(Instant),
    /// Its rpm or tpm limit is reached until the minute ends then.
    Limited(Instant),
}

impl Default for DeploymentState {
    fn default() -> Self {
        DeploymentState {
            in_flight: AtomicU32::new(0),
            ewma_latency_us: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            usage: Mutex::new(MinuteUsage {
                started: Instant::now(),
                requests: 0,
                tokens: 0,
            }),
        }
    }
}

impl DeploymentState {
    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The latency average, or `None` before the first sample.
    pub fn latency(&self) -> Option<Duration> {
        match self.ewma_latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Folds a latency sample into the average (weight 1/4 for the new sample).
    pub fn observe_latency(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .ewma_latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old.saturating_mul(3) / 4)
                        .saturating_add(sample / 4)
                        .max(1)
                })
            });
    }

    /// Records a failure that counts toward cooldown; returns true if it started one.
    pub fn record_failure(&self, now: Instant, spec: &CooldownSpec) -> bool {
        let mut health = lock(&self.health);
        let window = Duration::from_millis(spec.window_ms);
        while health
            .fails
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            health.fails.pop_front();
        }
        health.fails.push_back(now);
        if health.fails.len() > spec.allowed_fails as usize {
            health.fails.clear();
            let until = now + Duration::from_millis(spec.duration_ms);
            match health.resting_until {
                // A longer wait the upstream asked for stands, and is not probed.
                Some(resting) if resting >= until && !health.cooling => {}
                _ => {
                    health.resting_until = Some(until);
                    health.cooling = true;
                }
            }
            return true;
        }
        false
    }

    /// Rests the deployment until `until` (an upstream's `Retry-After`).
    pub fn rest_until(&self, until: Instant) {
        let mut health = lock(&self.health);
        if health.resting_until.is_none_or(|u| until > u) {
            health.resting_until = Some(until);
            health.cooling = false;
        }
    }

    /// Lets one call through to a cooling deployment as a probe, if none is in flight
    /// and the rest is a cooldown (not a wait the upstream asked for), counting it
    /// against this minute's limits like any call. The probe ends with the returned
    /// guard; [`recovered`](Self::recovered) ends the cooldown when it succeeds.
    pub fn try_probe(
        self: &std::sync::Arc<Self>,
        now: Instant,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Option<Probe> {
        {
            let mut health = lock(&self.health);
            let cooling = health.resting_until.is_some_and(|u| u > now) && health.cooling;
            if !cooling || health.probing {
                return None;
            }
            health.probing = true;
        }
        let probe = Probe(self.clone());
        lock(&self.usage).admit(now, rpm, tpm, tokens).ok()?;
        Some(probe)
    }

    /// A probe succeeded: the cooldown ends.
    pub fn recovered(&self) {
        let mut health = lock(&self.health);
        if health.cooling {
            health.resting_until = None;
            health.cooling = false;
            health.fails.clear();
        }
    }

    /// Whether the deployment is cooling down at `now`.
    pub fn is_resting(&self, now: Instant) -> bool {
        lock(&self.health).resting_until.is_some_and(|u| u > now)
    }

    /// Checks limits and cooldown and, if the deployment is available, counts one
    /// request and `tokens` estimated tokens against this minute.
    pub fn try_reserve(
        &self,
        now: Instant,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<(), Unavailable> {
        if let Some(until) = lock(&self.health).resting_until.filter(|u| *u > now) {
            return Err(Unavailable::Resting(until));
        }
        lock(&self.usage).admit(now, rpm, tpm, tokens)
    }

    /// Corrects this minute's token count once actual usage is known.
    pub fn settle_tokens(&self, now: Instant, estimated: u64, actual: u64) {
        let mut usage = lock(&self.usage);
        if usage.started + MINUTE <= now {
            return;
        }
        usage.tokens = usage
            .tokens
            .saturating_sub(estimated)
            .saturating_add(actual);
    }

    /// How full this minute is, 0.0 to 1.0 and beyond, by the tighter of rpm and tpm.
    pub fn utilisation(&self, now: Instant, rpm: Option<u32>, tpm: Option<u64>) -> f64 {
        let mut usage = lock(&self.usage);
        usage.roll(now);
        let by_requests = rpm.map_or(0.0, |l| f64::from(usage.requests) / f64::from(l.max(1)));
        let by_tokens = tpm.map_or(0.0, |l| usage.tokens as f64 / l.max(1) as f64);
        by_requests.max(by_tokens)
    }
}

impl MinuteUsage {
    /// Counts one request and its estimated tokens, unless a limit is reached.
    fn admit(
        &mut self,
        now: Instant,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<(), Unavailable> {
        self.roll(now);
        let full = rpm.is_some_and(|limit| self.requests >= limit)
            || tpm.is_some_and(|limit| self.tokens >= limit);
        if full {
            return Err(Unavailable::Limited(self.started + MINUTE));
        }
        self.requests = self.requests.saturating_add(1);
        self.tokens = self.tokens.saturating_add(tokens);
        Ok(())
    }

    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.started) >= MINUTE {
            self.started = now;
            self.requests = 0;
            self.tokens = 0;
        }
    }
}

/// A request in flight on a deployment; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<DeploymentState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A probe of a cooling deployment in flight; dropping it lets the next one through.
#[derive(Debug)]
pub struct Probe(std::sync::Arc<DeploymentState>);

impl Drop for Probe {
    fn drop(&mut self) {
        lock(&self.0.health).probing = false;
    }
}

/// Locks a mutex, recovering from poisoning: the state is counters, and a panic
/// elsewhere must not take routing down with it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn cooldown(allowed_fails: u32) -> CooldownSpec {
        CooldownSpec {
            allowed_fails,
            window_ms: 10_000,
            duration_ms: 30_000,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cools_down_after_allowed_fails_within_the_window() {
        let s = DeploymentState::default();
        let spec = cooldown(2);
        let t0 = Instant::now();
        assert!(!s.record_failure(t0, &spec));
        assert!(!s.record_failure(t0, &spec));
        assert!(s.record_failure(t0 + Duration::from_secs(1), &spec));
        assert!(s.is_resting(t0 + Duration::from_secs(30)));
        assert!(!s.is_resting(t0 + Duration::from_secs(31)));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_are_forgotten() {
        let s = DeploymentState::default();
        let spec = cooldown(1);
        let t0 = Instant::now();
        assert!(!s.record_failure(t0, &spec));
        assert!(!s.record_failure(t0 + Duration::from_secs(11), &spec));
        assert!(s.record_failure(t0 + Duration::from_secs(12), &spec));
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_limit_holds_for_the_minute() {
        let s = DeploymentState::default();
        let t0 = Instant::now();
        assert!(s.try_reserve(t0, Some(2), None, 0).is_ok());
        assert!(s.try_reserve(t0, Some(2), None, 0).is_ok());
        assert_eq!(
            s.try_reserve(t0, Some(2), None, 0),
            Err(Unavailable::Limited(t0 + MINUTE))
        );
        assert!(
            s.try_reserve(t0 + MINUTE, Some(2), None, 0).is_ok(),
            "a new minute starts afresh"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_limit_counts_settled_tokens() {
        let s = DeploymentState::default();
        let t0 = Instant::now();
        s.try_reserve(t0, None, Some(1000), 100).unwrap();
        s.settle_tokens(t0, 100, 1200);
        assert!(matches!(
            s.try_reserve(t0, None, Some(1000), 1),
            Err(Unavailable::Limited(_))
        ));
        assert!(s.utilisation(t0, None, Some(1000)) > 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_and_success_ends_the_cooldown() {
        let s = Arc::new(DeploymentState::default());
        let now = Instant::now();
        assert!(
            s.try_probe(now, None, None, 0).is_none(),
            "nothing to probe"
        );
        s.record_failure(now, &cooldown(0));
        assert!(s.is_resting(now));
        let probe = s.try_probe(now, None, None, 0).expect("a probe");
        assert!(s.try_probe(now, None, None, 0).is_none(), "one at a time");
        drop(probe);
        let probe = s.try_probe(now, None, None, 0).expect("the next probe");
        s.recovered();
        drop(probe);
        assert!(!s.is_resting(now));
        assert_eq!(s.try_reserve(now, None, None, 0), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_the_upstream_asked_for_is_not_probed() {
        let s = Arc::new(DeploymentState::default());
        let now = Instant::now();
        s.rest_until(now + Duration::from_secs(60));
        assert!(s.try_probe(now, None, None, 0).is_none());
        // A cooldown after failures does not shorten it, nor make it probeable.
        s.record_failure(now, &cooldown(0));
        assert!(s.try_probe(now, None, None, 0).is_none());
        assert!(s.is_resting(now + Duration::from_secs(59)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_counts_against_the_rpm_limit() {
        let s = Arc::new(DeploymentState::default());
        let now = Instant::now();
        assert_eq!(s.try_reserve(now, Some(1), None, 0), Ok(()));
        s.record_failure(now, &cooldown(0));
        assert!(s.try_probe(now, Some(1), None, 0).is_none());
        assert!(s.try_probe(now, Some(2), None, 0).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn resting_blocks_reservations() {
        let s = DeploymentState::default();
        let t0 = Instant::now();
        s.rest_until(t0 + Duration::from_secs(2));
        assert_eq!(
            s.try_reserve(t0, None, None, 0),
            Err(Unavailable::Resting(t0 + Duration::from_secs(2)))
        );
        assert!(
            s.try_reserve(t0 + Duration::from_secs(2), None, None, 0)
                .is_ok()
        );
    }

    #[test]
    fn latency_average_and_in_flight_guard() {
        let s = Arc::new(DeploymentState::default());
        assert_eq!(s.latency(), None);
        s.observe_latency(Duration::from_millis(100));
        s.observe_latency(Duration::from_millis(200));
        assert_eq!(s.latency(), Some(Duration::from_millis(125)));
        let guard = s.start();
        assert_eq!(s.in_flight(), 1);
        drop(guard);
        assert_eq!(s.in_flight(), 0);
    }
}
