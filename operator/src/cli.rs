//! The command lines of `llmesh-operator` and `llmesh-local`: flags, the variables behind
//! them, and the variables read without a flag (the webhook's, which the chart sets).
//! One description per binary parses, prints `--help` and renders `docs/operations.md`'s
//! tables (see [`llmesh_sidecar::cli`]); the names are [`crate::settings`]'s constants,
//! and a test checks every `LLMESH_*` name the crate reads is listed here.

use llmesh_sidecar::cli::{Flag, SERVE_FLAGS, SERVE_VARS, Spec, Var};

use crate::settings::*;

/// `llmesh-operator`.
pub const OPERATOR: Spec = Spec {
    bin: "llmesh-operator",
    about: "the llmesh control plane: reconciles LLMModel, VirtualKey and Budget, pushes config to sidecars, takes their usage, injects them",
    usage: &[
        "[--push-listen ADDR] [--admin-listen ADDR] [--tls-cert FILE --tls-key FILE | --tls-names NAMES] [--ca-out FILE] [--log-format text|json]",
    ],
    flags: &[
        Flag {
            name: "push-listen",
            value: "ADDR",
            env: ENV_PUSH_LISTEN,
            default: "0.0.0.0:8443",
            help: "The HTTPS address sidecars stream config from and report usage to.",
        },
        Flag {
            name: "admin-listen",
            value: "ADDR",
            env: ENV_ADMIN_LISTEN,
            default: "0.0.0.0:8080",
            help: "The admin address: /metrics, /healthz, /readyz.",
        },
        Flag {
            name: "tls-cert",
            value: "FILE",
            env: ENV_TLS_CERT,
            default: "",
            help: "PEM certificate chain the push serves (with --tls-key; cert-manager mode). Unset: the webhook's self-managed certificate, else one kept in a Secret.",
        },
        Flag {
            name: "tls-key",
            value: "FILE",
            env: ENV_TLS_KEY,
            default: "",
            help: "PEM private key of --tls-cert.",
        },
        Flag {
            name: "tls-names",
            value: "NAMES",
            env: ENV_TLS_NAMES,
            default: "llmesh-operator, llmesh-operator.NS.svc, llmesh-operator.NS.svc.cluster.local, localhost",
            help: "Comma-separated DNS names of a certificate the operator makes itself.",
        },
        Flag {
            name: "ca-out",
            value: "FILE",
            env: ENV_CA_OUT,
            default: "",
            help: "Also write the CA sidecars must trust to this file.",
        },
        SERVE_FLAGS[3],
    ],
    vars: &[
        SERVE_VARS[0],
        Var {
            name: "KUBECONFIG",
            default: "",
            help: "A kubeconfig to use instead of the pod's in-cluster service account.",
        },
        Var {
            name: ENV_POD_NAME,
            default: "",
            help: "This replica's name, recorded as the writer of what it changes.",
        },
        Var {
            name: ENV_POD_NAMESPACE,
            default: "llmesh-system",
            help: "The operator's namespace: its Secrets live there and its pods are never injected.",
        },
        Var {
            name: ENV_ALLOW_UNBOUND_TOKENS,
            default: "false",
            help: "`true`: accept sidecar tokens bound to no pod (clusters older than Kubernetes 1.30), so any pod of a namespace can read its config. Otherwise only pods the webhook injected can.",
        },
        Var {
            name: ENV_WATCH_NAMESPACE,
            default: "",
            help: "Serve this one namespace only (unset: all); the only one given the CA ConfigMap.",
        },
        Var {
            name: ENV_WEBHOOK_LISTEN,
            default: "",
            help: "HTTPS address of the injection webhook; unset: no webhook.",
        },
        Var {
            name: ENV_SIDECAR_IMAGE,
            default: "",
            help: "The injected sidecar's image; required with the webhook.",
        },
        Var {
            name: ENV_SIDECAR_PULL_POLICY,
            default: "IfNotPresent",
            help: "The injected sidecar's imagePullPolicy.",
        },
        Var {
            name: ENV_SIDECAR_LOG_FORMAT,
            default: "json",
            help: "The injected sidecar's log format, text or json.",
        },
        Var {
            name: ENV_SIDECAR_CPU_REQUEST,
            default: "50m",
            help: "The injected sidecar's CPU request; empty: none; above the CPU limit stops the start. Pods override it with `llmesh.io/sidecar-cpu`.",
        },
        Var {
            name: ENV_SIDECAR_MEMORY_REQUEST,
            default: "64Mi",
            help: "The injected sidecar's memory request; empty: none; above the memory limit stops the start. Pods override it with `llmesh.io/sidecar-memory`.",
        },
        Var {
            name: ENV_SIDECAR_CPU_LIMIT,
            default: "",
            help: "The injected sidecar's CPU limit; empty: none. Pods override it with `llmesh.io/sidecar-cpu-limit`.",
        },
        Var {
            name: ENV_SIDECAR_MEMORY_LIMIT,
            default: "256Mi",
            help: "The injected sidecar's memory limit; empty: none. Pods override it with `llmesh.io/sidecar-memory-limit`.",
        },
        Var {
            name: ENV_SERVICE_NAME,
            default: "llmesh-operator",
            help: "The operator's Service: the injected sidecars' --operator host and the self-managed certificate's names.",
        },
        Var {
            name: ENV_PUSH_PORT,
            default: "8443",
            help: "The Service's push port, for the injected sidecars' --operator.",
        },
        Var {
            name: ENV_CA_CONFIGMAP,
            default: "llmesh-ca",
            help: "The ConfigMap (key `ca.crt`) published into every served namespace for the sidecars.",
        },
        Var {
            name: ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP,
            default: "",
            help: "A ConfigMap of PEM CA certificates every injected sidecar trusts for its upstreams (projected into its volume, passed as `--ca-file`); it must exist in each namespace with injected pods, or they wait for it.",
        },
        Var {
            name: ENV_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY,
            default: DEFAULT_UPSTREAM_CA_KEY,
            help: "The key of that ConfigMap holding the certificates.",
        },
        Var {
            name: ENV_SIDECAR_UPSTREAM_CA_SECRET,
            default: "",
            help: "As the ConfigMap above, from a Secret of each pod's namespace.",
        },
        Var {
            name: ENV_SIDECAR_UPSTREAM_CA_SECRET_KEY,
            default: DEFAULT_UPSTREAM_CA_KEY,
            help: "The key of that Secret holding the certificates.",
        },
        Var {
            name: ENV_SIDECAR_SYSTEM_ROOTS,
            default: "false",
            help: "`true`: every injected sidecar also trusts its system CA store (`--system-roots`).",
        },
        Var {
            name: ENV_SIDECAR_OTLP_ENDPOINT,
            default: "",
            help: "An OTLP/HTTP endpoint (e.g. `http://otel-collector.observability:4318`) every injected sidecar exports its OpenTelemetry GenAI spans to, as its `OTEL_EXPORTER_OTLP_ENDPOINT`; empty: no tracing.",
        },
        Var {
            name: ENV_SIDECAR_TRACES_SAMPLER,
            default: "",
            help: "Their `OTEL_TRACES_SAMPLER` (`parentbased_always_on` when empty, the SDK's default; `parentbased_traceidratio` with a ratio below keeps a share).",
        },
        Var {
            name: ENV_SIDECAR_TRACES_SAMPLER_ARG,
            default: "",
            help: "Their `OTEL_TRACES_SAMPLER_ARG`: the ratio (0 to 1) of the ratio samplers.",
        },
        Var {
            name: ENV_TLS_DIR,
            default: "",
            help: "cert-manager mode: the directory with `tls.crt`, `tls.key` and `ca.crt`; unset: self-managed certificates.",
        },
        Var {
            name: ENV_CERT_SECRET,
            default: "llmesh-operator-tls",
            help: "Self-managed mode: the Secret holding the CA and serving pair.",
        },
        Var {
            name: ENV_CERT_DIR,
            default: "/tmp/llmesh-tls",
            help: "Self-managed mode: where the serving pair is written for the push server.",
        },
        Var {
            name: ENV_WEBHOOK_CONFIG,
            default: "llmesh-sidecar-injector",
            help: "Self-managed mode: the MutatingWebhookConfiguration whose caBundle is kept current.",
        },
    ],
};

/// `llmesh-local`.
pub const LOCAL: Spec = Spec {
    bin: "llmesh-local",
    about: "a sidecar on this machine, configured from a directory of the Kubernetes manifests you would apply",
    usage: &["--manifests DIR [flags]"],
    flags: &[
        Flag {
            name: "manifests",
            value: "DIR",
            env: ENV_MANIFESTS,
            default: "",
            help: "The directory of LLMModel, VirtualKey, Budget, Secret and ConfigMap manifests (YAML); polled, edits apply live. Required.",
        },
        SERVE_FLAGS[0],
        SERVE_FLAGS[1],
        SERVE_FLAGS[2],
        SERVE_FLAGS[3],
        SERVE_FLAGS[4],
        SERVE_FLAGS[5],
        SERVE_FLAGS[6],
        SERVE_FLAGS[7],
        SERVE_FLAGS[8],
        SERVE_FLAGS[9],
    ],
    vars: &[SERVE_VARS[0]],
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `"LLMESH_*"` or `"POD_*"` string literal in the operator's and the
    /// sidecar's code (outside tests) is a variable some binary reads or sets: each must be in a spec, so in
    /// `--help` and the docs.
    #[test]
    fn every_variable_the_code_names_is_described() {
        let mut known: Vec<&str> = OPERATOR.env_names().chain(LOCAL.env_names()).collect();
        known.extend(llmesh_sidecar::cli::SIDECAR.env_names());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut missing = Vec::new();
        // The operator's code and the sidecar's, which both binaries here run.
        let mut stack = vec![root.join("src"), root.join("../sidecar/src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // What the binaries read, not what tests set.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                for prefix in ["\"LLMESH_", "\"POD_"] {
                    for (at, _) in text.match_indices(prefix) {
                        let name: String = text[at + 1..]
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                            .collect();
                        // A prefix alone (like the ones above) names nothing.
                        let closed = text[at + 1 + name.len()..].starts_with('"');
                        if closed && !name.ends_with('_') && !known.contains(&name.as_str()) {
                            missing.push(format!("{}: {name}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "variables not in any cli::Spec: {missing:#?}"
        );
    }

    /// `docs/operations.md` carries each binary's tables exactly as [`Spec::markdown`]
    /// renders them, between `<!-- cli:BIN -->` and `<!-- /cli -->`.
    /// `LLMESH_BLESS=1` rewrites the page instead of failing.
    #[test]
    fn the_operations_guide_lists_every_flag_and_variable() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
        let mut page = std::fs::read_to_string(&path).unwrap();
        let mut stale = Vec::new();
        for spec in [&llmesh_sidecar::cli::SIDECAR, &OPERATOR, &LOCAL] {
            let open = format!("<!-- cli:{} -->\n", spec.bin);
            let close = "<!-- /cli -->";
            let start = page
                .find(&open)
                .unwrap_or_else(|| panic!("docs/operations.md has no {open:?}"))
                + open.len();
            let end = start + page[start..].find(close).unwrap();
            let want = spec.markdown();
            if page[start..end] != want {
                stale.push(spec.bin);
                page.replace_range(start..end, &want);
            }
        }
        if std::env::var("LLMESH_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, page).unwrap();
            return;
        }
        assert!(
            stale.is_empty(),
            "docs/operations.md is out of date for {stale:?}; rerun with LLMESH_BLESS=1"
        );
    }
}
