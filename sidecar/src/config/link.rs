//! How the sidecar's two links to the operator are doing: the config stream and the
//! usage/lease reports. They fail apart (a usage report can be refused while the stream
//! is open) and matter differently (without config nothing is served; without usage
//! acknowledgements budgeted calls are refused once leases lapse), so each is tracked on
//! its own, for the metrics and the text of `/readyz`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus::{GaugeVec, IntGaugeVec};
use tokio::time::Instant;

/// One of the links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The config stream (`GET /v1/snapshots`).
    Config,
    /// Usage reports, which bring budget leases and key shares (`POST /v1/usage`).
    Usage,
}

impl Channel {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Config => "config",
            Channel::Usage => "usage",
        }
    }

    fn index(self) -> usize {
        match self {
            Channel::Config => 0,
            Channel::Usage => 1,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct State {
    /// Whether the last exchange succeeded; `None` before the first.
    up: Option<bool>,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// Failures in the current run.
    failures: u64,
    /// The last failure, as logged.
    last_error: Option<String>,
}

/// A link's state, as `/readyz` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Never tried yet.
    Unknown,
    /// The last exchange succeeded.
    Up,
    /// Failing for this long, this many times in a row, last with this error.
    Down {
        /// Since the first failure of the run.
        for_: Duration,
        /// Failures in a row.
        failures: u64,
        /// The last error.
        error: String,
    },
}

/// Both links, and the metrics kept from them.
#[derive(Debug, Default)]
pub struct Link {
    states: Mutex<[State; 2]>,
    reachable: Option<IntGaugeVec>,
    last_success: Option<GaugeVec>,
}

impl Link {
    /// Keeps `reachable{channel}` (1 after a success, 0 after a failure) and
    /// `last_success{channel}` (Unix seconds) current.
    pub fn with_metrics(reachable: IntGaugeVec, last_success: GaugeVec) -> Self {
        Link {
            states: Mutex::default(),
            reachable: Some(reachable),
            last_success: Some(last_success),
        }
    }

    fn update(&self, channel: Channel, f: impl FnOnce(&mut State)) {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut states[channel.index()]);
    }

    /// `channel` just worked.
    pub fn up(&self, channel: Channel) {
        self.update(channel, |s| {
            *s = State {
                up: Some(true),
                ..State::default()
            }
        });
        if let Some(g) = &self.reachable {
            g.with_label_values(&[channel.label()]).set(1);
        }
        if let Some(g) = &self.last_success {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            g.with_label_values(&[channel.label()]).set(now);
        }
    }

    /// `channel` just failed with `error`.
    pub fn down(&self, channel: Channel, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        self.update(channel, |s| {
            if s.up != Some(false) {
                s.failing_since = Some(Instant::now());
                s.failures = 0;
            }
            s.up = Some(false);
            s.failures += 1;
            s.last_error = Some(error);
        });
        if let Some(g) = &self.reachable {
            g.with_label_values(&[channel.label()]).set(0);
        }
    }

    /// How `channel` is doing.
    pub fn health(&self, channel: Channel) -> Health {
        let states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &states[channel.index()];
        match s.up {
            None => Health::Unknown,
            Some(true) => Health::Up,
            Some(false) => Health::Down {
                for_: s.failing_since.map_or(Duration::ZERO, |t| t.elapsed()),
                failures: s.failures,
                error: s.last_error.clone().unwrap_or_default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_counts_from_its_first_and_ends_at_a_success() {
        let reachable = IntGaugeVec::new(prometheus::Opts::new("r", "r"), &["channel"]).unwrap();
        let last = GaugeVec::new(prometheus::Opts::new("l", "l"), &["channel"]).unwrap();
        let link = Link::with_metrics(reachable.clone(), last.clone());
        assert_eq!(link.health(Channel::Usage), Health::Unknown);
        link.down(Channel::Usage, &"refused");
        link.down(Channel::Usage, &"refused again");
        let Health::Down {
            failures, error, ..
        } = link.health(Channel::Usage)
        else {
            panic!("down")
        };
        assert_eq!((failures, error.as_str()), (2, "refused again"));
        assert_eq!(reachable.with_label_values(&["usage"]).get(), 0);
        assert_eq!(link.health(Channel::Config), Health::Unknown);
        link.up(Channel::Usage);
        assert_eq!(link.health(Channel::Usage), Health::Up);
        assert_eq!(reachable.with_label_values(&["usage"]).get(), 1);
        assert!(last.with_label_values(&["usage"]).get() > 1.7e9);
    }
}
