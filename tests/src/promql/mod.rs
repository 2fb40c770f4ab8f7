//! A PromQL reader for checking queries (the chart's Grafana dashboard, its alerts)
//! against what llmesh's binaries really export.
//!
//! [`parse`] reads an expression into an [`Expr`] tree following Prometheus' grammar:
//! selectors with matchers, range and subquery brackets, `offset` and `@`, function
//! calls, aggregations with `by`/`without` before or after their argument, binary
//! operators by precedence with `bool`, `on`/`ignoring` and `group_left`/`group_right`.
//! Which word is a metric and which a label, a function or a keyword is decided by its
//! place in that grammar, not by a list of names.
//!
//! [`check`] then walks the tree against a [`Catalog`] of metric families read from
//! `/metrics` ([`exposition`]): every metric must be exported (a histogram's
//! `_bucket`/`_sum`/`_count` resolve to it); every label a matcher, `by`, `without`,
//! `on`, `ignoring` or `group_*` names must be on the series it applies to, carried
//! through functions and aggregations as Prometheus carries them; `rate`-like functions
//! take counters, `histogram_quantile` takes buckets, one-to-one matches need the same
//! labels on both sides.

pub mod check;
pub mod exposition;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

pub use check::{Catalog, check, check_label_values, metric_names};
pub use parse::parse;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number literal.
    Number(f64),
    /// A string literal (an argument of `count_values`, `label_replace`...).
    Str(String),
    /// `name{matchers}`, with an optional `[range]`.
    Selector {
        name: String,
        matchers: Vec<Matcher>,
        range: Option<String>,
    },
    /// `f(args)`.
    Call { func: String, args: Vec<Expr> },
    /// `op by|without (labels) ([param,] expr)`.
    Aggregate {
        op: String,
        param: Option<Box<Expr>>,
        grouping: Option<Grouping>,
        expr: Box<Expr>,
    },
    /// `lhs op [bool] [on|ignoring (labels)] [group_left|group_right (labels)] rhs`.
    Binary {
        op: String,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: Option<Matching>,
    },
    /// `-expr` or `+expr`.
    Negate(Box<Expr>),
    /// `expr[range:step]`.
    Subquery { expr: Box<Expr>, range: String },
}

/// One label matcher: `label op "value"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: &'static str,
    pub value: String,
}

/// An aggregation's `by (...)` or `without (...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// A binary operation's vector matching.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matching {
    /// `on (...)` (true) or `ignoring (...)` (false), when either is given.
    pub on: Option<(bool, Vec<String>)>,
    /// `group_left (...)` (true) or `group_right (...)` (false).
    pub group: Option<(bool, Vec<String>)>,
}
