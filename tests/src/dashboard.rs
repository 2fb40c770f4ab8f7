//! The chart's Grafana dashboard (`charts/llmesh/dashboards/llmesh.json`): checks that it
//! imports (Grafana's classic dashboard model: uid, title, schemaVersion, panels with
//! unique ids and a place on the 24-column grid, Prometheus queries on the
//! `${datasource}` variable, every variable it uses defined), and collects its queries,
//! with Grafana's own interval variables replaced, for [`crate::promql`] to check against
//! what the binaries export.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::promql::{self, Catalog};

/// The dashboard file, relative to the repository's root.
pub const FILE: &str = "charts/llmesh/dashboards/llmesh.json";

/// The grid's width in Grafana.
const GRID_COLUMNS: u64 = 24;

/// The lowest `schemaVersion` accepted: Grafana 10.4's, from which every panel type used
/// here exists and later versions migrate forward on load.
const MIN_SCHEMA_VERSION: u64 = 39;

/// Panel types the dashboard may use (all built into Grafana).
const PANEL_TYPES: &[&str] = &[
    "row",
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "text",
    "state-timeline",
];

/// Grafana's built-in interval variables, as a query would be sent: `$__rate_interval`
/// is at least four scrape intervals, `$__range` the dashboard's time range.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "2m"),
    ("__interval", "30s"),
    ("__range", "6h"),
    ("__range_s", "21600"),
];

/// The dashboard's path.
pub fn path() -> PathBuf {
    crate::chart::root().join(FILE)
}

/// The dashboard, parsed.
pub fn load() -> Result<Value, String> {
    let text = std::fs::read_to_string(path()).map_err(|e| format!("{}: {e}", path().display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{FILE}: {e}"))
}

/// One query of the dashboard.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Where: `panel "Title" A` or `variable model`.
    pub place: String,
    pub kind: QueryKind,
}

/// What a query is.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryKind {
    /// A panel's PromQL, Grafana's interval variables replaced.
    Expr(String),
    /// A variable's `label_values(series, label)`.
    LabelValues { series: String, label: String },
}

/// Every panel, those inside collapsed rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// The names after `$`, `${` or `[[` in `text`.
fn variables_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(['$', '[']) {
        let tail = &rest[at..];
        let name_start = if tail.starts_with("${") || tail.starts_with("[[") {
            2
        } else if tail.starts_with('$') {
            1
        } else {
            rest = &tail[1..];
            continue;
        };
        let name: String = tail[name_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = &tail[name_start..];
    }
    out
}

/// What keeps the dashboard from importing cleanly; empty when nothing does.
pub fn structure_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let uid = dashboard["uid"].as_str().unwrap_or("");
    check(
        !uid.is_empty()
            && uid.len() <= 40
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        format!("uid {uid:?}: 1 to 40 of [A-Za-z0-9_-]"),
    );
    check(
        dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
        "a title".into(),
    );
    check(
        dashboard["schemaVersion"]
            .as_u64()
            .is_some_and(|v| v >= MIN_SCHEMA_VERSION),
        format!(
            "schemaVersion {} >= {MIN_SCHEMA_VERSION}",
            dashboard["schemaVersion"]
        ),
    );
    // A provisioned dashboard with a database id clashes with whatever holds that id.
    check(
        dashboard["id"].is_null(),
        "id null (Grafana assigns it)".into(),
    );
    check(
        dashboard["time"]["from"].is_string() && dashboard["time"]["to"].is_string(),
        "a default time range".into(),
    );

    let defined: BTreeSet<String> = variables(dashboard)
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let datasource = variables(dashboard)
        .into_iter()
        .find(|v| v["name"] == "datasource");
    check(
        datasource.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a datasource variable of type datasource, query prometheus".into(),
    );
    let prometheus = |ds: &Value| ds["type"] == "prometheus" && ds["uid"] == "${datasource}";
    for v in variables(dashboard) {
        let name = v["name"].as_str().unwrap_or("?");
        if v["type"] == "query" {
            check(
                prometheus(&v["datasource"]),
                format!("variable {name}: on ${{datasource}}"),
            );
        }
    }

    let all = panels(dashboard);
    check(!all.is_empty(), "panels".into());
    let mut ids = BTreeSet::new();
    let mut placed: Vec<(String, [u64; 4])> = Vec::new();
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or("");
        let what = format!("panel {title:?}");
        let kind = panel["type"].as_str().unwrap_or("");
        check(!title.is_empty(), format!("{what}: a title"));
        check(
            PANEL_TYPES.contains(&kind),
            format!("{what}: type {kind:?} is one of {PANEL_TYPES:?}"),
        );
        match panel["id"].as_u64() {
            Some(id) => check(ids.insert(id), format!("{what}: id {id} unique")),
            None => check(false, format!("{what}: an integer id")),
        }
        let grid = &panel["gridPos"];
        let dims = ["x", "y", "w", "h"].map(|k| grid[k].as_u64());
        let [Some(x), Some(y), Some(w), Some(h)] = dims else {
            check(false, format!("{what}: gridPos with integer x, y, w, h"));
            continue;
        };
        check(
            w >= 1 && h >= 1 && x + w <= GRID_COLUMNS,
            format!("{what}: gridPos within the {GRID_COLUMNS} columns"),
        );
        // Panels of collapsed rows are laid out when the row opens; the rest share the grid.
        let nested = !dashboard["panels"]
            .as_array()
            .is_some_and(|top| top.iter().any(|p| std::ptr::eq(p, *panel)));
        if !nested {
            for (other, [ox, oy, ow, oh]) in &placed {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                check(!overlap, format!("{what} overlaps panel {other:?}"));
            }
            placed.push((title.to_owned(), [x, y, w, h]));
        }
        if kind == "row" {
            check(
                w == GRID_COLUMNS && h == 1 && x == 0,
                format!("{what}: a row spans the grid"),
            );
            continue;
        }
        if kind == "text" {
            continue;
        }
        check(
            prometheus(&panel["datasource"]),
            format!("{what}: datasource ${{datasource}} (prometheus)"),
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        check(!targets.is_empty(), format!("{what}: queries"));
        let mut refs = BTreeSet::new();
        for t in &targets {
            let id = t["refId"].as_str().unwrap_or("");
            check(
                !id.is_empty() && refs.insert(id.to_owned()),
                format!("{what}: refId {id:?} unique"),
            );
            check(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                format!("{what} {id}: an expr"),
            );
            check(
                t.get("datasource").is_none_or(prometheus),
                format!("{what} {id}: datasource ${{datasource}}"),
            );
            let text = format!("{} {}", t["expr"], t["legendFormat"]);
            for name in variables_used(&text) {
                check(
                    defined.contains(&name) || BUILTINS.iter().any(|(b, _)| *b == name),
                    format!("{what} {id}: variable ${name} defined"),
                );
            }
        }
    }
    problems
}

/// Replaces Grafana's interval variables with the durations a query would be sent with.
pub fn substitute_builtins(expr: &str) -> String {
    let mut out = expr.to_owned();
    // Longest first: `$__range_s` before `$__range`.
    let mut builtins = BUILTINS.to_vec();
    builtins.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in builtins {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Every query: the panels' and the query variables'.
pub fn queries(dashboard: &Value) -> Result<Vec<Query>, String> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .ok_or_else(|| format!("panel {title:?}: a target without expr"))?;
            out.push(Query {
                place: format!("panel {title:?} {}", t["refId"].as_str().unwrap_or("?")),
                kind: QueryKind::Expr(substitute_builtins(expr)),
            });
        }
    }
    for v in variables(dashboard) {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        // Grafana 10+ keeps the query in an object; older exports as a string.
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .ok_or_else(|| format!("variable {name}: no query"))?;
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .ok_or_else(|| {
                format!("variable {name}: {query} is not label_values(series, label)")
            })?;
        let (series, label) = inner
            .rsplit_once(',')
            .ok_or_else(|| format!("variable {name}: label_values needs a series to read from"))?;
        out.push(Query {
            place: format!("variable {name}"),
            kind: QueryKind::LabelValues {
                series: series.trim().to_owned(),
                label: label.trim().to_owned(),
            },
        });
    }
    Ok(out)
}

/// Parses and checks every query against `catalog`: `place: problem` for each problem.
pub fn query_problems(queries: &[Query], catalog: &Catalog) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        let (text, problems) = match &q.kind {
            QueryKind::Expr(expr) => (
                expr,
                promql::parse(expr).map(|e| promql::check(&e, catalog)),
            ),
            QueryKind::LabelValues { series, label } => (
                series,
                promql::parse(series).map(|e| promql::check_label_values(&e, label, catalog)),
            ),
        };
        match problems {
            Ok(problems) => out.extend(problems.into_iter().map(|p| format!("{}: {p}", q.place))),
            Err(e) => out.push(format!("{}: does not parse ({e}): {text}", q.place)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn minimal() -> Value {
        json!({
            "id": null, "uid": "llmesh", "title": "llmesh", "schemaVersion": 39,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "model", "type": "query",
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "query": {"query": "label_values(llmesh_requests_total, model)", "refId": "V"}}
            ]},
            "panels": [
                {"id": 1, "type": "row", "title": "Traffic", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
                {"id": 2, "type": "timeseries", "title": "Requests",
                 "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "targets": [{"refId": "A", "legendFormat": "{{model}}",
                   "expr": "sum by (model) (rate(llmesh_requests_total{model=~\"$model\"}[$__rate_interval]))"}]}
            ]
        })
    }

    #[test]
    fn a_well_formed_dashboard_passes_and_its_queries_are_collected() {
        let d = minimal();
        assert_eq!(structure_problems(&d), Vec::<String>::new());
        let q = queries(&d).unwrap();
        assert_eq!(
            q[0].kind,
            QueryKind::Expr(
                "sum by (model) (rate(llmesh_requests_total{model=~\"$model\"}[2m]))".into()
            )
        );
        assert_eq!(
            q[1].kind,
            QueryKind::LabelValues {
                series: "llmesh_requests_total".into(),
                label: "model".into()
            }
        );
    }

    #[test]
    fn import_problems_are_found() {
        let mut d = minimal();
        d["panels"][1]["id"] = json!(1);
        d["panels"][1]["gridPos"]["x"] = json!(16);
        d["panels"][1]["datasource"]["uid"] = json!("prometheus-uid");
        d["panels"][1]["targets"][0]["expr"] = json!("rate(x{a=\"$nope\"}[5m])");
        d["schemaVersion"] = json!(16);
        d["uid"] = json!("has space");
        let problems = structure_problems(&d).join("\n");
        for wanted in [
            "id 1 unique",
            "within the 24 columns",
            "datasource ${datasource}",
            "variable $nope defined",
            "schemaVersion 16",
            "uid \"has space\"",
        ] {
            assert!(problems.contains(wanted), "{wanted} not in:\n{problems}");
        }
        let mut d = minimal();
        d["panels"][1]["gridPos"]["y"] = json!(0);
        assert!(
            structure_problems(&d)
                .join("\n")
                .contains("overlaps panel \"Traffic\"")
        );
    }

    #[test]
    fn builtins_are_replaced_and_variables_found() {
        assert_eq!(
            substitute_builtins("increase(x[$__range]) / $__range_s + rate(y[${__rate_interval}])"),
            "increase(x[6h]) / 21600 + rate(y[2m])"
        );
        assert_eq!(
            variables_used("a=~\"$namespace\", b=\"${team}\" [[key]] [5m]")
                .into_iter()
                .collect::<Vec<_>>(),
            ["key", "namespace", "team"]
        );
    }
}
