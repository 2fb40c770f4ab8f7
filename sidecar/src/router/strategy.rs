//! Deployment selection: orders a model's deployments by its strategy, then takes the
//! first that is neither cooling down nor at its rpm/tpm limit. When every deployment
//! is out, one cooling down may take the call as a probe, so that a brief outage does
//! not strand the model for a whole cooldown.

use tokio::time::Instant;

use crate::config::snapshot::Strategy;
use crate::router::routes::{Deployment, Model};
use crate::router::state::{Probe, Unavailable};

/// The deployment chosen for one attempt.
#[derive(Debug)]
pub struct Picked {
    /// Its index in the model.
    pub index: usize,
    /// Set when the deployment is cooling down and the attempt probes it.
    pub probe: Option<Probe>,
}

/// Why no deployment could be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoneAvailable {
    /// The earliest time one becomes available again.
    pub until: Instant,
    /// True if every deployment is at its rate limit (as opposed to cooling down).
    pub all_limited: bool,
}

/// Picks a deployment of `model` for one attempt and reserves capacity on it.
/// Deployments in `avoid` (those that failed, most recent last) come after every other,
/// the longest-ago failure first.
pub fn pick(
    model: &Model,
    now: Instant,
    avoid: &[usize],
    tokens: u64,
) -> Result<Picked, NoneAvailable> {
    let deployments = &model.deployments;
    let mut order: Vec<usize> = (0..deployments.len()).collect();
    arrange(model.strategy, deployments, &mut order, now);
    if !avoid.is_empty() {
        // A stable sort keeps the strategy's order among the deployments not avoided.
        order.sort_by_key(|i| avoid.iter().position(|a| a == i).map_or(0, |p| p + 1));
    }
    let mut until: Option<Instant> = None;
    let mut all_limited = true;
    for &i in &order {
        let d = &deployments[i];
        match d.state.try_reserve(now, d.rpm, d.tpm, tokens) {
            Ok(()) => {
                return Ok(Picked {
                    index: i,
                    probe: None,
                });
            }
            Err(Unavailable::Resting(at)) => {
                all_limited = false;
                until = Some(until.map_or(at, |u| u.min(at)));
            }
            Err(Unavailable::Limited(at)) => until = Some(until.map_or(at, |u| u.min(at))),
        }
    }
    // Nothing is available: probe a cooling deployment, in the same order.
    for i in order {
        let d = &deployments[i];
        if let Some(probe) = d.state.try_probe(now, d.rpm, d.tpm, tokens) {
            return Ok(Picked {
                index: i,
                probe: Some(probe),
            });
        }
    }
    Err(NoneAvailable {
        until: until.unwrap_or(now),
        all_limited,
    })
}

/// Sorts candidate indices into the order the strategy prefers them.
fn arrange(strategy: Strategy, deployments: &[Deployment], order: &mut Vec<usize>, now: Instant) {
    match strategy {
        Strategy::WeightedShuffle => weighted_shuffle(deployments, order),
        Strategy::LeastBusy => by_key(order, |i| u128::from(deployments[i].state.in_flight())),
        Strategy::LowestLatency => by_key(order, |i| {
            // Unmeasured deployments sort first so each gets sampled.
            deployments[i].state.latency().map_or(0, |l| l.as_micros())
        }),
        Strategy::UsageBased => by_key(order, |i| {
            let d = &deployments[i];
            // Parts per million of the tighter limit used this minute.
            (d.state.utilisation(now, d.rpm, d.tpm) * 1e6) as u128
        }),
        Strategy::LowestCost => by_key(order, |i| {
            let p = &deployments[i].pricing;
            u128::from(p.input_micros_per_million) + u128::from(p.output_micros_per_million)
        }),
    }
}

/// Sorts ascending by key, breaking ties at random so equal deployments share load.
fn by_key(order: &mut [usize], key: impl Fn(usize) -> u128) {
    let mut keyed: Vec<(u128, u32, usize)> = order
        .iter()
        .map(|&i| (key(i), fastrand::u32(..), i))
        .collect();
    keyed.sort_unstable();
    for (slot, (_, _, i)) in order.iter_mut().zip(keyed) {
        *slot = i;
    }
}

/// A random order in which each deployment comes first with probability proportional
/// to its weight (and so on for the rest).
fn weighted_shuffle(deployments: &[Deployment], order: &mut Vec<usize>) {
    let mut rest = std::mem::take(order);
    while !rest.is_empty() {
        let total: u64 = rest.iter().map(|&i| u64::from(deployments[i].weight)).sum();
        let mut ticket = fastrand::u64(0..total.max(1));
        let mut chosen = rest.len() - 1;
        for (pos, &i) in rest.iter().enumerate() {
            let w = u64::from(deployments[i].weight);
            if ticket < w {
                chosen = pos;
                break;
            }
            ticket -= w;
        }
        order.push(rest.swap_remove(chosen));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::snapshot::*;
    use crate::provider::demo::DemoTransport;
    use crate::router::routes::RoutesBuilder;

    /// Model `m` with these deployments, routed by `strategy`.
    fn routed(strategy: Strategy, deployments: Vec<DeploymentSpec>) -> Arc<Model> {
        let spec = ModelSpec {
            name: "m".into(),
            strategy,
            deployments,
            fallbacks: vec![],
            context_window_fallbacks: vec![],
            content_policy_fallbacks: vec![],
            retry: Default::default(),
            timeouts: Default::default(),
            cooldown: Default::default(),
            pricing: Default::default(),
            drop_unsupported_params: false,
            default_max_tokens: None,
            image_fetch: Default::default(),
            capture_content: false,
            cache: None,
        };
        let snap = Snapshot {
            format: FORMAT,
            version: "t".into(),
            models: vec![spec],
            ..Default::default()
        };
        let routes = RoutesBuilder::new(Arc::new(DemoTransport))
            .build(&snap)
            .unwrap();
        routes.model("m").unwrap().clone()
    }

    fn model(strategy: Strategy, weights: &[u32]) -> Arc<Model> {
        let deployments = weights
            .iter()
            .enumerate()
            .map(|(i, w)| DeploymentSpec {
                name: format!("d{i}"),
                weight: *w,
                pricing: Some(Pricing {
                    input_micros_per_million: 100 * (weights.len() - i) as u64,
                    output_micros_per_million: 0,
                    cached_input_micros_per_million: 0,
                    cache_write_input_micros_per_million: 0,
                }),
                ..crate::provider::spec(ProviderKind::Demo)
            })
            .collect();
        routed(strategy, deployments)
    }

    fn counts(m: &Model, n: usize) -> Vec<usize> {
        let mut counts = vec![0; m.deployments.len()];
        for _ in 0..n {
            counts[pick(m, Instant::now(), &[], 0).unwrap().index] += 1;
        }
        counts
    }

    #[tokio::test(start_paused = true)]
    async fn weighted_shuffle_follows_weights() {
        let m = model(Strategy::WeightedShuffle, &[3, 1]);
        let c = counts(&m, 8000);
        let share = c[0] as f64 / 8000.0;
        // 3:1 → 75%; the bound is over ten standard deviations wide.
        assert!((0.70..0.80).contains(&share), "{c:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn least_busy_prefers_fewest_in_flight() {
        let m = model(Strategy::LeastBusy, &[1, 1, 1]);
        let _a = m.deployments[0].state.start();
        let _b = m.deployments[1].state.start();
        let _c = m.deployments[1].state.start();
        assert_eq!(counts(&m, 50), vec![0, 0, 50]);
    }

    #[tokio::test(start_paused = true)]
    async fn lowest_latency_prefers_fastest_and_samples_new_ones() {
        let m = model(Strategy::LowestLatency, &[1, 1, 1]);
        m.deployments[0]
            .state
            .observe_latency(Duration::from_millis(50));
        m.deployments[1]
            .state
            .observe_latency(Duration::from_millis(10));
        assert_eq!(counts(&m, 20), vec![0, 0, 20], "unmeasured first");
        m.deployments[2]
            .state
            .observe_latency(Duration::from_millis(90));
        assert_eq!(counts(&m, 20), vec![0, 20, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn usage_based_spreads_by_headroom() {
        let spec_rpm = 10;
        let m = model(Strategy::UsageBased, &[1, 1]);
        // Give both deployments an rpm limit by reserving against it directly.
        let now = Instant::now();
        for _ in 0..6 {
            m.deployments[0]
                .state
                .try_reserve(now, Some(spec_rpm), None, 0)
                .unwrap();
        }
        let d0 = m.deployments[0]
            .state
            .utilisation(now, Some(spec_rpm), None);
        let d1 = m.deployments[1]
            .state
            .utilisation(now, Some(spec_rpm), None);
        assert!(d0 > d1);
        // Without configured limits utilisation is zero; with them the emptier wins.
        let m2 = model_with_rpm(&[4, 4]);
        let mut c = [0usize; 2];
        for _ in 0..8 {
            c[pick(&m2, now, &[], 0).unwrap().index] += 1;
        }
        assert_eq!(c, [4, 4], "alternates as headroom shifts");
        assert!(pick(&m2, now, &[], 0).unwrap_err().all_limited);
    }

    fn model_with_rpm(rpms: &[u32]) -> Arc<Model> {
        let deployments = rpms
            .iter()
            .enumerate()
            .map(|(i, rpm)| DeploymentSpec {
                name: format!("d{i}"),
                rpm: Some(*rpm),
                ..crate::provider::spec(ProviderKind::Demo)
            })
            .collect();
        routed(Strategy::UsageBased, deployments)
    }

    #[tokio::test(start_paused = true)]
    async fn lowest_cost_prefers_cheapest() {
        // Prices fall with the index: the last deployment is cheapest.
        let m = model(Strategy::LowestCost, &[1, 1, 1]);
        assert_eq!(counts(&m, 20), vec![0, 0, 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn skips_resting_and_avoided_deployments() {
        let m = model(Strategy::WeightedShuffle, &[1, 1]);
        let now = Instant::now();
        m.deployments[0]
            .state
            .rest_until(now + Duration::from_secs(5));
        assert_eq!(counts(&m, 20), vec![0, 20]);
        assert_eq!(
            pick(&m, now, &[1], 0).unwrap().index,
            1,
            "avoid is ignored when nothing else is left"
        );
        m.deployments[1]
            .state
            .rest_until(now + Duration::from_secs(3));
        let err = pick(&m, now, &[], 0).unwrap_err();
        assert_eq!(err.until, now + Duration::from_secs(3));
        assert!(!err.all_limited);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooling_deployment_is_probed_when_nothing_else_is_left() {
        let m = model(Strategy::WeightedShuffle, &[1, 1]);
        let now = Instant::now();
        let cooldown = CooldownSpec {
            allowed_fails: 0,
            ..CooldownSpec::default()
        };
        m.deployments[0].state.record_failure(now, &cooldown);
        let picked = pick(&m, now, &[], 0).unwrap();
        assert_eq!(
            (picked.index, picked.probe.is_some()),
            (1, false),
            "the healthy one first"
        );
        m.deployments[1].state.record_failure(now, &cooldown);
        let probe = pick(&m, now, &[], 0).unwrap();
        assert!(probe.probe.is_some());
        let other = pick(&m, now, &[], 0).unwrap();
        assert_ne!(other.index, probe.index, "one probe per deployment");
        assert!(other.probe.is_some());
        assert!(pick(&m, now, &[], 0).is_err(), "both are being probed");
    }
}
