//! The operator's settings from the environment: every variable it reads, by name, in
//! one place. Their defaults and meanings are described once, in [`crate::cli`] (which
//! uses these names), for `--help` and `docs/operations.md`; the flags' variables are
//! read by [`llmesh_sidecar::cli`] from those descriptions.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::webhook::inject::{Config, Resources, SidecarTracing, UpstreamCa};
use crate::webhook::quantity::{Quantity, Resource};

/// `--push-listen`.
pub const ENV_PUSH_LISTEN: &str = "LLMESH_PUSH_LISTEN";
/// `--admin-listen`.
pub const ENV_ADMIN_LISTEN: &str = "LLMESH_ADMIN_LISTEN";
/// `--tls-cert`.
pub const ENV_TLS_CERT: &str = "LLMESH_TLS_CERT";
/// `--tls-key`.
pub const ENV_TLS_KEY: &str = "LLMESH_TLS_KEY";
/// `--tls-names`.
pub const ENV_TLS_NAMES: &str = "LLMESH_TLS_NAMES";
/// `--ca-out`.
pub const ENV_CA_OUT: &str = "LLMESH_CA_OUT";
/// `llmesh-local --manifests`.
pub const ENV_MANIFESTS: &str = "LLMESH_MANIFESTS";
/// This replica's pod name (the downward API).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// The operator's namespace (the downward API).
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Accept sidecar tokens bound to no pod.
pub const ENV_ALLOW_UNBOUND_TOKENS: &str = "LLMESH_ALLOW_UNBOUND_TOKENS";
/// Serve one namespace only.
pub const ENV_WATCH_NAMESPACE: &str = "LLMESH_WATCH_NAMESPACE";
/// The webhook's address; unset, no webhook.
pub const ENV_WEBHOOK_LISTEN: &str = "LLMESH_WEBHOOK_LISTEN";
/// The injected sidecar's image.
pub const ENV_SIDECAR_IMAGE: &str = "LLMESH_SIDECAR_IMAGE";
/// The injected sidecar's imagePullPolicy.
pub const ENV_SIDECAR_PULL_POLICY: &str = "LLMESH_SIDECAR_PULL_POLICY";
/// The injected sidecar's log format.
pub const ENV_SIDECAR_LOG_FORMAT: &str = "LLMESH_SIDECAR_LOG_FORMAT";
/// The injected sidecar's CPU request.
pub const ENV_SIDECAR_CPU_REQUEST: &str = "LLMESH_SIDECAR_CPU_REQUEST";
/// The injected sidecar's memory request.
pub const ENV_SIDECAR_MEMORY_REQUEST: &str = "LLMESH_SIDECAR_MEMORY_REQUEST";
/// The injected sidecar's CPU limit.
pub const ENV_SIDECAR_CPU_LIMIT: &str = "LLMESH_SIDECAR_CPU_LIMIT";
/// The injected sidecar's memory limit.
pub const ENV_SIDECAR_MEMORY_LIMIT: &str = "LLMESH_SIDECAR_MEMORY_LIMIT";
/// The operator's Service.
pub const ENV_SERVICE_NAME: &str = "LLMESH_SERVICE_NAME";
/// The Service's push port.
pub const ENV_PUSH_PORT: &str = "LLMESH_PUSH_PORT";
/// The CA ConfigMap published into served namespaces.
pub const ENV_CA_CONFIGMAP: &str = "LLMESH_CA_CONFIGMAP";
/// cert-manager mode's certificate directory.
pub const ENV_TLS_DIR: &str = "LLMESH_TLS_DIR";
/// Self-managed mode's certificate Secret.
pub const ENV_CERT_SECRET: &str = "LLMESH_CERT_SECRET";
/// Self-managed mode's directory for the serving pair.
pub const ENV_CERT_DIR: &str = "LLMESH_CERT_DIR";
/// Self-managed mode's MutatingWebhookConfiguration.
pub const ENV_WEBHOOK_CONFIG: &str = "LLMESH_WEBHOOK_CONFIG";
/// Not read here: the variable the webhook sets on injected sidecars for their key
/// (described with the sidecar's flags, [`llmesh_sidecar::cli::SIDECAR`]).
pub const ENV_SIDECAR_VIRTUAL_KEY: &str = "LLMESH_VIRTUAL_KEY";
/// The injected sidecar's runtime threads (`llmesh.io/sidecar-worker-threads`).
pub const ENV_SIDECAR_WORKER_THREADS: &str = "LLMESH_WORKER_THREADS";
/// A ConfigMap (in each pod's namespace) of CA certificates injected sidecars trust for
/// their upstreams.
pub const ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP: &str = "LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP";
/// Its key.
pub const ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY: &str = "LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY";
/// A Secret (in each pod's namespace) of CA certificates injected sidecars trust for
/// their upstreams.
pub const ENV_SIDECAR_UPSTREAM_CA_SECRET: &str = "LLMESH_SIDECAR_UPSTREAM_CA_SECRET";
/// Its key.
pub const ENV_SIDECAR_UPSTREAM_CA_SECRET_KEY: &str = "LLMESH_SIDECAR_UPSTREAM_CA_SECRET_KEY";
/// Injected sidecars also trust their system CA store.
pub const ENV_SIDECAR_SYSTEM_ROOTS: &str = "LLMESH_SIDECAR_SYSTEM_ROOTS";
/// The OTLP/HTTP endpoint injected sidecars export their traces to (their
/// `OTEL_EXPORTER_OTLP_ENDPOINT`); unset: no tracing.
pub const ENV_SIDECAR_OTLP_ENDPOINT: &str = "LLMESH_SIDECAR_OTLP_ENDPOINT";
/// Their trace sampler (`OTEL_TRACES_SAMPLER`).
pub const ENV_SIDECAR_TRACES_SAMPLER: &str = "LLMESH_SIDECAR_TRACES_SAMPLER";
/// Its argument (`OTEL_TRACES_SAMPLER_ARG`), a ratio for the ratio samplers.
pub const ENV_SIDECAR_TRACES_SAMPLER_ARG: &str = "LLMESH_SIDECAR_TRACES_SAMPLER_ARG";
/// The samplers the OpenTelemetry SDK's `OTEL_TRACES_SAMPLER` takes.
const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];
/// The key of an upstream CA ConfigMap or Secret when its variable is unset.
pub const DEFAULT_UPSTREAM_CA_KEY: &str = "ca.crt";

/// The operator's namespace when [`ENV_POD_NAMESPACE`] is unset.
pub const DEFAULT_NAMESPACE: &str = "llmesh-system";
/// The certificate Secret when [`ENV_CERT_SECRET`] is unset: the push server's CA is
/// kept there with the webhook off too, so turning the webhook on or off keeps the CA.
pub const DEFAULT_CERT_SECRET: &str = "llmesh-operator-tls";

/// What the operator process reads besides its flags and the webhook's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// [`ENV_POD_NAME`]: this replica, for Events.
    pub pod_name: Option<String>,
    /// [`ENV_POD_NAMESPACE`]: the operator's namespace.
    pub pod_namespace: String,
    /// [`ENV_WATCH_NAMESPACE`]: the one namespace served; all when unset.
    pub watch_namespace: Option<String>,
    /// [`ENV_ALLOW_UNBOUND_TOKENS`] is `true`.
    pub allow_unbound_tokens: bool,
    /// [`ENV_CERT_SECRET`]: where the push server's CA is kept.
    pub cert_secret: String,
}

impl Process {
    /// Reads the process's settings from the environment.
    pub fn from_env() -> Process {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Process::from_env`], from any lookup (tests).
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Process {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        Process {
            pod_name: get(ENV_POD_NAME),
            pod_namespace: get(ENV_POD_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            watch_namespace: get(ENV_WATCH_NAMESPACE),
            allow_unbound_tokens: get(ENV_ALLOW_UNBOUND_TOKENS).is_some_and(|v| v == "true"),
            cert_secret: get(ENV_CERT_SECRET).unwrap_or_else(|| DEFAULT_CERT_SECRET.into()),
        }
    }
}

/// Where the certificates come from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// cert-manager (or any tool) mounts `tls.crt`, `tls.key` and `ca.crt` here, and
    /// injects the caBundle itself.
    Dir(PathBuf),
    /// The operator keeps them in this Secret and writes the pair into `dir` for the
    /// push server.
    Secret {
        /// Secret name in the operator's namespace.
        name: String,
        /// Where the serving pair is written.
        dir: PathBuf,
        /// The MutatingWebhookConfiguration to keep the caBundle of.
        webhook_config: String,
    },
}

/// The injection webhook's settings.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// What injected pods get.
    pub inject: Config,
    /// Certificates.
    pub certs: CertSource,
    /// The Service's DNS names (for the self-managed certificate).
    pub names: Vec<String>,
    /// [`ENV_WATCH_NAMESPACE`]: the one namespace the operator serves, so the only one
    /// whose pods can use a sidecar and get the CA ConfigMap.
    pub watch_namespace: Option<String>,
}

impl Webhook {
    /// Reads the settings from the environment; `Ok(None)` when the webhook is off.
    pub fn from_env() -> Result<Option<Webhook>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Webhook::from_env`], from any lookup (tests).
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Option<Webhook>, String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let Some(listen) = get(ENV_WEBHOOK_LISTEN) else {
            return Ok(None);
        };
        let listen = listen
            .parse()
            .map_err(|_| format!("{ENV_WEBHOOK_LISTEN}: {listen:?} is not an address"))?;
        let image = get(ENV_SIDECAR_IMAGE)
            .ok_or_else(|| format!("{ENV_SIDECAR_IMAGE} is required with {ENV_WEBHOOK_LISTEN}"))?;
        let namespace = get(ENV_POD_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let service = get(ENV_SERVICE_NAME).unwrap_or_else(|| "llmesh-operator".into());
        let port: u16 = get(ENV_PUSH_PORT)
            .unwrap_or_else(|| "8443".into())
            .parse()
            .map_err(|_| format!("{ENV_PUSH_PORT}: not a port"))?;
        // Unset means the default; set but empty means no value at all.
        let resource = |k: &str, kind: Resource, default: Option<&str>| match env(k) {
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => match kind.check(v.trim()) {
                Ok(_) => Ok(Some(v.trim().to_owned())),
                Err(e) => Err(format!("{k}: {v:?} {e}")),
            },
            None => Ok(default.map(str::to_owned)),
        };
        let log_format = get(ENV_SIDECAR_LOG_FORMAT).unwrap_or_else(|| "json".into());
        if log_format != "json" && log_format != "text" {
            return Err(format!(
                "{ENV_SIDECAR_LOG_FORMAT}: {log_format:?} is not text or json"
            ));
        }
        let pull_policy = get(ENV_SIDECAR_PULL_POLICY).unwrap_or_else(|| "IfNotPresent".into());
        if !["Always", "IfNotPresent", "Never"].contains(&pull_policy.as_str()) {
            return Err(format!(
                "{ENV_SIDECAR_PULL_POLICY}: {pull_policy:?} is not Always, IfNotPresent or Never"
            ));
        }
        let inject = Config {
            image,
            pull_policy,
            operator_url: format!("https://{service}.{namespace}.svc:{port}"),
            ca_config_map: get(ENV_CA_CONFIGMAP).unwrap_or_else(|| "llmesh-ca".into()),
            operator_namespace: namespace.clone(),
            resources: Resources {
                cpu_request: resource(ENV_SIDECAR_CPU_REQUEST, Resource::Cpu, Some("50m"))?,
                memory_request: resource(
                    ENV_SIDECAR_MEMORY_REQUEST,
                    Resource::Memory,
                    Some("64Mi"),
                )?,
                cpu_limit: resource(ENV_SIDECAR_CPU_LIMIT, Resource::Cpu, None)?,
                memory_limit: resource(ENV_SIDECAR_MEMORY_LIMIT, Resource::Memory, Some("256Mi"))?,
            },
            log_format,
            upstream_ca: upstream_ca(&get)?,
            tracing: sidecar_tracing(&get)?,
        };
        // Every injected pod starts from these: a default request above its default
        // limit would make every pod without annotations invalid, so it stops the start.
        let r = &inject.resources;
        for (request, limit, request_var, limit_var) in [
            (
                &r.cpu_request,
                &r.cpu_limit,
                ENV_SIDECAR_CPU_REQUEST,
                ENV_SIDECAR_CPU_LIMIT,
            ),
            (
                &r.memory_request,
                &r.memory_limit,
                ENV_SIDECAR_MEMORY_REQUEST,
                ENV_SIDECAR_MEMORY_LIMIT,
            ),
        ] {
            let (Some(request), Some(limit)) = (request, limit) else {
                continue;
            };
            let above = Quantity::parse(request)
                .ok()
                .zip(Quantity::parse(limit).ok())
                .is_some_and(|(request, limit)| request > limit);
            if above {
                return Err(format!(
                    "{request_var} ({request}) is above {limit_var} ({limit}): a request \
                     cannot exceed its limit (an unset variable means its default)"
                ));
            }
        }
        let certs = match get(ENV_TLS_DIR) {
            Some(dir) => CertSource::Dir(dir.into()),
            None => CertSource::Secret {
                name: get(ENV_CERT_SECRET).unwrap_or_else(|| DEFAULT_CERT_SECRET.into()),
                dir: get(ENV_CERT_DIR)
                    .unwrap_or_else(|| "/tmp/llmesh-tls".into())
                    .into(),
                webhook_config: get(ENV_WEBHOOK_CONFIG)
                    .unwrap_or_else(|| "llmesh-sidecar-injector".into()),
            },
        };
        let names = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            service,
            "localhost".to_owned(),
        ];
        Ok(Some(Webhook {
            listen,
            inject,
            certs,
            names,
            watch_namespace: get(ENV_WATCH_NAMESPACE),
        }))
    }
}

/// The upstream CAs of every injected sidecar, their names and keys checked so a typo
/// stops the operator rather than every pod it injects.
fn upstream_ca(get: &dyn Fn(&str) -> Option<String>) -> Result<UpstreamCa, String> {
    let reference = |name_var: &str, key_var: &str| -> Result<Option<(String, String)>, String> {
        let Some(name) = get(name_var) else {
            return Ok(None);
        };
        let name = name.trim().to_owned();
        if !is_dns_subdomain(&name) {
            return Err(format!(
                "{name_var}: {name:?} is not a Kubernetes object name (a DNS subdomain)"
            ));
        }
        let key = get(key_var).map_or_else(
            || DEFAULT_UPSTREAM_CA_KEY.to_owned(),
            |k| k.trim().to_owned(),
        );
        let key_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if key.len() > 253 || !key.chars().all(key_chars) {
            return Err(format!(
                "{key_var}: {key:?} is not a ConfigMap or Secret key (letters, digits, '-', '_', '.')"
            ));
        }
        Ok(Some((name, key)))
    };
    let system_roots = match get(ENV_SIDECAR_SYSTEM_ROOTS).as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(format!(
                "{ENV_SIDECAR_SYSTEM_ROOTS}: {other:?} is not true or false"
            ));
        }
    };
    Ok(UpstreamCa {
        config_map: reference(
            ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP,
            ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY,
        )?,
        secret: reference(
            ENV_SIDECAR_UPSTREAM_CA_SECRET,
            ENV_SIDECAR_UPSTREAM_CA_SECRET_KEY,
        )?,
        system_roots,
    })
}

/// Where injected sidecars send traces, checked here: a typo would otherwise surface as
/// a warning in every sidecar's log and no traces.
fn sidecar_tracing(get: &dyn Fn(&str) -> Option<String>) -> Result<SidecarTracing, String> {
    let set = |name: &str| {
        get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let endpoint = set(ENV_SIDECAR_OTLP_ENDPOINT);
    if let Some(endpoint) = &endpoint {
        let uri: Option<http::Uri> = endpoint.parse().ok();
        let usable = uri.is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !usable {
            return Err(format!(
                "{ENV_SIDECAR_OTLP_ENDPOINT}: {endpoint:?} is not an http(s) URL such as http://otel-collector.observability:4318"
            ));
        }
    }
    let sampler = set(ENV_SIDECAR_TRACES_SAMPLER);
    if let Some(sampler) = &sampler
        && !SAMPLERS.contains(&sampler.as_str())
    {
        return Err(format!(
            "{ENV_SIDECAR_TRACES_SAMPLER}: {sampler:?} is not one of {}",
            SAMPLERS.join(", ")
        ));
    }
    let sampler_arg = set(ENV_SIDECAR_TRACES_SAMPLER_ARG);
    if let Some(arg) = &sampler_arg
        && !arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
    {
        return Err(format!(
            "{ENV_SIDECAR_TRACES_SAMPLER_ARG}: {arg:?} is not a ratio from 0 to 1"
        ));
    }
    Ok(SidecarTracing {
        endpoint,
        sampler,
        sampler_arg,
    })
}

/// A DNS subdomain (RFC 1123), as Kubernetes names most objects.
fn is_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
