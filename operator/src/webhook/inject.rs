//! Sidecar injection as a pure function: an admission request for a Pod in, a JSONPatch
//! (or a reason to leave the pod alone, or a refusal) out. No I/O: the server in
//! [`super`] looks up what this needs (the namespace's label, the VirtualKey's Secret)
//! and passes it in, so every rule is tested on plain values.
//!
//! The patch only ever *adds*: the sidecar as a native sidecar (the first init container,
//! `restartPolicy: Always`, so it starts before the app and does not keep a Job from
//! completing), one projected volume (the service-account token for audience `llmesh`,
//! the operator's CA and, when the chart names them, the upstreams' CAs), and the base URLs of the OpenAI and Anthropic SDKs
//! (`OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL`, plus `OPENAI_API_KEY` and
//! `ANTHROPIC_API_KEY` from a VirtualKey's Secret) in the app containers, so OpenAI
//! clients, Anthropic clients and Claude Code reach the sidecar unchanged. Each piece is
//! added only where it is missing, so a re-invocation (another webhook added a container
//! after us) completes the pod instead of injecting twice.

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
/// Pod annotation naming the VirtualKey whose key the app gets as `OPENAI_API_KEY` and
/// `ANTHROPIC_API_KEY`.
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
/// The sidecar's runtime threads: a number from 0 (one per CPU it may use) to 256.
pub const WORKER_THREADS: &str = "llmesh.io/sidecar-worker-threads";
/// Pod volumes also mounted (read-only) into the sidecar, `volume:/path` separated by
/// commas: for what a cloud identity needs there that no cloud webhook mounts, such as
/// the projected token of Google workload identity federation outside GKE.
pub const SIDECAR_MOUNTS: &str = "llmesh.io/sidecar-volume-mounts";
/// At most this many [`SIDECAR_MOUNTS`].
const MAX_SIDECAR_MOUNTS: usize = 8;

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
/// What the app containers get as `ANTHROPIC_BASE_URL`: no `/v1`, which the Anthropic
/// SDKs and Claude Code add themselves (`/v1/messages`).
pub const ANTHROPIC_BASE_URL: &str = "http://127.0.0.1:4000";
/// Variables whose presence in a container keeps the webhook from adding another, by
/// the variable added: a container that authenticates Claude Code with
/// `ANTHROPIC_AUTH_TOKEN` (a bearer token) gets no `ANTHROPIC_API_KEY` beside it, which
/// Claude Code reports as an auth conflict.
const SET_INSTEAD: &[(&str, &str)] = &[("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")];
/// The sidecar's environment variable naming the pod's VirtualKey.
pub const SIDECAR_KEY_ENV: &str = crate::settings::ENV_SIDECAR_VIRTUAL_KEY;
/// The sidecar's variable for [`WORKER_THREADS`].
pub const SIDECAR_THREADS_ENV: &str = crate::settings::ENV_SIDECAR_WORKER_THREADS;
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
    /// What every injected sidecar trusts for its upstreams besides the web roots.
    pub upstream_ca: UpstreamCa,
    /// Where injected sidecars send their traces.
    pub tracing: SidecarTracing,
}

/// OpenTelemetry tracing for every injected sidecar: the standard `OTEL_*` variables
/// it reads, and the pod's name and namespace for the spans' resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidecarTracing {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none: tracing off.
    pub endpoint: Option<String>,
    /// `OTEL_TRACES_SAMPLER`.
    pub sampler: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler_arg: Option<String>,
}

impl SidecarTracing {
    /// The sidecar container's variables (none with tracing off).
    fn env(&self) -> Vec<Value> {
        let Some(endpoint) = &self.endpoint else {
            return Vec::new();
        };
        let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
        let mut env = vec![
            json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint}),
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
        ];
        if let Some(sampler) = &self.sampler {
            env.push(json!({"name": "OTEL_TRACES_SAMPLER", "value": sampler}));
        }
        if let Some(arg) = &self.sampler_arg {
            env.push(json!({"name": "OTEL_TRACES_SAMPLER_ARG", "value": arg}));
        }
        env
    }
}

/// CA certificates for every injected sidecar's upstreams: keys of a ConfigMap and a
/// Secret of the pod's namespace, projected into the sidecar's volume and named by
/// `--ca-file`, and the system store (`--system-roots`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCa {
    /// ConfigMap name and key.
    pub config_map: Option<(String, String)>,
    /// Secret name and key.
    pub secret: Option<(String, String)>,
    /// Also the system store.
    pub system_roots: bool,
}

impl UpstreamCa {
    /// The files the CAs are projected to, under [`MOUNT_PATH`], with the source each
    /// comes from.
    fn files(&self) -> Vec<(String, Value)> {
        let mut files = Vec::new();
        if let Some((name, key)) = &self.config_map {
            files.push((
                UPSTREAM_CA_CONFIGMAP_FILE.to_owned(),
                json!({"configMap": {
                    "name": name,
                    "items": [{"key": key, "path": UPSTREAM_CA_CONFIGMAP_FILE}],
                }}),
            ));
        }
        if let Some((name, key)) = &self.secret {
            files.push((
                UPSTREAM_CA_SECRET_FILE.to_owned(),
                json!({"secret": {
                    "name": name,
                    "items": [{"key": key, "path": UPSTREAM_CA_SECRET_FILE}],
                }}),
            ));
        }
        files
    }
}

/// Where [`UpstreamCa::config_map`] is projected, relative to [`MOUNT_PATH`].
pub const UPSTREAM_CA_CONFIGMAP_FILE: &str = "upstream-ca/configmap.crt";
/// Where [`UpstreamCa::secret`] is projected, relative to [`MOUNT_PATH`].
pub const UPSTREAM_CA_SECRET_FILE: &str = "upstream-ca/secret.crt";

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
    let threads = match worker_threads(pod) {
        Ok(threads) => threads,
        Err(e) => return Outcome::Deny(e),
    };
    let mounts = match sidecar_mounts(pod) {
        Ok(mounts) => mounts,
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
        let sidecar = sidecar(config, key, threads, &resources, mounts);
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
        let key_var = |name: &str, secret: &str| {
            json!({
                "name": name,
                "valueFrom": {"secretKeyRef": {
                    "name": secret,
                    "key": llmesh_crds::virtual_key::SECRET_KEY_FIELD,
                }}
            })
        };
        let mut vars = vec![json!({"name": "OPENAI_BASE_URL", "value": BASE_URL})];
        if let Some(secret) = &ctx.virtual_key_secret {
            vars.push(key_var("OPENAI_API_KEY", secret));
        }
        vars.push(json!({"name": "ANTHROPIC_BASE_URL", "value": ANTHROPIC_BASE_URL}));
        if let Some(secret) = &ctx.virtual_key_secret {
            vars.push(key_var("ANTHROPIC_API_KEY", secret));
        }
        let env = container.env.as_deref().unwrap_or_default();
        // A variable the container sets itself wins (or one it sets instead): the user
        // chose it.
        vars.retain(|v| {
            let name = v["name"].as_str().unwrap_or_default();
            let instead = SET_INSTEAD
                .iter()
                .filter(|(added, _)| *added == name)
                .map(|(_, set)| *set);
            let Some(set) = std::iter::once(name)
                .chain(instead)
                .find(|set| env.iter().any(|e| e.name == *set))
            else {
                return true;
            };
            if !injected {
                let what = if set == name {
                    "left as it is".to_owned()
                } else {
                    format!("{name} not added")
                };
                warnings.push(format!(
                    "llmesh: container {:?} sets {set} itself; {what}",
                    container.name
                ));
            }
            false
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

/// The pod's [`WORKER_THREADS`], checked here so a typo refuses the pod rather than
/// leaving its sidecar unable to start.
fn worker_threads(pod: &Pod) -> Result<Option<u16>, String> {
    let Some(value) = annotation(pod, WORKER_THREADS) else {
        return Ok(None);
    };
    match value.trim().parse::<u16>() {
        Ok(n) if n <= 256 => Ok(Some(n)),
        _ => Err(format!(
            "llmesh: annotation {WORKER_THREADS}: {value:?} is not a number from 0 to 256"
        )),
    }
}

/// The pod's [`SIDECAR_MOUNTS`] as read-only volume mounts, checked here so a typo
/// refuses the pod (naming the annotation) rather than leaving the sidecar without its
/// file: each names a volume of the pod and an absolute path that neither hides nor sits
/// in the sidecar's own mount.
fn sidecar_mounts(pod: &Pod) -> Result<Vec<Value>, String> {
    let Some(value) = annotation(pod, SIDECAR_MOUNTS) else {
        return Ok(Vec::new());
    };
    let refuse = |why: String| Err(format!("llmesh: annotation {SIDECAR_MOUNTS}: {why}"));
    let volumes: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let mut mounts = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, path)) = item.split_once(':') else {
            return refuse(format!("{item:?} is not volume:/path"));
        };
        let (name, path) = (name.trim(), path.trim().trim_end_matches('/'));
        if !volumes.contains(&name) {
            return refuse(format!("the pod has no volume {name:?}"));
        }
        let inside =
            |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
        if !path.starts_with('/')
            || path.split('/').any(|s| s == "..")
            || path.contains(|c: char| c.is_control())
        {
            return refuse(format!("{path:?} is not an absolute path"));
        }
        if inside(MOUNT_PATH, path) || inside(path, MOUNT_PATH) {
            return refuse(format!(
                "{path:?} would meet the sidecar's own {MOUNT_PATH}"
            ));
        }
        if paths.iter().any(|p| inside(p, path) || inside(path, p)) {
            return refuse(format!("{path:?} is mounted twice"));
        }
        paths.push(path);
        mounts.push(json!({"name": name, "mountPath": path, "readOnly": true}));
    }
    if mounts.len() > MAX_SIDECAR_MOUNTS {
        return refuse(format!("at most {MAX_SIDECAR_MOUNTS} mounts"));
    }
    Ok(mounts)
}

fn sidecar(
    config: &Config,
    key: Option<&str>,
    threads: Option<u16>,
    resources: &Resources,
    mounts: Vec<Value>,
) -> Value {
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
    if let Some(threads) = threads {
        env.push(json!({"name": SIDECAR_THREADS_ENV, "value": threads.to_string()}));
    }
    env.extend(config.tracing.env());
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": ADMIN_PORT},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 1,
        })
    };
    let mut args = vec![
        "--operator".to_owned(),
        config.operator_url.clone(),
        "--operator-ca".to_owned(),
        format!("{MOUNT_PATH}/ca.crt"),
        "--token-file".to_owned(),
        format!("{MOUNT_PATH}/token"),
        "--listen".to_owned(),
        format!("127.0.0.1:{API_PORT}"),
        "--admin-listen".to_owned(),
        format!("0.0.0.0:{ADMIN_PORT}"),
        "--log-format".to_owned(),
        config.log_format.clone(),
    ];
    let ca_files: Vec<String> = config
        .upstream_ca
        .files()
        .into_iter()
        .map(|(path, _)| format!("{MOUNT_PATH}/{path}"))
        .collect();
    if !ca_files.is_empty() {
        args.extend(["--ca-file".to_owned(), ca_files.join(",")]);
    }
    if config.upstream_ca.system_roots {
        args.extend(["--system-roots".to_owned(), "true".to_owned()]);
    }
    json!({
        "name": SIDECAR_NAME,
        "image": config.image,
        "imagePullPolicy": config.pull_policy,
        // A native sidecar: started before the app containers, stopped after them, and
        // not waited for by a Job.
        "restartPolicy": "Always",
        "args": args,
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
        "volumeMounts": std::iter::once(
            json!({"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": true}),
        )
        .chain(mounts)
        .collect::<Vec<_>>(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    })
}

fn volume(config: &Config) -> Value {
    let mut sources = vec![
        json!({"serviceAccountToken": {
            "audience": llmesh_sidecar::config::push::AUDIENCE,
            "expirationSeconds": TOKEN_SECONDS,
            "path": "token",
        }}),
        json!({"configMap": {
            "name": config.ca_config_map,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }}),
    ];
    // A missing upstream CA object keeps the pod from starting (the kubelet says which),
    // rather than starting a sidecar that cannot reach its upstreams.
    sources.extend(
        config
            .upstream_ca
            .files()
            .into_iter()
            .map(|(_, source)| source),
    );
    json!({
        "name": VOLUME_NAME,
        "projected": {
            "defaultMode": 0o444,
            "sources": sources,
        },
    })
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
