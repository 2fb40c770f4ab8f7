//! `Budget`: a USD spend limit over a period for the keys or models it selects. Its
//! status is the ledger.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::{DNS_SUBDOMAIN_PATTERN, MAX_NAMES, PeriodSpec, UsdAmount};

/// A spend limit in USD per period, applied to the VirtualKeys and LLMModels it selects.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
// Printer columns repeat `type_ = "string"`, which clippy mistakes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "llmesh.io",
    version = "v1alpha1",
    kind = "Budget",
    plural = "budgets",
    singular = "budget",
    shortname = "budget",
    category = "llmesh",
    namespaced,
    status = "BudgetStatus",
    derive = "PartialEq",
    doc = "A USD spend limit per period for the keys or models it selects; its status is the ledger.",
    // Money columns show the status' display strings, all formatted alike from the
    // micro-dollar ledger (`$50.00`), never the spec's own spelling of the limit.
    printcolumn(name = "Limit", type_ = "string", json_path = ".status.limit"),
    printcolumn(name = "Spent", type_ = "string", json_path = ".status.spent"),
    printcolumn(name = "Period", type_ = "string", json_path = ".spec.period"),
    printcolumn(name = "Exhausted", type_ = "boolean", json_path = ".status.exhausted"),
    // The timestamp itself: a `date` column shows the age of a time, and a reset is
    // always in the future, which kubectl prints as `<invalid>`.
    printcolumn(name = "Reset", type_ = "string", json_path = ".status.resetAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Remaining",
        type_ = "string",
        json_path = ".status.remaining",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.action) || !has(self.action.downgradeTo) || !has(self.selector.models) || !(self.action.downgradeTo in self.selector.models)").message("action.downgradeTo must not be a model this budget limits").field_path(".action.downgradeTo"))]
pub struct BudgetSpec {
    /// Spend limit per period in USD, a decimal with at most 6 decimals, e.g. `"100.00"`.
    pub limit: UsdAmount,

    /// How often the budget resets: `daily`, `weekly` (from Monday) or `monthly`, at
    /// midnight in `timeZone`; or a fixed duration like `36h`, counted from creation.
    pub period: PeriodSpec,

    /// IANA time zone that calendar periods follow, e.g. `Europe/Paris`. Default: `UTC`.
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: String,

    /// What the budget applies to: spend by the selected keys, or on the selected models.
    pub selector: BudgetSelector,

    /// Percentages of the limit at which an Event is recorded and the alert metric
    /// fires, each 1 to 100. Default: `[80, 100]`.
    #[serde(default = "default_alert_thresholds")]
    #[schemars(length(max = 10), inner(range(min = 1, max = 100)))]
    pub alert_thresholds: Vec<u32>,

    /// What happens once the budget is exhausted. Default: `{type: reject}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<BudgetAction>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_alert_thresholds() -> Vec<u32> {
    vec![80, 100]
}

/// The keys and models a budget applies to; at least one list must be non-empty.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.keys) && size(self.keys) > 0) || (has(self.models) && size(self.models) > 0)").message("selector must name at least one key or model"))]
pub struct BudgetSelector {
    /// VirtualKey names whose spend counts against the budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NAMES), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub keys: Vec<String>,
    /// LLMModel names whose spend counts against the budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NAMES), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub models: Vec<String>,
}

/// What happens once a budget is exhausted.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'downgrade' ? has(self.downgradeTo) : !has(self.downgradeTo)").message("downgradeTo is required when type is downgrade, and only then").field_path(".downgradeTo"))]
pub struct BudgetAction {
    /// `reject` refuses requests with 429 until the reset; `downgrade` serves them with
    /// `downgradeTo` instead. Default: `reject`.
    #[serde(default, rename = "type")]
    pub kind: BudgetActionType,
    /// The (cheaper) LLMModel that serves requests once the budget is exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub downgrade_to: Option<String>,
}

/// The action taken when a budget is exhausted: `reject` or `downgrade`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetActionType {
    // Variant meanings live in the field's doc (see `BudgetAction::kind`).
    #[default]
    Reject,
    Downgrade,
}

/// The budget's ledger, kept by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` once the budget compiled into the pushed config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The limit (`spec.limit`) in micro-dollars, as the ledger counts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_micros: Option<i64>,
    /// The limit, for display in the same format as `spent`, e.g. `$50.00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Spent this period, in micro-dollars.
    #[serde(default)]
    pub spent_micros: i64,
    /// Spent this period, for display: dollars and cents, more digits only when the
    /// amount has them, e.g. `$12.50`, `$0.0042`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<String>,
    /// Left this period, in micro-dollars (negative when overspent).
    #[serde(default)]
    pub remaining_micros: i64,
    /// Left this period, for display, e.g. `$37.50`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<String>,
    /// Whether the limit is reached and the action applies: spent reached the limit,
    /// or sidecars refused calls because what is left cannot pay one call's worst case.
    #[serde(default)]
    pub exhausted: bool,
    /// Set when sidecars first refused calls this period because what was left could not
    /// pay one call's worst case (possibly before `spent` reaches the limit): the limit,
    /// micro-dollars, in force then. It keeps `exhausted` true until the period resets or
    /// the limit is raised above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at_limit_micros: Option<i64>,
    /// When the current period started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<Time>,
    /// When the current period ends and spend resets (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<Time>,
    /// Alert thresholds (percent) already announced with an Event this period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub alerted_thresholds: Vec<u32>,
    /// Past periods, most recent last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 24))]
    pub history: Vec<BudgetPeriodRecord>,
    /// The sidecars spending from the budget: the last usage batch folded from each (so
    /// a resent batch is never counted twice) and the lease each holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub reporters: Vec<BudgetReporter>,
}

/// One sidecar's entry in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReporter {
    /// The sidecar's reporting id (pod name and a per-process suffix).
    #[schemars(length(max = 300))]
    pub id: String,
    /// The last usage batch folded.
    pub seq: u64,
    /// Spend it may make without asking again, in micro-dollars.
    pub lease_micros: u64,
    /// When it was last heard from, Unix milliseconds.
    pub seen_unix_ms: i64,
}

/// Spend of one finished period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPeriodRecord {
    /// When the period started.
    pub period_start: Time,
    /// When the period ended.
    pub period_end: Time,
    /// Spent in the period, in micro-dollars.
    pub spent_micros: i64,
    /// Spent in the period, for display.
    pub spent: String,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::test_support::{cel_failures, cel_rules, crd_json, printer_columns, round_trip};

    #[test]
    fn crd_names_columns_and_defaults() {
        let crd = Budget::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("budgets.llmesh.io"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["budget".to_owned()]));
        let names: Vec<_> = printer_columns::<Budget>()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(
            names[..6],
            ["Limit", "Spent", "Period", "Exhausted", "Reset", "Age"]
        );
        let columns = printer_columns::<Budget>();
        assert_eq!(columns[0].1, ".status.limit");
        let spec = &crd_json::<Budget>()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"];
        assert_eq!(spec["properties"]["timeZone"]["default"], "UTC");
        assert_eq!(
            spec["properties"]["alertThresholds"]["default"],
            serde_json::json!([80, 100])
        );
        assert_eq!(
            spec["properties"]["alertThresholds"]["items"]["maximum"],
            100.0
        );
        let rules = cel_rules::<Budget>();
        for needle in ["has(self.downgradeTo)", "size(self.keys) > 0", "'monthly'"] {
            assert!(
                rules.iter().any(|r| r.contains(needle)),
                "missing {needle}: {rules:#?}"
            );
        }
    }

    #[test]
    fn defaults_apply_on_parse() {
        let yaml = "
apiVersion: llmesh.io/v1alpha1
kind: Budget
metadata: {name: b}
spec: {limit: '50', period: monthly, selector: {keys: [k]}}
";
        let budget: Budget = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(budget.spec.time_zone, "UTC");
        assert_eq!(budget.spec.alert_thresholds, [80, 100]);
        assert_eq!(budget.spec.action, None);
        assert_eq!(round_trip(&budget), budget);
    }

    #[test]
    fn cel_accepts_good_budgets() {
        let budget = Budget::test("b", "100.00", ["k"]).with_period("36h");
        assert_eq!(cel_failures(&budget), Vec::<String>::new());
        let budget = Budget::test("b", "1", [])
            .with_models(["gpt"])
            .with_downgrade("cheap");
        assert_eq!(cel_failures(&budget), Vec::<String>::new());
    }

    #[test]
    fn cel_refuses_bad_budgets() {
        let empty = Budget::test("b", "1", []);
        assert_eq!(
            cel_failures(&empty),
            ["selector must name at least one key or model"]
        );

        let mut no_target = Budget::test("b", "1", ["k"]);
        no_target.spec.action = Some(BudgetAction {
            kind: BudgetActionType::Downgrade,
            downgrade_to: None,
        });
        assert_eq!(
            cel_failures(&no_target),
            ["downgradeTo is required when type is downgrade, and only then"]
        );

        let own = Budget::test("b", "1", [])
            .with_models(["gpt"])
            .with_downgrade("gpt");
        assert_eq!(
            cel_failures(&own),
            ["action.downgradeTo must not be a model this budget limits"]
        );

        for period in ["yearly", "0s", "1d"] {
            let budget = Budget::test("b", "1", ["k"]).with_period(period);
            assert_eq!(
                cel_failures(&budget),
                ["must be daily, weekly, monthly or a positive duration like 36h"],
                "{period}"
            );
        }
        let budget = Budget::test("b", "1.5.0", ["k"]);
        assert_eq!(cel_failures(&budget).len(), 1);
    }
}
