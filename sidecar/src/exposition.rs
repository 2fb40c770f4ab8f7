//! A Prometheus registry whose text exposition lists every registered metric family,
//! including one with no sample yet: the prometheus crate leaves out a labelled family
//! until its first child exists, so a family that has seen no traffic (no retry yet, no
//! budget) would be missing from `/metrics` altogether. Here it still gets its `# HELP`
//! and `# TYPE` lines (both valid without samples in the text format), so what a binary
//! exports can be read from `/metrics` at any time: the chart's dashboard test checks its
//! queries against exactly that.
//!
//! Shared by the sidecar's and the operator's metrics.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

/// A registry, with or without a name prefix (`<prefix>_<name>`), rendering every family.
#[derive(Clone)]
pub struct Registry {
    inner: prometheus::Registry,
    prefix: Option<String>,
    /// Everything registered, to list the families `inner.gather()` prunes.
    collectors: Arc<Mutex<Vec<Arc<dyn Collector>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Lends a collector to the inner registry while this one keeps it too.
struct Shared(Arc<dyn Collector>);

impl Collector for Shared {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

impl Registry {
    /// An empty registry prefixing every name with `prefix_`.
    pub fn new(prefix: &str) -> Result<Self, prometheus::Error> {
        Ok(Registry {
            inner: prometheus::Registry::new_custom(Some(prefix.to_owned()), None)?,
            prefix: Some(prefix.to_owned()),
            collectors: Arc::default(),
        })
    }

    /// An empty registry whose names are used as registered (for names a convention
    /// fixes, such as OpenTelemetry's).
    pub fn unprefixed() -> Self {
        Registry {
            inner: prometheus::Registry::new(),
            prefix: None,
            collectors: Arc::default(),
        }
    }

    /// Registers `collector`; a name already registered is an error, as in
    /// [`prometheus::Registry::register`].
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        let shared: Arc<dyn Collector> = Arc::from(collector);
        self.inner.register(Box::new(Shared(shared.clone())))?;
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(shared);
        Ok(())
    }

    /// The text exposition: every family with samples as the prometheus crate encodes
    /// it, then `# HELP` and `# TYPE` for each registered family without any.
    pub fn render(&self) -> Vec<u8> {
        let families = self.inner.gather();
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on invalid families, which gather() never yields.
        let _ = TextEncoder::new().encode(&families, &mut out);
        let present: HashSet<&str> = families.iter().map(MetricFamily::name).collect();
        let collectors = self
            .collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Sorted, as gather() sorts; a family that gained a sample since gather() ran is
        // left for the next scrape rather than described twice.
        let mut empty = BTreeMap::new();
        for family in collectors.iter().flat_map(|c| c.collect()) {
            let name = match &self.prefix {
                Some(prefix) => format!("{prefix}_{}", family.name()),
                None => family.name().to_owned(),
            };
            if family.get_metric().is_empty() && !present.contains(name.as_str()) {
                let kind = format!("{:?}", family.get_field_type()).to_lowercase();
                empty.insert(name, (escape_help(family.help()), kind));
            }
        }
        let mut text = String::new();
        for (name, (help, kind)) in empty {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        out.extend_from_slice(text.as_bytes());
        out
    }
}

/// A `# HELP` text as the text format escapes it: backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

    use super::*;

    #[test]
    fn families_without_samples_keep_their_help_and_type() {
        let registry = Registry::new("x").unwrap();
        let counter = IntCounterVec::new(Opts::new("calls_total", "Calls."), &["model"]).unwrap();
        let histogram = HistogramVec::new(
            HistogramOpts::new("wait_seconds", "Wait.\nIn seconds \\ whole."),
            &["model"],
        )
        .unwrap();
        let gauge = IntGauge::new("up", "Up.").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        registry.register(Box::new(gauge)).unwrap();
        let text = String::from_utf8(registry.render()).unwrap();
        assert!(text.contains("# HELP x_calls_total Calls.\n# TYPE x_calls_total counter\n"));
        assert!(text.contains(
            "# HELP x_wait_seconds Wait.\\nIn seconds \\\\ whole.\n# TYPE x_wait_seconds histogram\n"
        ));
        assert!(text.contains("x_up 0\n"));

        counter.with_label_values(&["chat"]).inc();
        let text = String::from_utf8(registry.render()).unwrap();
        assert_eq!(text.matches("# TYPE x_calls_total counter").count(), 1);
        assert!(text.contains("x_calls_total{model=\"chat\"} 1\n"));
        assert_eq!(text.matches("# TYPE x_wait_seconds histogram").count(), 1);
    }

    #[test]
    fn an_unprefixed_registry_lists_names_as_registered() {
        let registry = Registry::unprefixed();
        let histogram = HistogramVec::new(
            HistogramOpts::new("gen_ai_client_token_usage", "Tokens."),
            &["gen_ai_token_type"],
        )
        .unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        let text = String::from_utf8(registry.render()).unwrap();
        assert!(text.contains("# TYPE gen_ai_client_token_usage histogram\n"));
        histogram.with_label_values(&["input"]).observe(3.0);
        let text = String::from_utf8(registry.render()).unwrap();
        assert!(text.contains("gen_ai_client_token_usage_count{gen_ai_token_type=\"input\"} 1\n"));
    }

    #[test]
    fn a_name_registered_twice_is_refused() {
        let registry = Registry::new("x").unwrap();
        let gauge = IntGauge::new("up", "Up.").unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        assert!(registry.register(Box::new(gauge)).is_err());
        let text = String::from_utf8(registry.render()).unwrap();
        assert_eq!(text.matches("# TYPE x_up gauge").count(), 1);
    }
}
