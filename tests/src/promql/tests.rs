use super::exposition::{Kind, families};
use super::*;

/// A sidecar-like exposition: a counter and a histogram with samples, a labelled counter
/// with none yet, a gauge.
const SIDECAR: &str = r#"# HELP llmesh_requests_total Requests.
# TYPE llmesh_requests_total counter
llmesh_requests_total{deployment="a",endpoint="chat_completions",model="chat",provider="openai",status="200"} 3
# HELP llmesh_time_to_first_token_seconds TTFT.
# TYPE llmesh_time_to_first_token_seconds histogram
llmesh_time_to_first_token_seconds_bucket{model="chat",le="0.5"} 1
llmesh_time_to_first_token_seconds_bucket{model="chat",le="+Inf"} 1
llmesh_time_to_first_token_seconds_sum{model="chat"} 0.2
llmesh_time_to_first_token_seconds_count{model="chat"} 1
# HELP llmesh_config_connected Connected.
# TYPE llmesh_config_connected gauge
llmesh_config_connected 1
# HELP llmesh_config_info Version.
# TYPE llmesh_config_info gauge
llmesh_config_info{version="v1"} 1
# HELP llmesh_fallbacks_total Fallbacks, with a \\ and a\nline feed.
# TYPE llmesh_fallbacks_total counter
"#;

const OPERATOR: &str = r#"# TYPE llmesh_operator_snapshot_info gauge
llmesh_operator_snapshot_info{namespace="a",version="v1"} 1
# TYPE llmesh_operator_budget_remaining_micros gauge
llmesh_operator_budget_remaining_micros{budget="team",namespace="a"} 5
# TYPE llmesh_operator_connected_sidecars gauge
llmesh_operator_connected_sidecars 2
"#;

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.add("sidecar", SIDECAR, &["namespace", "pod"]).unwrap();
    c.add("operator", OPERATOR, &["pod"]).unwrap();
    c
}

fn problems(expr: &str) -> Vec<String> {
    check(&parse(expr).unwrap(), &catalog())
}

fn assert_clean(expr: &str) {
    let p = problems(expr);
    assert!(p.is_empty(), "{expr}: {p:#?}");
}

fn assert_problem(expr: &str, needle: &str) {
    let p = problems(expr);
    assert!(
        p.iter().any(|p| p.contains(needle)),
        "{expr}: wanted a problem containing {needle:?}, got {p:#?}"
    );
}

#[test]
fn the_extractor_finds_metrics_not_functions_labels_keywords_or_durations() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"sum by (model, deployment) (rate(llmesh_requests_total{namespace=~"$namespace", status=~"5.."}[5m]))"#,
            &["llmesh_requests_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (le, model) (rate(llmesh_time_to_first_token_seconds_bucket[1h30m])))",
            &["llmesh_time_to_first_token_seconds_bucket"],
        ),
        (
            "sum(rate(a_total[5m] offset 1h)) without (pod) / on (namespace) group_left (team) max(b) > bool 0.5 or vector(0)",
            &["a_total", "b"],
        ),
        (
            "count by (namespace) (llmesh_config_info unless on (namespace, version) llmesh_operator_snapshot_info)",
            &["llmesh_config_info", "llmesh_operator_snapshot_info"],
        ),
        (
            "topk(10, sum by (key) (increase(spend_total{team!=\"\"}[1d]))) / 1e6",
            &["spend_total"],
        ),
        (
            "max_over_time(rate(x_total[5m])[1h:5m]) - time() + -y ^ 2",
            &["x_total", "y"],
        ),
        // Label names that look like functions stay labels.
        ("sum by (rate, sum) (errors{time=\"x\"})", &["errors"]),
        (
            "recording:rule_name:rate5m{job=\"x\"}",
            &["recording:rule_name:rate5m"],
        ),
    ];
    for (expr, wanted) in cases {
        let parsed = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(metric_names(&parsed), *wanted, "{expr}");
    }
    // An aggregation's name without its parentheses is not a metric.
    assert!(parse("sum by (rate) (count)").is_err());
}

#[test]
fn malformed_expressions_and_stray_variables_are_refused() {
    for bad in [
        "sum(rate(x[5m])",
        "rate(x[5])",
        "x{model=chat}",
        "x{model=\"chat\"",
        "{model=\"chat\"}",
        "rate(x[$__rate_interval])",
        "x > $threshold",
        "sum by (model (x)",
        "x y",
        "by",
        "topk(x)",
    ] {
        assert!(parse(bad).is_err(), "{bad} parsed");
    }
}

#[test]
fn the_exposition_reader_types_families_and_collects_labels() {
    let f = families(SIDECAR).unwrap();
    assert_eq!(f["llmesh_requests_total"].kind, Kind::Counter);
    let labels = f["llmesh_time_to_first_token_seconds"]
        .labels
        .clone()
        .unwrap();
    assert_eq!(labels.into_iter().collect::<Vec<_>>(), ["model"]);
    assert_eq!(
        f["llmesh_config_connected"].labels,
        Some(Default::default())
    );
    assert_eq!(f["llmesh_fallbacks_total"].labels, None);
    assert!(!f.contains_key("llmesh_time_to_first_token_seconds_bucket"));
    assert!(families("x_total 1\n").is_err(), "a sample without a TYPE");
    assert!(families("# TYPE x counter\n# TYPE x gauge\n").is_err());
    assert!(families("# TYPE x counter\nx{a=\"b} 1\n").is_err());
    let escaped = families("# TYPE x gauge\nx{a=\"q\\\"}\\\\\",b=\"\"} 1\n").unwrap();
    assert_eq!(escaped["x"].labels.as_ref().unwrap().len(), 2);
}

#[test]
fn exported_metrics_and_their_labels_pass() {
    assert_clean(
        r#"sum by (model, deployment) (rate(llmesh_requests_total{namespace=~"$namespace", status!~"2.."}[5m]))"#,
    );
    assert_clean(
        "histogram_quantile(0.95, sum by (le, model) (rate(llmesh_time_to_first_token_seconds_bucket[5m])))",
    );
    assert_clean("sum(rate(llmesh_time_to_first_token_seconds_count[5m])) by (namespace)");
    assert_clean(
        "count by (namespace) (llmesh_config_info unless on (namespace, version) llmesh_operator_snapshot_info)",
    );
    // Naming no label of a family without samples is fine.
    assert_clean("sum(rate(llmesh_fallbacks_total[5m]))");
    assert_clean("sum by (namespace) (rate(llmesh_fallbacks_total[5m]))");
    assert_clean("sum by (budget) (llmesh_operator_budget_remaining_micros) / 1e6");
}

#[test]
fn a_made_up_metric_is_rejected() {
    assert_problem(
        "sum(rate(llmesh_made_up_total[5m]))",
        "llmesh_made_up_total is not exported by any binary scraped (operator, sidecar)",
    );
    // A suffix only resolves to a histogram.
    assert_problem("rate(llmesh_requests_total_bucket[5m])", "not exported");
    assert_problem("llmesh_time_to_first_token_seconds", "no series of its own");
    let mut p = check_label_values(&parse("llmesh_nothing_total").unwrap(), "model", &catalog());
    assert!(p.pop().unwrap().contains("not exported"));
}

#[test]
fn labels_must_be_on_the_series_they_apply_to() {
    assert_problem(
        "sum by (team) (rate(llmesh_requests_total[5m]))",
        "sum by names label team, which llmesh_requests_total does not have",
    );
    assert_problem(
        r#"rate(llmesh_requests_total{key="k"}[5m])"#,
        "a matcher on llmesh_requests_total names label key",
    );
    // The operator's scrape adds no namespace: its families that lack one do not have it.
    assert_problem(
        "llmesh_config_connected * on (namespace) group_left llmesh_operator_connected_sidecars",
        "names label namespace",
    );
    assert_problem(
        "histogram_quantile(0.9, sum by (model) (rate(llmesh_time_to_first_token_seconds_bucket[5m])))",
        "names label le",
    );
    // An aggregation keeps only its by labels.
    assert_problem(
        "sum by (status) (sum by (model) (rate(llmesh_requests_total[5m])))",
        "names label status",
    );
    assert_problem(
        "sum by (model) (histogram_quantile(0.9, sum by (le) (rate(llmesh_time_to_first_token_seconds_bucket[5m]))))",
        "names label model",
    );
    // A family without samples: its own labels cannot be read.
    assert_problem(
        "sum by (from, to) (rate(llmesh_fallbacks_total[5m]))",
        "label from of llmesh_fallbacks_total, which has no samples",
    );
    assert_problem(
        "llmesh_time_to_first_token_seconds_bucket / llmesh_time_to_first_token_seconds_count",
        "matches one-to-one on every label",
    );
    let p = check_label_values(
        &parse(r#"llmesh_requests_total{namespace=~"$namespace"}"#).unwrap(),
        "team",
        &catalog(),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        check_label_values(
            &parse("llmesh_requests_total").unwrap(),
            "model",
            &catalog()
        )
        .is_empty()
    );
}

#[test]
fn functions_take_the_series_they_are_meant_for() {
    assert_problem("rate(llmesh_config_connected[5m])", "a gauge");
    assert_problem("deriv(llmesh_requests_total[5m])", "a counter");
    assert_problem("rate(llmesh_requests_total)", "takes one range vector");
    assert_problem("llmesh_requests_total[5m]", "gives a range vector");
    assert_problem(
        "label_replace(llmesh_requests_total, \"a\", \"b\", \"c\", \"d\")",
        "not known",
    );
    assert_problem(
        "topk(llmesh_config_connected, llmesh_requests_total)",
        "scalar parameter",
    );
}
