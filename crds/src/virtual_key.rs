//! `VirtualKey`: a credential for applications, with its model allow-list, rate limits,
//! expiry, metric labels and optional Budget.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::{DNS_SUBDOMAIN_PATTERN, MAX_NAMES};

/// The Secret data key that holds a VirtualKey's key.
pub const SECRET_KEY_FIELD: &str = "key";

/// A credential for applications. The operator generates the key into a Secret it owns;
/// only the key's hash leaves the Secret.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
// Printer columns repeat `type_ = "string"`, which clippy mistakes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "llmesh.io",
    version = "v1alpha1",
    kind = "VirtualKey",
    plural = "virtualkeys",
    singular = "virtualkey",
    shortname = "vk",
    category = "llmesh",
    namespaced,
    status = "VirtualKeyStatus",
    derive = "PartialEq",
    doc = "An API key for applications: allowed models, limits, expiry, labels and budget.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.team"),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".status.keyPrefix"),
    // The timestamp itself: a `date` column shows how long ago a time was, and an
    // expiry still to come would print as `<invalid>`.
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Budget",
        type_ = "string",
        json_path = ".spec.budgetRef",
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
pub struct VirtualKeySpec {
    /// LLMModels the key may call. Default: empty, meaning all models in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NAMES), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub models: Vec<String>,

    /// Rate and concurrency limits. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,

    /// When the key stops working (RFC 3339, e.g. `2026-01-31T00:00:00Z`). Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// Team label attached to this key's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub team: Option<String>,

    /// User label attached to this key's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub user: Option<String>,

    /// The Budget this key spends from, in the same namespace. Default: none (the key
    /// may still be selected by a Budget's `selector.keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub budget_ref: Option<String>,

    /// The Secret holding the key under data key `key`. The operator creates it when it
    /// does not exist; a Secret created beforehand brings its own key. Default:
    /// `<name>-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: Option<String>,
}

/// Rate and concurrency limits of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyLimits {
    /// Requests per minute. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub rpm: Option<u32>,
    /// Tokens per minute. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tpm: Option<u64>,
    /// Requests in flight at once. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel_requests: Option<u32>,
}

impl VirtualKey {
    /// The Secret holding this key: `spec.secretName`, else `<name>-key`.
    pub fn secret_name(&self) -> String {
        match &self.spec.secret_name {
            Some(name) => name.clone(),
            None => format!("{}-key", self.metadata.name.as_deref().unwrap_or_default()),
        }
    }
}

/// What the operator last observed about the key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualKeyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` once the key's hash is in the pushed config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The Secret that holds the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The key's first characters, for telling keys apart, e.g. `sk-llmesh-abcd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Lowercase hex SHA-256 of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// Whether `spec.expiresAt` has passed.
    #[serde(default)]
    pub expired: bool,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::test_support::{cel_failures, crd_json, printer_columns, round_trip};

    #[test]
    fn crd_names_and_columns() {
        let crd = VirtualKey::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("virtualkeys.llmesh.io"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["vk".to_owned()]));
        let names: Vec<_> = printer_columns::<VirtualKey>()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(names[..5], ["Ready", "Team", "Prefix", "Expires", "Age"]);
        let spec = &crd_json::<VirtualKey>()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"];
        assert_eq!(spec["properties"]["expiresAt"]["format"], "date-time");
    }

    #[test]
    fn secret_name_defaults_to_name_key() {
        assert_eq!(VirtualKey::test("team-a").secret_name(), "team-a-key");
        assert_eq!(
            VirtualKey::test("team-a")
                .with_secret_name("mine")
                .secret_name(),
            "mine"
        );
    }

    #[test]
    fn round_trips_and_passes_cel() {
        let key = VirtualKey::test("team-a")
            .with_models(["chat"])
            .with_limits(60, 100_000, 4)
            .with_team("a")
            .with_budget("b")
            .with_expiry(1_767_225_600);
        assert_eq!(round_trip(&key), key);
        assert_eq!(cel_failures(&key), Vec::<String>::new());
        let yaml = serde_saphyr::to_string(&key).unwrap();
        assert!(
            yaml.contains("expiresAt: \"2026-01-01T00:00:00Z\""),
            "{yaml}"
        );
    }
}
