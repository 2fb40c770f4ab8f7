//! Sidecar injection as a pure function: an admission request for a Pod in, a JSONPatch
//! (or a reason to leave the pod alone, or a refusal) out. No I/O: the server in
//! [`super`] looks up what this needs (the namespace's label, the VirtualKey's Secret)
//! and passes it in, so every rule is tested on plain values.
//!
//! The patch only ever *adds*: the sidecar as a native sidecar (the first init container,
//! `restartPolicy: Always`, so it starts before the app and does not keep a Job from
//! completing), one projected volume (the service-account token for audience `llmesh`
//! and the operator's CA), and `OPENAI_BASE_URL` (plus `OPENAI_API_KEY` from a
//! VirtualKey's Secret) in the app containers. Each piece is added only where it is
//! missing, so a re-invocation (another webhook added a container after us) completes
//! the pod instead of injecting twice.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

use super::quantity::{Quantity, Resource};

/// Namespace label that turns injection on for every pod in the namespace.
pub const NAMESPACE_LABEL: &str = "llmesh.io/injection";
/// Value of [`NAMESPACE_LABEL`] that enables injection.
pub const NAMESPACE_ENABLED: &str = "enabled";
/// Pod annotation (or label) `"true"` to opt a pod in, `"false"` to opt it out.
pub const INJECT: &str = "llmesh.io/inject";
/// Pod annotation naming the VirtualKey whose key the app gets as `OPENAI_API_KEY`.
pub const VIRTUAL_KEY: &str = "llmesh.io/virtual-key";
/// Annotation the webhook sets on pods it injected.
pub const INJECTED: &str = "llmesh.io/injected";
/// Label the webhook sets on pods it injected (value `injected`), so a PodMonitor can
/// select every sidecar's metrics.
pub const SIDECAR_LABEL: &str = "llmesh.io/sidecar";
/// Per-pod resource overrides for the sidecar.
pub const CPU_REQUEST: &str = "llmesh.io/sidecar-cpu";
/// Memory request override.
pub const MEMORY_REQUEST: &str = "llmesh.io/sidecar-memory";
/// CPU limit override.
pub const CPU_LIMIT: &str = "llmesh.io/sidecar-cpu-limit";
/// Memory limit override.
pub const MEMORY_LIMIT: &str = "llmesh.io/sidecar-memory-limit";

/// The injected container's name; its presence means the pod is already injected.
pub const SIDECAR_NAME: &str = "llmesh-sidecar";
/// The injected volume: token and CA, mounted where the sidecar looks by default.
pub const VOLUME_NAME: &str = "llmesh";
/// Where [`VOLUME_NAME`] is mounted in the sidecar.
pub const MOUNT_PATH: &str = "/var/run/secrets/llmesh";
/// The sidecar's API port on loopback.
pub const API_PORT: u16 = 4000;
/// The sidecar's admin port (probes, metrics), on all addresses so kubelet reaches it.
pub const ADMIN_PORT: u16 = 4001;
/// What the app containers get as `OPENAI_BASE_URL`.
pub const BASE_URL: &str = "http://127.0.0.1:4000/v1";
/// The sidecar's environment variable naming the pod's VirtualKey.
pub const SIDECAR_KEY_ENV: &str = "LLMESH_VIRTUAL_KEY";
/// The uid the sidecar runs as (distroless `nonroot`).
pub const SIDECAR_UID: i64 = 65532;
/// Service-account token lifetime; kubelet refreshes it at 80 %, the sidecar re-reads
/// it on every connect.
pub const TOKEN_SECONDS: i64 = 3600;

/// Sidecar resources: Kubernetes quantities, `None` to leave unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU request.
    pub cpu_request: Option<String>,
    /// Memory request.
    pub memory_request: Option<String>,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
}

/// What every injected sidecar looks like (from the chart, via the operator's env).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The sidecar image.
    pub image: String,
    /// `IfNotPresent`, `Always` or `Never`.
    pub pull_policy: String,
    /// The operator's push URL, e.g. `https://llmesh-operator.llmesh-system.svc:8443`.
    pub operator_url: String,
    /// The ConfigMap (key `ca.crt`) the operator publishes into every namespace.
    pub ca_config_map: String,
    /// The operator's own namespace: never injected.
    pub operator_namespace: String,
    /// Default resources, overridden per pod by annotations.
    pub resources: Resources,
    /// `text` or `json` logs from the sidecar.
    pub log_format: String,
}

/// What the server looked up for this pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The pod's namespace (from the request: a pod being created may not carry it).
    pub namespace: String,
    /// Whether the namespace has `llmesh.io/injection=enabled`.
    pub namespace_enabled: bool,
    /// The Secret holding the key of the pod's `llmesh.io/virtual-key`, when it names one.
    pub virtual_key_secret: Option<String>,
}

/// The webhook's answer for one pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Admit the pod with this JSONPatch (never empty) and these warnings.
    Patch(json_patch::Patch, Vec<String>),
    /// Admit the pod unchanged; why (for the log and, when it concerns the user, a warning).
    Skip(Skip),
    /// Refuse the pod: its annotations ask for something impossible.
    Deny(String),
}

/// Why a pod is admitted unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Neither the namespace nor the pod asks for injection.
    NotRequested,
    /// The pod says `llmesh.io/inject: "false"`.
    OptedOut,
    /// The operator's own namespace is never injected (its pods must start without it).
    OperatorNamespace,
    /// A host-network pod would put the sidecar's ports on the node.
    HostNetwork,
    /// Already injected and nothing is missing.
    AlreadyInjected,
}

impl Skip {
    /// A warning for the user, where the skip is worth one.
    pub fn warning(&self) -> Option<String> {
        match self {
            Skip::HostNetwork => Some(
                "llmesh: not injecting the sidecar into a hostNetwork pod (its ports would \
                 be the node's)"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

fn label_or_annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(key)))
        .map(String::as_str)
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The VirtualKey a pod names, if any.
pub fn virtual_key(pod: &Pod) -> Option<&str> {
    annotation(pod, VIRTUAL_KEY)
}

/// Decides and builds the patch. `pod` is the object of the admission request.
pub fn inject(pod: &Pod, config: &Config, ctx: &Context) -> Outcome {
    if ctx.namespace == config.operator_namespace {
        return Outcome::Skip(Skip::OperatorNamespace);
    }
    match label_or_annotation(pod, INJECT).map(str::trim) {
        Some("false") => return Outcome::Skip(Skip::OptedOut),
        Some("true") => {}
        _ if ctx.namespace_enabled => {}
        _ => return Outcome::Skip(Skip::NotRequested),
    }
    let Some(spec) = &pod.spec else {
        return Outcome::Deny("llmesh: the pod has no spec".to_owned());
    };
    if spec.host_network == Some(true) {
        return Outcome::Skip(Skip::HostNetwork);
    }
    let (resources, resource_warnings) = match resources(pod, &config.resources) {
        Ok(r) => r,
        Err(e) => return Outcome::Deny(e),
    };
    let key = virtual_key(pod);
    if key.is_some() && ctx.virtual_key_secret.is_none() {
        // The server always resolves a named key to a Secret name (the default name when
        // the VirtualKey is not there yet); reaching here is a bug, not a user error.
        return Outcome::Deny("llmesh: the virtual key's Secret was not resolved".to_owned());
    }

    let mut ops: Vec<Value> = Vec::new();
    let mut warnings = Vec::new();
    let has = |containers: Option<&Vec<Container>>| {
        containers.is_some_and(|cs| cs.iter().any(|c| c.name == SIDECAR_NAME))
    };
    let injected = has(spec.init_containers.as_ref()) || has(Some(&spec.containers));
    if !injected {
        // Only when the sidecar is added: a re-invocation has nothing new to say.
        warnings.extend(resource_warnings);
        let sidecar = sidecar(config, key, &resources);
        match &spec.init_containers {
            // First, so later init containers may already call the gateway.
            Some(_) => {
                ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}))
            }
            None => {
                ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]}))
            }
        }
    }
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    if !volumes.iter().any(|v| v.name == VOLUME_NAME) {
        let volume = volume(config);
        match &spec.volumes {
            Some(_) => ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": volume})),
            None => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": [volume]})),
        }
    }
    for (i, container) in spec.containers.iter().enumerate() {
        if container.name == SIDECAR_NAME {
            continue;
        }
        let mut vars = vec![json!({"name": "OPENAI_BASE_URL", "value": BASE_URL})];
        if let Some(secret) = &ctx.virtual_key_secret {
            vars.push(json!({
                "name": "OPENAI_API_KEY",
                "valueFrom": {"secretKeyRef": {
                    "name": secret,
                    "key": llmesh_crds::virtual_key::SECRET_KEY_FIELD,
                }}
            }));
        }
        let env = container.env.as_deref().unwrap_or_default();
        // A variable the container sets itself wins: the user chose it.
        vars.retain(|v| {
            let name = v["name"].as_str().unwrap_or_default();
            let present = env.iter().any(|e| e.name == name);
            if present && !injected {
                warnings.push(format!(
                    "llmesh: container {:?} sets {name} itself; left as it is",
                    container.name
                ));
            }
            !present
        });
        if vars.is_empty() {
            continue;
        }
        if container.env.is_none() {
            ops.push(
                json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": vars}),
            );
        } else {
            for var in vars {
                ops.push(json!({"op": "add", "path": format!("/spec/containers/{i}/env/-"), "value": var}));
            }
        }
    }
    if ops.is_empty() {
        return Outcome::Skip(Skip::AlreadyInjected);
    }
    if pod.metadata.annotations.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    let injected_path = format!("/metadata/annotations/{}", escape(INJECTED));
    ops.push(json!({"op": "add", "path": injected_path, "value": "true"}));
    if pod.metadata.labels.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
    }
    let label_path = format!("/metadata/labels/{}", escape(SIDECAR_LABEL));
    ops.push(json!({"op": "add", "path": label_path, "value": "injected"}));
    match serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) {
        Ok(patch) => Outcome::Patch(patch, warnings),
        Err(e) => Outcome::Deny(format!("llmesh: cannot build the patch: {e}")),
    }
}

/// JSON Pointer escaping (RFC 6901) of one path segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Resources from the defaults and the pod's annotations, and warnings for the user.
///
/// Whatever the annotations say, the result is valid for the API server, and anything
/// else refuses the pod with a message naming the annotation (the API server's own error
/// would name a container the user never wrote):
///
/// - every annotation is a sensible quantity ([`Resource::check`]: not negative, zero,
///   finer than the API's units or out of a sidecar's range);
/// - a request never exceeds its limit. Both set by annotations, request above limit:
///   refused, naming both. Only the request set, above the default limit: the limit is
///   raised to the request (asking for more memory must not make an invalid pod), with
///   a warning. Only the limit set, below the default request: the request is lowered
///   to the limit, with a warning.
fn resources(pod: &Pod, defaults: &Resources) -> Result<(Resources, Vec<String>), String> {
    let mut warnings = Vec::new();
    let (cpu_request, cpu_limit) = request_and_limit(
        pod,
        Resource::Cpu,
        (CPU_REQUEST, &defaults.cpu_request),
        (CPU_LIMIT, &defaults.cpu_limit),
        &mut warnings,
    )?;
    let (memory_request, memory_limit) = request_and_limit(
        pod,
        Resource::Memory,
        (MEMORY_REQUEST, &defaults.memory_request),
        (MEMORY_LIMIT, &defaults.memory_limit),
        &mut warnings,
    )?;
    let resources = Resources {
        cpu_request,
        memory_request,
        cpu_limit,
        memory_limit,
    };
    Ok((resources, warnings))
}

/// One resource's value: the text written into the pod, its amount, and whether the
/// pod's annotation (rather than the operator's default) chose it.
#[derive(Clone)]
struct Amount {
    text: String,
    amount: Quantity,
    annotated: bool,
}

/// The request and limit of one resource; see [`resources`] for the rules.
fn request_and_limit(
    pod: &Pod,
    resource: Resource,
    (request_key, default_request): (&str, &Option<String>),
    (limit_key, default_limit): (&str, &Option<String>),
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, Option<String>), String> {
    let pick = |key: &str, default: &Option<String>| -> Result<Option<Amount>, String> {
        match (annotation(pod, key), default) {
            (Some(text), _) => match resource.check(text) {
                Ok(amount) => Ok(Some(Amount {
                    text: text.to_owned(),
                    amount,
                    annotated: true,
                })),
                Err(e) => Err(format!("llmesh: annotation {key}: {text:?} {e}")),
            },
            (None, Some(text)) => match Quantity::parse(text) {
                Ok(amount) => Ok(Some(Amount {
                    text: text.clone(),
                    amount,
                    annotated: false,
                })),
                // The settings checked the defaults at start; only a hand-made Config
                // gets here.
                Err(e) => Err(format!(
                    "llmesh: the operator's default {resource} {text:?} {e}"
                )),
            },
            (None, None) => Ok(None),
        }
    };
    let mut request = pick(request_key, default_request)?;
    let mut limit = pick(limit_key, default_limit)?;
    if let (Some(r), Some(l)) = (&request, &limit)
        && r.amount > l.amount
    {
        let (r_text, l_text) = (r.text.clone(), l.text.clone());
        match (r.annotated, l.annotated) {
            (true, false) => {
                warnings.push(format!(
                    "llmesh: {request_key}: {r_text} is above the default {resource} limit \
                     {l_text}; the sidecar's {resource} limit is raised to {r_text} (set \
                     {limit_key} to choose another)"
                ));
                limit = request.clone();
            }
            (false, true) => {
                warnings.push(format!(
                    "llmesh: {limit_key}: {l_text} is below the default {resource} request \
                     {r_text}; the sidecar's {resource} request is lowered to {l_text} (set \
                     {request_key} to choose another)"
                ));
                request = limit.clone();
            }
            (true, true) => {
                return Err(format!(
                    "llmesh: annotation {request_key}: {r_text} is above annotation \
                     {limit_key}: {l_text}; a {resource} request cannot exceed its limit"
                ));
            }
            (false, false) => {
                return Err(format!(
                    "llmesh: the operator's default {resource} request {r_text} is above its \
                     default limit {l_text}"
                ));
            }
        }
    }
    Ok((request.map(|v| v.text), limit.map(|v| v.text)))
}

fn sidecar(config: &Config, key: Option<&str>, resources: &Resources) -> Value {
    let pairs = |cpu: &Option<String>, memory: &Option<String>| {
        [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter_map(|(name, v)| Some((name, v.clone()?)))
            .collect::<BTreeMap<_, _>>()
    };
    let requests = pairs(&resources.cpu_request, &resources.memory_request);
    let limits = pairs(&resources.cpu_limit, &resources.memory_limit);
    let mut env = Vec::new();
    if let Some(key) = key {
        env.push(json!({"name": SIDECAR_KEY_ENV, "value": key}));
    }
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": ADMIN_PORT},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 1,
        })
    };
    json!({
        "name": SIDECAR_NAME,
        "image": config.image,
        "imagePullPolicy": config.pull_policy,
        // A native sidecar: started before the app containers, stopped after them, and
        // not waited for by a Job.
        "restartPolicy": "Always",
        "args": [
            "--operator", config.operator_url,
            "--operator-ca", format!("{MOUNT_PATH}/ca.crt"),
            "--token-file", format!("{MOUNT_PATH}/token"),
            "--listen", format!("127.0.0.1:{API_PORT}"),
            "--admin-listen", format!("0.0.0.0:{ADMIN_PORT}"),
            "--log-format", config.log_format,
        ],
        "env": env,
        "ports": [{"name": "llmesh-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        // The app starts once the sidecar listens; the pod is Ready once the sidecar has
        // a config (`/readyz`); while the operator is away it keeps serving the last one.
        "startupProbe": probe("/healthz", 1, 30),
        "readinessProbe": probe("/readyz", 2, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": SIDECAR_UID,
            "runAsGroup": SIDECAR_UID,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": true}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    })
}

fn volume(config: &Config) -> Value {
    json!({
        "name": VOLUME_NAME,
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {
                    "audience": llmesh_sidecar::config::push::AUDIENCE,
                    "expirationSeconds": TOKEN_SECONDS,
                    "path": "token",
                }},
                {"configMap": {
                    "name": config.ca_config_map,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config {
            image: "ghcr.io/llmesh/sidecar:0.1.0".into(),
            pull_policy: "IfNotPresent".into(),
            operator_url: "https://llmesh-operator.llmesh-system.svc:8443".into(),
            ca_config_map: "llmesh-ca".into(),
            operator_namespace: "llmesh-system".into(),
            resources: Resources {
                cpu_request: Some("50m".into()),
                memory_request: Some("64Mi".into()),
                cpu_limit: None,
                memory_limit: Some("256Mi".into()),
            },
            log_format: "json".into(),
        }
    }

    fn enabled() -> Context {
        Context {
            namespace: "team-a".into(),
            namespace_enabled: true,
            virtual_key_secret: None,
        }
    }

    fn pod(value: Value) -> (Pod, Value) {
        (serde_json::from_value(value.clone()).unwrap(), value)
    }

    fn app() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "app-", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "app", "image": "python:3.12"}]}
        })
    }

    /// Runs the webhook and applies its patch to the original JSON, as the API server does.
    fn apply(value: Value, ctx: &Context) -> (Value, Vec<String>) {
        let (p, mut raw) = pod(value);
        match inject(&p, &config(), ctx) {
            Outcome::Patch(patch, warnings) => {
                json_patch::patch(&mut raw, &patch).unwrap();
                // The result is still a valid Pod.
                let _: Pod = serde_json::from_value(raw.clone()).unwrap();
                (raw, warnings)
            }
            other => panic!("expected a patch, got {other:?}"),
        }
    }

    fn env(container: &Value) -> BTreeMap<String, Value> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    }

    #[test]
    fn a_pod_in_an_enabled_namespace_gets_a_native_sidecar() {
        let (out, warnings) = apply(app(), &enabled());
        assert!(warnings.is_empty());
        let init = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 1);
        let s = &init[0];
        assert_eq!(s["name"], SIDECAR_NAME);
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["image"], "ghcr.io/llmesh/sidecar:0.1.0");
        let args: Vec<&str> = s["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--operator",
                "https://llmesh-operator.llmesh-system.svc:8443",
                "--operator-ca",
                "/var/run/secrets/llmesh/ca.crt",
                "--token-file",
                "/var/run/secrets/llmesh/token",
                "--listen",
                "127.0.0.1:4000",
                "--admin-listen",
                "0.0.0.0:4001",
                "--log-format",
                "json"
            ]
        );
        assert_eq!(s["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(s["readinessProbe"]["httpGet"]["port"], 4001);
        let sc = &s["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(
            s["resources"],
            json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
        );
        assert_eq!(s["env"], json!([]));
        assert_eq!(s["volumeMounts"][0]["mountPath"], MOUNT_PATH);

        let volumes = out["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let sources = &volumes[0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["audience"], "llmesh");
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["name"], "llmesh-ca");

        let app = &out["spec"]["containers"][0];
        assert_eq!(
            env(app)["OPENAI_BASE_URL"],
            json!({"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:4000/v1"})
        );
        assert!(!env(app).contains_key("OPENAI_API_KEY"));
        assert_eq!(out["metadata"]["annotations"][INJECTED], "true");
        assert_eq!(out["metadata"]["labels"]["app"], "a");
        assert_eq!(out["metadata"]["labels"][SIDECAR_LABEL], "injected");
    }

    #[test]
    fn the_annotation_opts_a_pod_in_where_the_namespace_is_not_enabled() {
        let mut value = app();
        value["metadata"]["annotations"] = json!({INJECT: "true"});
        let ctx = Context {
            namespace_enabled: false,
            ..enabled()
        };
        let (out, _) = apply(value, &ctx);
        assert_eq!(out["spec"]["initContainers"][0]["name"], SIDECAR_NAME);
        assert_eq!(out["metadata"]["annotations"][INJECT], "true");
        // The label works the same (it is what an objectSelector can match).
        let mut value = app();
        value["metadata"]["labels"][INJECT] = json!("true");
        let (out, _) = apply(value, &ctx);
        assert_eq!(out["spec"]["initContainers"][0]["name"], SIDECAR_NAME);
    }

    #[test]
    fn pods_not_asking_opting_out_or_in_the_operator_namespace_are_left_alone() {
        let (p, _) = pod(app());
        let off = Context {
            namespace_enabled: false,
            ..enabled()
        };
        assert_eq!(
            inject(&p, &config(), &off),
            Outcome::Skip(Skip::NotRequested)
        );
        let mut value = app();
        value["metadata"]["annotations"] = json!({INJECT: "false"});
        let (p, _) = pod(value);
        assert_eq!(
            inject(&p, &config(), &enabled()),
            Outcome::Skip(Skip::OptedOut)
        );
        let mut value = app();
        value["metadata"]["labels"][INJECT] = json!("false");
        let (p, _) = pod(value);
        assert_eq!(
            inject(&p, &config(), &enabled()),
            Outcome::Skip(Skip::OptedOut)
        );
        let mut value = app();
        value["metadata"]["annotations"] = json!({INJECT: "true"});
        let (p, _) = pod(value);
        let own = Context {
            namespace: "llmesh-system".into(),
            ..enabled()
        };
        assert_eq!(
            inject(&p, &config(), &own),
            Outcome::Skip(Skip::OperatorNamespace)
        );
        let mut value = app();
        value["spec"]["hostNetwork"] = json!(true);
        let (p, _) = pod(value);
        let outcome = inject(&p, &config(), &enabled());
        assert_eq!(outcome, Outcome::Skip(Skip::HostNetwork));
        assert!(Skip::HostNetwork.warning().is_some());
    }

    #[test]
    fn a_virtual_key_gives_the_app_its_key_and_the_sidecar_its_name() {
        let mut value = app();
        value["metadata"]["annotations"] = json!({VIRTUAL_KEY: "team-a"});
        let (p, _) = pod(value.clone());
        assert_eq!(virtual_key(&p), Some("team-a"));
        let ctx = Context {
            virtual_key_secret: Some("team-a-key".into()),
            ..enabled()
        };
        let (out, _) = apply(value, &ctx);
        let app = &out["spec"]["containers"][0];
        assert_eq!(
            env(app)["OPENAI_API_KEY"],
            json!({"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "team-a-key", "key": "key"}}})
        );
        assert_eq!(
            out["spec"]["initContainers"][0]["env"],
            json!([{"name": "LLMESH_VIRTUAL_KEY", "value": "team-a"}])
        );
    }

    #[test]
    fn existing_init_containers_volumes_env_and_annotations_are_kept() {
        let value = json!({
            "metadata": {"name": "p", "annotations": {"a": "b"}},
            "spec": {
                "initContainers": [{"name": "migrate", "image": "m"}],
                "containers": [
                    {"name": "app", "image": "a", "env": [{"name": "X", "value": "1"}]},
                    {"name": "worker", "image": "w", "env": [{"name": "OPENAI_BASE_URL", "value": "http://mine"}]}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }
        });
        let ctx = Context {
            virtual_key_secret: Some("mine".into()),
            ..enabled()
        };
        let mut value_with_key = value;
        value_with_key["metadata"]["annotations"][VIRTUAL_KEY] = json!("k");
        let (out, warnings) = apply(value_with_key, &ctx);
        let init: Vec<&str> = out["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(init, [SIDECAR_NAME, "migrate"]);
        let volumes: Vec<&str> = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, ["data", VOLUME_NAME]);
        let app = env(&out["spec"]["containers"][0]);
        assert_eq!(app["X"]["value"], "1");
        assert_eq!(app["OPENAI_BASE_URL"]["value"], BASE_URL);
        assert!(app.contains_key("OPENAI_API_KEY"));
        // The worker's own base URL wins, with a warning saying so.
        let worker = env(&out["spec"]["containers"][1]);
        assert_eq!(worker["OPENAI_BASE_URL"]["value"], "http://mine");
        assert!(worker.contains_key("OPENAI_API_KEY"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("worker"));
        assert_eq!(out["metadata"]["annotations"]["a"], "b");
        assert_eq!(out["metadata"]["labels"][SIDECAR_LABEL], "injected");
        assert_eq!(out["metadata"]["annotations"][INJECTED], "true");
    }

    #[test]
    fn reinvocation_does_not_inject_twice_but_completes_added_containers() {
        let (once, _) = apply(app(), &enabled());
        let (p, _) = pod(once.clone());
        assert_eq!(
            inject(&p, &config(), &enabled()),
            Outcome::Skip(Skip::AlreadyInjected)
        );
        // Another webhook added a container after us: only it gets the env.
        let mut grown = once;
        grown["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "added", "image": "x"}));
        let (twice, _) = apply(grown, &enabled());
        assert_eq!(twice["spec"]["initContainers"].as_array().unwrap().len(), 1);
        assert_eq!(twice["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(env(&twice["spec"]["containers"][0]).len(), 1);
        assert_eq!(
            env(&twice["spec"]["containers"][1])["OPENAI_BASE_URL"]["value"],
            BASE_URL
        );
    }

    #[test]
    fn annotations_override_resources_and_bad_quantities_are_refused() {
        let mut value = app();
        value["metadata"]["annotations"] = json!({
            CPU_REQUEST: "200m", MEMORY_REQUEST: "128Mi", CPU_LIMIT: "1", MEMORY_LIMIT: "0.5Gi"
        });
        let (out, _) = apply(value, &enabled());
        assert_eq!(
            out["spec"]["initContainers"][0]["resources"],
            json!({"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "0.5Gi"}})
        );
        let mut value = app();
        value["metadata"]["annotations"] = json!({MEMORY_LIMIT: "lots"});
        let (p, _) = pod(value);
        match inject(&p, &config(), &enabled()) {
            Outcome::Deny(message) => {
                assert!(message.contains(MEMORY_LIMIT) && message.contains("lots"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn resources_of(annotations: Value) -> (Value, Vec<String>) {
        let mut value = app();
        value["metadata"]["annotations"] = annotations;
        let (out, warnings) = apply(value, &enabled());
        (
            out["spec"]["initContainers"][0]["resources"].clone(),
            warnings,
        )
    }

    fn refusal(annotations: Value) -> String {
        let mut value = app();
        value["metadata"]["annotations"] = annotations;
        let (p, _) = pod(value);
        match inject(&p, &config(), &enabled()) {
            Outcome::Deny(message) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Every request is at most its limit, compared exactly.
    fn assert_valid(resources: &Value) {
        for name in ["cpu", "memory"] {
            let (Some(r), Some(l)) = (
                resources["requests"][name].as_str(),
                resources["limits"][name].as_str(),
            ) else {
                continue;
            };
            assert!(
                Quantity::parse(r).unwrap() <= Quantity::parse(l).unwrap(),
                "{name}: request {r} > limit {l}"
            );
        }
    }

    #[test]
    fn a_request_above_the_default_limit_raises_the_limit_with_a_warning() {
        let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "1Gi"}));
        assert_eq!(
            resources,
            json!({"requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}})
        );
        assert_valid(&resources);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(MEMORY_REQUEST)
                && warnings[0].contains("256Mi")
                && warnings[0].contains("raised to 1Gi")
                && warnings[0].contains(MEMORY_LIMIT),
            "{warnings:?}"
        );
        // Equal is fine: no warning. 256Mi written as bytes compares exactly.
        let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "268435456"}));
        assert_eq!(resources["limits"]["memory"], "256Mi");
        assert!(warnings.is_empty(), "{warnings:?}");
        // One byte more is above.
        let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "268435457"}));
        assert_eq!(resources["limits"]["memory"], "268435457");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_limit_below_the_default_request_lowers_the_request_with_a_warning() {
        let (resources, warnings) = resources_of(json!({MEMORY_LIMIT: "32Mi"}));
        assert_eq!(
            resources,
            json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}})
        );
        assert_valid(&resources);
        assert!(
            warnings.len() == 1 && warnings[0].contains("lowered to 32Mi"),
            "{warnings:?}"
        );
        // The same for CPU, whose default has no limit: a limit alone never conflicts
        // with an unset default, but does with the default 50m request.
        let (resources, warnings) = resources_of(json!({CPU_LIMIT: "20m"}));
        assert_eq!(resources["requests"]["cpu"], "20m");
        assert_eq!(resources["limits"]["cpu"], "20m");
        assert_eq!(warnings.len(), 1);
        let (resources, warnings) = resources_of(json!({CPU_REQUEST: "2"}));
        assert_eq!(resources["requests"]["cpu"], "2");
        assert!(resources["limits"].get("cpu").is_none());
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_request_above_its_limit_both_annotated_is_refused_naming_both() {
        let message = refusal(json!({MEMORY_REQUEST: "1Gi", MEMORY_LIMIT: "512Mi"}));
        assert!(
            message.contains(MEMORY_REQUEST)
                && message.contains(MEMORY_LIMIT)
                && message.contains("1Gi")
                && message.contains("512Mi"),
            "{message}"
        );
        let message = refusal(json!({CPU_REQUEST: "1.5", CPU_LIMIT: "1"}));
        assert!(
            message.contains(CPU_REQUEST) && message.contains(CPU_LIMIT),
            "{message}"
        );
        // Exactly equal across suffixes is admitted.
        let (resources, warnings) = resources_of(json!({CPU_REQUEST: "1", CPU_LIMIT: "1000m"}));
        assert_valid(&resources);
        assert!(warnings.is_empty());
        let (resources, _) = resources_of(json!({MEMORY_REQUEST: "1Gi", MEMORY_LIMIT: "1024Mi"}));
        assert_valid(&resources);
    }

    #[test]
    fn negative_zero_and_absurd_values_are_refused() {
        for (key, value, why) in [
            (MEMORY_REQUEST, "-1Gi", "negative"),
            (CPU_REQUEST, "0", "zero"),
            (MEMORY_LIMIT, "0Mi", "zero"),
            (MEMORY_REQUEST, "64", "below the minimum memory of 1Mi"),
            (CPU_LIMIT, "100", "above the maximum CPU of 64"),
            (MEMORY_LIMIT, "1Ei", "above the maximum memory"),
            (CPU_REQUEST, "0.0001", "finer than 1m"),
            (MEMORY_REQUEST, "1e99999", "not a Kubernetes quantity"),
        ] {
            let message = refusal(json!({key: value}));
            assert!(
                message.contains(key) && message.contains(value) && message.contains(why),
                "{key}={value}: {message}"
            );
        }
    }

    #[test]
    fn any_accepted_annotations_make_a_valid_pod() {
        // Every pair of values for a request and a limit, alone or together, against the
        // defaults (CPU: 50m request, no limit; memory: 64Mi request, 256Mi limit).
        let cases = [
            (
                CPU_REQUEST,
                CPU_LIMIT,
                ["1m", "20m", "50m", "1", "1000m", "2", "64"],
            ),
            (
                MEMORY_REQUEST,
                MEMORY_LIMIT,
                ["1Mi", "32Mi", "64Mi", "256Mi", "268435456", "1G", "1Gi"],
            ),
        ];
        let (mut admitted, mut refused) = (0, 0);
        for (request, limit, values) in cases {
            let mut annotations = vec![];
            for a in values {
                annotations.push(json!({request: a}));
                annotations.push(json!({limit: a}));
                for b in values {
                    annotations.push(json!({request: a, limit: b}));
                }
            }
            for annotations in annotations {
                let mut value = app();
                value["metadata"]["annotations"] = annotations.clone();
                let (p, raw) = pod(value);
                match inject(&p, &config(), &enabled()) {
                    Outcome::Patch(patch, _) => {
                        let mut out = raw;
                        json_patch::patch(&mut out, &patch).unwrap();
                        assert_valid(&out["spec"]["initContainers"][0]["resources"]);
                        admitted += 1;
                    }
                    // Only an explicit request above an explicit limit is refused.
                    Outcome::Deny(message) => {
                        let r = Quantity::parse(annotations[request].as_str().unwrap());
                        let l = Quantity::parse(annotations[limit].as_str().unwrap());
                        assert!(r.unwrap() > l.unwrap(), "{annotations}: {message}");
                        refused += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        // 2 × (14 alone + 49 pairs); of the pairs, 20 per resource have request > limit.
        assert_eq!((admitted, refused), (86, 40));
    }

    #[test]
    fn reinvocation_repeats_no_resource_warning() {
        let mut value = app();
        value["metadata"]["annotations"] = json!({MEMORY_REQUEST: "1Gi"});
        let (once, warnings) = apply(value, &enabled());
        assert_eq!(warnings.len(), 1);
        let mut grown = once;
        grown["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "added", "image": "x"}));
        let (_, warnings) = apply(grown, &enabled());
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
