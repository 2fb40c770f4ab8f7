//! Checks a parsed expression against the metric families the binaries export.
//!
//! Each subexpression's value is computed as Prometheus would type it (scalar, string,
//! instant vector, range vector) together with the labels its series carry: a selector's
//! are its family's labels as read from the samples, plus the labels the scrape itself
//! adds (`namespace`, `pod`... as the caller says), plus `le` on `_bucket`; aggregations
//! keep their `by` labels or drop their `without` labels; `histogram_quantile` drops
//! `le`; one-to-one matches keep the left side's (or the `on` labels). A label named
//! anywhere must be on the series it applies to. A family with no sample has labels that
//! cannot be read: naming any label of its own is then reported too, so a test drives
//! enough traffic for every family whose labels its queries use.
//!
//! Functions the checker does not know are reported rather than passed: extend the
//! table in [`Walker::call`] with their typing first.

use std::collections::{BTreeMap, BTreeSet};

use super::Expr;
use super::exposition::{Family, Kind, families};

/// The families of every binary scraped.
#[derive(Debug, Default)]
pub struct Catalog {
    families: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    family: Family,
    /// Which binary exports it.
    source: String,
    /// The labels the scrape adds to its series.
    scrape_labels: BTreeSet<String>,
}

impl Catalog {
    /// Adds one binary's `/metrics` text: `source` names the binary in reports,
    /// `scrape_labels` are the target labels Prometheus adds to its series.
    pub fn add(&mut self, source: &str, text: &str, scrape_labels: &[&str]) -> Result<(), String> {
        for (name, family) in families(text)? {
            let entry = Entry {
                family,
                source: source.to_owned(),
                scrape_labels: scrape_labels.iter().map(|l| (*l).to_owned()).collect(),
            };
            if let Some(other) = self.families.insert(name.clone(), entry) {
                return Err(format!(
                    "{name} exported by both {} and {source}",
                    other.source
                ));
            }
        }
        Ok(())
    }

    /// Every family's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// The families with no sample yet.
    pub fn unsampled(&self) -> impl Iterator<Item = &str> {
        self.families
            .iter()
            .filter(|(_, e)| e.family.labels.is_none())
            .map(|(n, _)| n.as_str())
    }
}

/// The metric names `expr` selects, in order of appearance.
pub fn metric_names(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    walk(expr, &mut |e| {
        if let Expr::Selector { name, .. } = e {
            out.push(name.clone());
        }
    });
    out
}

fn walk(expr: &Expr, f: &mut impl FnMut(&Expr)) {
    f(expr);
    match expr {
        Expr::Number(_) | Expr::Str(_) | Expr::Selector { .. } => {}
        Expr::Call { args, .. } => args.iter().for_each(|a| walk(a, f)),
        Expr::Aggregate { param, expr, .. } => {
            if let Some(p) = param {
                walk(p, f);
            }
            walk(expr, f);
        }
        Expr::Binary { lhs, rhs, .. } => {
            walk(lhs, f);
            walk(rhs, f);
        }
        Expr::Negate(e) | Expr::Subquery { expr: e, .. } => walk(e, f),
    }
}

/// What is wrong with `expr` as a query to graph (it must give an instant vector or a
/// scalar); empty when nothing is.
pub fn check(expr: &Expr, catalog: &Catalog) -> Vec<String> {
    let mut walker = Walker {
        catalog,
        problems: Vec::new(),
    };
    match walker.value(expr) {
        Value::Vector(..) | Value::Scalar => {}
        other => walker
            .problems
            .push(format!("the query gives {}, not a vector", other.what())),
    }
    walker.problems
}

/// What is wrong with Grafana's `label_values(expr, label)`; empty when nothing is.
pub fn check_label_values(expr: &Expr, label: &str, catalog: &Catalog) -> Vec<String> {
    let mut walker = Walker {
        catalog,
        problems: Vec::new(),
    };
    match walker.value(expr) {
        Value::Vector(labels) => walker.require(&labels, label, "label_values"),
        other => walker
            .problems
            .push(format!("label_values over {}, not a vector", other.what())),
    }
    walker.problems
}

/// The labels a value's series carry.
#[derive(Clone, Debug)]
struct Labels {
    /// Labels known to be there.
    set: BTreeSet<String>,
    /// A family whose own labels could not be read (no samples).
    unread: Option<String>,
    /// From a metric already reported unknown: no further label reports.
    poisoned: bool,
    /// For reports: where the series come from.
    from: String,
}

impl Labels {
    fn of(set: impl IntoIterator<Item = String>, from: &str) -> Labels {
        Labels {
            set: set.into_iter().collect(),
            unread: None,
            poisoned: false,
            from: from.to_owned(),
        }
    }

    fn fully_known(&self) -> bool {
        self.unread.is_none() && !self.poisoned
    }
}

/// Whether series are raw counters (rate them), gauges (do not), or anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Series {
    Counter,
    Gauge,
    Any,
}

#[derive(Clone, Debug)]
enum Value {
    Scalar,
    Str,
    Vector(Labels),
    Range(Labels, Series),
}

impl Value {
    fn what(&self) -> &'static str {
        match self {
            Value::Scalar => "a scalar",
            Value::Str => "a string",
            Value::Vector(..) => "an instant vector",
            Value::Range(..) => "a range vector",
        }
    }
}

struct Walker<'a> {
    catalog: &'a Catalog,
    problems: Vec<String>,
}

impl Walker<'_> {
    /// Reports `label` missing from `labels`, unless it is there or cannot be judged.
    fn require(&mut self, labels: &Labels, label: &str, used_in: &str) {
        if labels.set.contains(label) || labels.poisoned || label == "__name__" {
            return;
        }
        match &labels.unread {
            Some(family) => self.problems.push(format!(
                "{used_in} names label {label} of {family}, which has no samples: its labels \
                 cannot be read (drive traffic that makes one)"
            )),
            None => self.problems.push(format!(
                "{used_in} names label {label}, which {} does not have (it has {:?})",
                labels.from, labels.set
            )),
        }
    }

    fn selector(&mut self, name: &str, matchers: &[super::Matcher]) -> (Labels, Series) {
        let resolved = self
            .catalog
            .families
            .get(name)
            .map(|e| (e, ""))
            .or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .into_iter()
                    .find_map(|suffix| {
                        let entry = self.catalog.families.get(name.strip_suffix(suffix)?)?;
                        let fits = match entry.family.kind {
                            Kind::Histogram => true,
                            Kind::Summary => suffix != "_bucket",
                            _ => false,
                        };
                        fits.then_some((entry, suffix))
                    })
            });
        let Some((entry, suffix)) = resolved else {
            self.problems.push(format!(
                "{name} is not exported by any binary scraped ({})",
                self.catalog
                    .families
                    .values()
                    .map(|e| e.source.as_str())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let mut labels = Labels::of([], name);
            labels.poisoned = true;
            return (labels, Series::Any);
        };
        let kind = entry.family.kind;
        if suffix.is_empty() && matches!(kind, Kind::Histogram | Kind::Summary) {
            self.problems.push(format!(
                "{name} is a {kind:?}: it has no series of its own, select {name}_bucket, \
                 {name}_sum or {name}_count"
            ));
        }
        let mut labels = Labels::of(entry.scrape_labels.iter().cloned(), name);
        match &entry.family.labels {
            Some(own) => labels.set.extend(own.iter().cloned()),
            None => labels.unread = Some(name.trim_end_matches(suffix).to_owned()),
        }
        if suffix == "_bucket" {
            labels.set.insert("le".into());
        }
        for m in matchers {
            self.require(&labels, &m.label, &format!("a matcher on {name}"));
        }
        let series = match (kind, suffix) {
            (Kind::Counter, _)
            | (Kind::Histogram | Kind::Summary, "_bucket" | "_sum" | "_count") => Series::Counter,
            (Kind::Gauge, _) => Series::Gauge,
            _ => Series::Any,
        };
        (labels, series)
    }

    fn value(&mut self, expr: &Expr) -> Value {
        match expr {
            Expr::Number(_) => Value::Scalar,
            Expr::Str(_) => Value::Str,
            Expr::Selector {
                name,
                matchers,
                range,
            } => {
                let (labels, series) = self.selector(name, matchers);
                match range {
                    Some(_) => Value::Range(labels, series),
                    None => Value::Vector(labels),
                }
            }
            Expr::Negate(e) => self.value(e),
            Expr::Subquery { expr, .. } => match self.value(expr) {
                Value::Vector(labels) => Value::Range(labels, Series::Any),
                other => {
                    self.problems
                        .push(format!("a subquery of {}, not a vector", other.what()));
                    Value::Scalar
                }
            },
            Expr::Call { func, args } => self.call(func, args),
            Expr::Aggregate {
                op,
                param,
                grouping,
                expr,
            } => {
                let param_value = param.as_ref().map(|p| self.value(p));
                let Some(Value::Vector(inner)) = self.vector_arg(op, expr) else {
                    return Value::Vector(poisoned(op));
                };
                let mut out = inner.clone();
                out.from = format!("{op}(...)");
                if let Some(g) = grouping {
                    for l in &g.labels {
                        self.require(&inner, l, &format!("{op} {}", by(g.without)));
                    }
                    if g.without {
                        out.set.retain(|l| !g.labels.contains(l));
                    } else {
                        out.set = g.labels.iter().cloned().collect();
                        out.unread = None;
                    }
                } else if !matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio") {
                    out.set.clear();
                    out.unread = None;
                }
                match (op.as_str(), param.as_deref(), param_value) {
                    ("count_values", Some(Expr::Str(label)), _) => {
                        out.set.insert(label.clone());
                    }
                    ("count_values", ..) => self
                        .problems
                        .push("count_values takes a label name first".into()),
                    (_, _, None | Some(Value::Scalar)) => {}
                    (_, _, Some(other)) => self.problems.push(format!(
                        "{op} takes a scalar parameter, not {}",
                        other.what()
                    )),
                }
                Value::Vector(out)
            }
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
            } => self.binary(op, lhs, rhs, matching.as_ref()),
        }
    }

    fn vector_arg(&mut self, func: &str, arg: &Expr) -> Option<Value> {
        match self.value(arg) {
            v @ Value::Vector(..) => Some(v),
            other => {
                self.problems.push(format!(
                    "{func} takes an instant vector, not {}",
                    other.what()
                ));
                None
            }
        }
    }

    fn binary(
        &mut self,
        op: &str,
        lhs: &Expr,
        rhs: &Expr,
        matching: Option<&super::Matching>,
    ) -> Value {
        let (l, r) = (self.value(lhs), self.value(rhs));
        let (l, r) = match (l, r) {
            (Value::Scalar, Value::Scalar) => return Value::Scalar,
            (Value::Vector(v), Value::Scalar) | (Value::Scalar, Value::Vector(v)) => {
                if matching.is_some() || ["and", "or", "unless"].contains(&op) {
                    self.problems.push(format!(
                        "{op} with vector matching between a vector and a scalar"
                    ));
                }
                return Value::Vector(v);
            }
            (Value::Vector(l), Value::Vector(r)) => (l, r),
            (l, r) => {
                self.problems
                    .push(format!("{op} between {} and {}", l.what(), r.what()));
                return Value::Vector(poisoned(op));
            }
        };
        let used_in = format!("{op} matching");
        let mut out = l.clone();
        match matching.and_then(|m| m.on.as_ref()) {
            Some((true, labels)) => {
                for label in labels {
                    self.require(&l, label, &used_in);
                    self.require(&r, label, &used_in);
                }
                if matching.and_then(|m| m.group.as_ref()).is_none() && !is_set_op(op) {
                    out.set = labels.iter().cloned().collect();
                    out.unread = None;
                }
            }
            Some((false, labels)) => {
                for label in labels {
                    if !l.set.contains(label) && l.fully_known() {
                        self.require(&r, label, &used_in);
                    }
                }
                out.set.retain(|x| !labels.contains(x));
            }
            None if !is_set_op(op) && l.fully_known() && r.fully_known() && l.set != r.set => {
                self.problems.push(format!(
                    "{op} matches one-to-one on every label, but {} has {:?} and {} has {:?}: \
                     say on(...) or ignoring(...)",
                    l.from, l.set, r.from, r.set
                ));
            }
            None => {}
        }
        if let Some((left, labels)) = matching.and_then(|m| m.group.as_ref()) {
            let (one, many) = if *left { (&r, &l) } else { (&l, &r) };
            for label in labels {
                self.require(one, label, &format!("{op} group_{}", side(*left)));
            }
            out = many.clone();
            out.set.extend(labels.iter().cloned());
        }
        if op == "or" {
            out.set = l.set.intersection(&r.set).cloned().collect();
            out.unread = l.unread.or(r.unread);
        }
        out.from = format!("({} {op} {})", l.from, r.from);
        Value::Vector(out)
    }

    /// A function call's value; unknown functions are reported.
    fn call(&mut self, func: &str, args: &[Expr]) -> Value {
        let values: Vec<Value> = args.iter().map(|a| self.value(a)).collect();
        let shape =
            |values: &[Value]| -> Vec<&'static str> { values.iter().map(Value::what).collect() };
        let fail = |walker: &mut Self, wanted: &str| {
            walker
                .problems
                .push(format!("{func} takes {wanted}, given {:?}", shape(&values)));
            Value::Vector(poisoned(func))
        };
        match (func, values.as_slice()) {
            ("rate" | "irate" | "increase" | "resets", [Value::Range(labels, series)]) => {
                if *series == Series::Gauge {
                    self.problems.push(format!(
                        "{func} over {}, a gauge: {func} is for counters",
                        labels.from
                    ));
                }
                Value::Vector(labels.clone())
            }
            ("delta" | "idelta" | "deriv", [Value::Range(labels, series)])
            | ("predict_linear", [Value::Range(labels, series), Value::Scalar]) => {
                if *series == Series::Counter {
                    self.problems.push(format!(
                        "{func} over {}, a counter: use rate or increase",
                        labels.from
                    ));
                }
                Value::Vector(labels.clone())
            }
            (
                "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
                | "count_over_time" | "last_over_time" | "present_over_time" | "stddev_over_time"
                | "stdvar_over_time" | "changes",
                [Value::Range(labels, _)],
            )
            | ("quantile_over_time", [Value::Scalar, Value::Range(labels, _)]) => {
                Value::Vector(labels.clone())
            }
            ("histogram_quantile", [Value::Scalar, Value::Vector(labels)]) => {
                self.require(labels, "le", "histogram_quantile (over _bucket series)");
                let mut out = labels.clone();
                out.set.remove("le");
                Value::Vector(out)
            }
            (
                "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn"
                | "sort" | "sort_desc" | "timestamp",
                [Value::Vector(labels)],
            )
            | ("round", [Value::Vector(labels)] | [Value::Vector(labels), Value::Scalar])
            | ("clamp_min" | "clamp_max", [Value::Vector(labels), Value::Scalar])
            | ("clamp", [Value::Vector(labels), Value::Scalar, Value::Scalar]) => {
                Value::Vector(labels.clone())
            }
            ("time", []) | ("scalar", [Value::Vector(..)]) => Value::Scalar,
            ("vector", [Value::Scalar]) => Value::Vector(Labels::of([], "vector()")),
            ("absent", [Value::Vector(..)]) | ("absent_over_time", [Value::Range(..)]) => {
                Value::Vector(Labels::of([], func))
            }
            (
                "rate" | "irate" | "increase" | "resets" | "delta" | "idelta" | "deriv" | "changes"
                | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
                | "count_over_time" | "last_over_time" | "present_over_time" | "stddev_over_time"
                | "stdvar_over_time" | "absent_over_time",
                _,
            ) => fail(self, "one range vector"),
            ("histogram_quantile", _) => fail(self, "a scalar and an instant vector"),
            (
                "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn"
                | "sort" | "sort_desc" | "timestamp" | "round" | "clamp" | "clamp_min"
                | "clamp_max" | "time" | "scalar" | "vector" | "absent" | "predict_linear"
                | "quantile_over_time",
                _,
            ) => fail(self, "other arguments"),
            _ => {
                self.problems.push(format!(
                    "function {func} is not known to this checker: add its typing to \
                     promql::check before using it"
                ));
                Value::Vector(poisoned(func))
            }
        }
    }
}

fn poisoned(from: &str) -> Labels {
    let mut labels = Labels::of([], from);
    labels.poisoned = true;
    labels
}

fn is_set_op(op: &str) -> bool {
    ["and", "or", "unless"].contains(&op)
}

fn by(without: bool) -> &'static str {
    if without { "without" } else { "by" }
}

fn side(left: bool) -> &'static str {
    if left { "left" } else { "right" }
}
