#!/usr/bin/env python3
"""Lints, renders and validates the llmesh Helm chart (charts/llmesh).

Run by tests/tests/chart.rs (and usable alone):

    python tests/chart/check_chart.py [--namespace NS] [--out DIR]

For each scenario (default values and several non-default sets) it lints the chart with
Helm's own linter (strict, for Kubernetes 1.33), renders it as `helm install --dry-run`
would, validates every object against Kubernetes 1.33's schemas (kubernetes-validate,
strict: unknown fields are errors), and checks what the chart promises: two operator
replicas with anti-affinity and a PDB, hardened pods, least-privilege RBAC with a comment
on every rule, the webhook's selectors and failure policy, alert expressions that use
metrics the code really exports. With --out it writes each scenario's objects (and the
CRDs) as JSON for the Rust test to apply to the test API server.

Exits non-zero with a list of failures; prints one line per check.

With --render-only JSON it only renders every scenario, with the JSON values merged into
each, into --out (for the test that runs the rendered pods as processes).
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "llmesh"
KUBE = "1.33.0"

try:
    import helm_python
    import kubernetes_validate
    import yaml
except ImportError as e:  # the Rust test turns this exit code into a skip or a failure
    print(f"missing Python package: {e.name} (pip install -r tests/chart/requirements.txt)")
    sys.exit(3)

FAILURES: list[str] = []
PASSED = 0


def check(ok: bool, what: str) -> None:
    global PASSED
    if ok:
        PASSED += 1
        print(f"ok   {what}")
    else:
        FAILURES.append(what)
        print(f"FAIL {what}")


SCENARIOS: dict[str, dict] = {
    "default": {},
    "full": {
        "fullnameOverride": "gw",
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"sidecar": {"repository": "registry.example/llmesh-sidecar", "tag": "1.2.3"}},
        "operator": {"replicas": 3, "watchNamespace": "team-a", "logFormat": "text",
                     "nodeSelector": {"kubernetes.io/os": "linux"}},
        "webhook": {"failurePolicy": "Ignore", "annotationOptIn": True,
                    "certs": {"mode": "certManager"}},
        "sidecar": {"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "tls": {"caConfigMap": {"name": "internal-ca", "key": "bundle.pem"}},
                    "tracing": {"otlpEndpoint": "http://otel-collector.observability:4318",
                                "sampler": "parentbased_traceidratio", "samplerArg": "0.5"}},
        "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True},
                    "prometheusRule": {"enabled": True, "budgetThreshold": 0.8}},
        "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.1/32"]},
        "dashboards": {"enabled": True},
    },
    "dashboards": {
        "dashboards": {"enabled": True, "namespace": "monitoring",
                       "label": "dashboards.grafana.example/load", "labelValue": "yes",
                       "labels": {"team": "platform"}, "annotations": {"grafana_folder": "LLMesh"}},
    },
    "issuer": {
        "webhook": {"certs": {"mode": "certManager",
                              "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}},
    },
    "no-webhook": {"webhook": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
}

# Values the schema must refuse.
BAD_VALUES = {
    "failure policy": {"webhook": {"failurePolicy": "Maybe"}},
    "cert mode": {"webhook": {"certs": {"mode": "letsencrypt"}}},
    "sidecar quantity": {"sidecar": {"resources": {"requests": {"memory": "lots"}}}},
    "unknown key": {"operator": {"replica": 2}},
    "zero replicas": {"operator": {"replicas": 0}},
    "upstream CA name": {"sidecar": {"tls": {"caConfigMap": {"name": "Internal_CA"}}}},
    "upstream CA key": {"sidecar": {"tls": {"caSecret": {"name": "ca", "key": "a/b"}}}},
    "OTLP endpoint": {"sidecar": {"tracing": {"otlpEndpoint": "otel-collector:4318"}}},
    "trace sampler": {"sidecar": {"tracing": {"sampler": "sometimes"}}},
    "sampler ratio": {"sidecar": {"tracing": {"samplerArg": "2"}}},
    "dashboard label": {"dashboards": {"label": "grafana dashboard"}},
    "dashboard label value": {"dashboards": {"labelValue": "-1-"}},
    "dashboard namespace": {"dashboards": {"namespace": "Monitoring"}},
}

# Kinds from other projects' CRDs: kubernetes-validate has no schema for them.
FOREIGN_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")


def render(values: dict, namespace: str) -> list[dict]:
    config = helm_python.Config(namespace=namespace, storage_driver="memory")
    release = config.install(str(CHART), "llmesh", copy.deepcopy(values), dry_run="client")
    return [d for d in yaml.safe_load_all(release["manifest"]) if d]


def lint(name: str, values: dict) -> None:
    report = helm_python.lint(str(CHART), copy.deepcopy(values), strict=True,
                              kube_version=f"v{KUBE}")
    bad = [m for m in report["messages"] if m["severity"] >= 2] + [
        {"error": e} for e in report.get("errors", [])]
    check(not bad, f"[{name}] helm lint --strict: {bad or 'clean'}")


def validate(name: str, docs: list[dict]) -> None:
    for doc in docs:
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("apiVersion", "").startswith(FOREIGN_GROUPS):
            check(bool(doc.get("spec")), f"[{name}] {what}: has a spec (no offline schema for its CRD)")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
            check(True, f"[{name}] {what} valid for Kubernetes {KUBE}")
        except kubernetes_validate.ValidationError as e:
            check(False, f"[{name}] {what}: {e.message} at {list(e.path)}")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def known_metrics() -> set[str]:
    """Metric names the code registers: llmesh_ + the sidecar's, llmesh_operator_ + the operator's."""
    def names(path: pathlib.Path) -> set[str]:
        text = path.read_text()
        return set(re.findall(r'"([a-z_]+_(?:total|seconds|info|connected|micros|exhausted|cooldown|flight|sidecars))"', text))
    sidecar = names(ROOT / "sidecar/src/metrics.rs")
    operator = names(ROOT / "operator/src/metrics.rs") | names(ROOT / "operator/src/budget_metrics.rs")
    return {f"llmesh_{n}" for n in sidecar} | {f"llmesh_operator_{n}" for n in operator}


def known_env() -> set[str]:
    """The LLMESH_* variables the operator's code reads (a typo in the chart reads nothing)."""
    names: set[str] = set()
    for path in list((ROOT / "operator/src").rglob("*.rs")) + list((ROOT / "sidecar/src/telemetry").rglob("*.rs")):
        names |= set(re.findall(r'"(LLMESH_[A-Z_]+)"', path.read_text()))
    return names


def check_common(name: str, docs: list[dict], values: dict, namespace: str) -> None:
    deploy = one(docs, "Deployment")
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    unread = {e["name"] for e in container["env"] if e["name"].startswith("LLMESH_")} - known_env()
    check(not unread, f"[{name}] every LLMESH_* variable the chart sets is read by the operator (unread: {sorted(unread)})")
    replicas = values.get("operator", {}).get("replicas", 2)
    check(spec["replicas"] == replicas, f"[{name}] operator replicas = {replicas}")
    check(spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, f"[{name}] rolling update keeps every replica")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    check(bool(anti.get("preferredDuringSchedulingIgnoredDuringExecution")), f"[{name}] replicas spread by anti-affinity")
    sc = container["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("runAsNonRoot") is True
          and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"[{name}] operator container hardened")
    check(spec["template"]["metadata"]["annotations"].get("llmesh.io/inject") == "false",
          f"[{name}] the operator's pods opt out of injection")
    probes = (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"])
    check(probes == ("/readyz", "/healthz"), f"[{name}] probes on /readyz and /healthz")

    role = one(docs, "ClusterRole")
    roles = by_kind(docs, "Role")
    rules = role["rules"] + [r for x in roles for r in x["rules"]]
    flat = json.dumps(rules)
    check('"*"' not in flat, f"[{name}] RBAC has no wildcard")
    check(not any("delete" in r["verbs"] or "deletecollection" in r["verbs"] for r in rules),
          f"[{name}] RBAC never deletes (owned Secrets are garbage-collected)")
    spec_writes = [r for r in rules if r["apiGroups"] == ["llmesh.io"]
                   and any(not res.endswith("/status") for res in r["resources"])
                   and set(r["verbs"]) - {"get", "list", "watch"}]
    check(not spec_writes, f"[{name}] RBAC writes llmesh resources' status only")
    watch = values.get("operator", {}).get("watchNamespace")
    cluster_secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    if watch:
        served = [x for x in roles if x["metadata"]["namespace"] == watch]
        check(not cluster_secrets and not [r for r in role["rules"] if r["apiGroups"] == ["llmesh.io"]],
              f"[{name}] with watchNamespace, no cluster-wide Secrets or llmesh.io rules")
        check(len(served) == 1 and any("secrets" in r["resources"] for r in served[0]["rules"]),
              f"[{name}] a Role in {watch} grants what the operator does there")
        own = [x for x in roles if x["metadata"]["namespace"] == namespace]
        named = [r for x in own for r in x["rules"] if r.get("resourceNames")]
        check(watch == namespace or (own and named and all(r["resources"] == ["secrets"] for x in own for r in x["rules"])),
              f"[{name}] in its own namespace the operator keeps only its certificate Secret")
        bindings = by_kind(docs, "RoleBinding")
        check(len(bindings) == len(roles), f"[{name}] every Role is bound")
    else:
        check(cluster_secrets and not roles, f"[{name}] serving every namespace, one ClusterRole")
    binding = one(docs, "ClusterRoleBinding")
    sa_name = binding["subjects"][0]["name"]
    check(binding["subjects"][0]["namespace"] == namespace and pod["serviceAccountName"] == sa_name,
          f"[{name}] the binding names the operator's service account")

    pdb_on = values.get("podDisruptionBudget", {}).get("enabled", True)
    check(len(by_kind(docs, "PodDisruptionBudget")) == (1 if pdb_on else 0), f"[{name}] PDB present = {pdb_on}")

    for d in docs:
        wave = d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave")
        check(wave is not None and int(wave) >= -1, f"[{name}] {d['kind']}/{d['metadata']['name']} has sync wave {wave} (after the CRDs' -2)")

    webhook_on = values.get("webhook", {}).get("enabled", True)
    hooks = by_kind(docs, "MutatingWebhookConfiguration")
    env = env_of(container)
    if not webhook_on:
        check(not hooks and "LLMESH_WEBHOOK_LISTEN" not in env, f"[{name}] no webhook when disabled")
        return
    mwc = one(docs, "MutatingWebhookConfiguration")
    check(len(mwc["webhooks"]) == 2, f"[{name}] two webhooks (labelled namespaces, opted-in pods)")
    svc = one(docs, "Service")
    for hook in mwc["webhooks"]:
        client = hook["clientConfig"]["service"]
        check(client["name"] == svc["metadata"]["name"] and client["namespace"] == namespace
              and client["path"] == "/inject", f"[{name}] {hook['name']} calls the operator's Service")
        excluded = [e for e in hook["namespaceSelector"]["matchExpressions"]
                    if e["key"] == "kubernetes.io/metadata.name"][0]
        check(excluded["operator"] == "NotIn" and namespace in excluded["values"]
              and "kube-system" in excluded["values"], f"[{name}] {hook['name']} excludes the operator's namespace")
        check(hook["rules"][0]["operations"] == ["CREATE"] and hook["sideEffects"] == "None"
              and hook["reinvocationPolicy"] == "IfNeeded", f"[{name}] {hook['name']}: CREATE, no side effects, reinvoked")
    check(env.get("LLMESH_WEBHOOK_LISTEN", "").endswith(":9443") and env.get("LLMESH_SERVICE_NAME") == svc["metadata"]["name"],
          f"[{name}] the operator serves the webhook and knows its Service")
    check(env.get("POD_NAMESPACE") is None and any(e["name"] == "POD_NAMESPACE" for e in container["env"]),
          f"[{name}] POD_NAMESPACE from the downward API")


def check_default(docs: list[dict]) -> None:
    mwc = one(docs, "MutatingWebhookConfiguration")
    policies = [h["failurePolicy"] for h in mwc["webhooks"]]
    check(policies == ["Fail", "Fail"], "[default] failurePolicy Fail on both webhooks")
    pod_hook = mwc["webhooks"][1]
    check(pod_hook["objectSelector"] == {"matchLabels": {"llmesh.io/inject": "true"}},
          "[default] opted-in pods are selected by label")
    env = env_of(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    check(env["LLMESH_SIDECAR_IMAGE"] == "ghcr.io/llmesh/llmesh-sidecar:0.1.0", "[default] sidecar image from appVersion")
    check((env["LLMESH_SIDECAR_CPU_REQUEST"], env["LLMESH_SIDECAR_MEMORY_LIMIT"], env["LLMESH_SIDECAR_CPU_LIMIT"]) == ("50m", "256Mi", ""),
          "[default] sidecar resources passed to the operator")
    check(env["LLMESH_CERT_SECRET"] == "llmesh-operator-tls" and env["LLMESH_WEBHOOK_CONFIG"] == mwc["metadata"]["name"],
          "[default] self-managed certificates name the Secret and the webhook")
    check((env["LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP"], env["LLMESH_SIDECAR_UPSTREAM_CA_SECRET"],
           env["LLMESH_SIDECAR_SYSTEM_ROOTS"]) == ("", "", "false"),
          "[default] injected sidecars trust the web roots only")
    role = one(docs, "ClusterRole")
    mwc_rule = [r for r in role["rules"] if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    check(mwc_rule and mwc_rule[0]["resourceNames"] == [mwc["metadata"]["name"]],
          "[default] the operator may update only its own webhook configuration")
    check(not by_kind(docs, "NetworkPolicy") and not by_kind(docs, "PrometheusRule") and not dashboard_maps(docs),
          "[default] optional objects off")


def check_dashboards(docs: list[dict]) -> None:
    cm = check_dashboard("dashboards", docs, "monitoring", ("dashboards.grafana.example/load", "yes"))
    meta = cm.get("metadata", {})
    check(meta.get("labels", {}).get("team") == "platform" and meta.get("annotations", {}).get("grafana_folder") == "LLMesh",
          "[dashboards] extra labels and the folder annotation")


def check_full(docs: list[dict], namespace: str) -> None:
    deploy = one(docs, "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    check(deploy["metadata"]["name"] == "gw-operator", "[full] fullnameOverride names objects")
    check("--tls-cert=/etc/llmesh/tls/tls.crt" in container["args"] and env.get("LLMESH_TLS_DIR") == "/etc/llmesh/tls",
          "[full] cert-manager's Secret serves the push and the webhook")
    check(env["LLMESH_WATCH_NAMESPACE"] == "team-a" and env["LLMESH_SIDECAR_CPU_LIMIT"] == "500m"
          and env["LLMESH_SIDECAR_IMAGE"] == "registry.example/llmesh-sidecar:1.2.3", "[full] values reach the operator")
    check((env["LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP"], env["LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY"])
          == ("internal-ca", "bundle.pem"), "[full] the sidecars' upstream CA ConfigMap reaches the operator")
    check((env["LLMESH_SIDECAR_OTLP_ENDPOINT"], env["LLMESH_SIDECAR_TRACES_SAMPLER"], env["LLMESH_SIDECAR_TRACES_SAMPLER_ARG"])
          == ("http://otel-collector.observability:4318", "parentbased_traceidratio", "0.5"),
          "[full] the sidecars' tracing reaches the operator")
    mwc = one(docs, "MutatingWebhookConfiguration")
    check(mwc["metadata"]["annotations"].get("cert-manager.io/inject-ca-from", "").endswith("/gw-operator-tls"),
          "[full] cert-manager injects the caBundle")
    check([h["failurePolicy"] for h in mwc["webhooks"]] == ["Ignore", "Ignore"] and "objectSelector" not in mwc["webhooks"][1],
          "[full] annotation opt-in sends every pod, with Ignore")
    certs = by_kind(docs, "Certificate")
    check(len(certs) == 2 and len(by_kind(docs, "Issuer")) == 2, "[full] a self-signed CA chain for cert-manager")
    rule = one(docs, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    for wanted in ["LLMeshBudgetNearlyExhausted", "LLMeshProviderErrorRate", "LLMeshSidecarsDisconnected"]:
        check(wanted in alerts, f"[full] alert {wanted}")
    check("> 0.8" in alerts["LLMeshBudgetNearlyExhausted"], "[full] budget threshold from values")
    known = known_metrics()
    for alert, expr in alerts.items():
        used = set(re.findall(r"\bllmesh_[a-z_]+", expr))
        unknown = used - known
        check(used and not unknown, f"[full] {alert} uses exported metrics {sorted(used)} (unknown: {sorted(unknown)})")
    check(len(by_kind(docs, "ServiceMonitor")) == 1 and len(by_kind(docs, "PodMonitor")) == 1, "[full] monitors")
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    check(endpoint.get("honorLabels") is True,
          "[full] the ServiceMonitor keeps the operator's own namespace label (honorLabels)")
    cm = check_dashboard("full", docs, namespace, ("grafana_dashboard", "1"))
    check(cm.get("metadata", {}).get("name") == "gw-dashboard", "[full] dashboard ConfigMap named after the release")
    pol = one(docs, "NetworkPolicy")
    check(pol["spec"]["policyTypes"] == ["Ingress", "Egress"], "[full] NetworkPolicy limits both ways")


def dashboard_maps(docs: list[dict]) -> list[dict]:
    return [d for d in by_kind(docs, "ConfigMap") if "llmesh.json" in d.get("data", {})]


def check_dashboard(name: str, docs: list[dict], namespace: str, label: tuple[str, str]) -> dict:
    """The dashboard ConfigMap: where the Grafana sidecar looks, with its label, holding
    the chart's dashboards/llmesh.json as it is (the Rust test checks its queries)."""
    maps = dashboard_maps(docs)
    check(len(maps) == 1, f"[{name}] one dashboard ConfigMap")
    if not maps:
        return {}
    cm = maps[0]
    meta = cm["metadata"]
    check(meta["namespace"] == namespace, f"[{name}] dashboard ConfigMap in {namespace}")
    check(meta["labels"].get(label[0]) == label[1], f"[{name}] dashboard ConfigMap labelled {label[0]}={label[1]}")
    text = cm["data"]["llmesh.json"]
    shipped = (CHART / "dashboards" / "llmesh.json").read_text()
    check(text.strip() == shipped.strip(), f"[{name}] the ConfigMap holds dashboards/llmesh.json unchanged")
    board = json.loads(text)
    check(board.get("uid") == "llmesh-overview" and board.get("panels"), f"[{name}] the dashboard parses, uid llmesh-overview")
    return cm


def check_issuer(docs: list[dict]) -> None:
    cert = one(docs, "Certificate")
    check(cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"} and not by_kind(docs, "Issuer"),
          "[issuer] an existing issuer is used as given")


def check_rbac_comments() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            check(lines[i - 1].strip().startswith("#"), f"rbac.yaml:{i + 1}: rule commented with its purpose")


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_only(extra: dict, namespace: str, out: pathlib.Path) -> int:
    """Each scenario's objects, rendered with `extra` merged into its values, as
    `OUT/<scenario>.json` (tests/tests/chart_pods.rs runs what they describe)."""
    for name, values in SCENARIOS.items():
        docs = render(merged(values, extra), namespace)
        (out / f"{name}.json").write_text(json.dumps(docs))
        print(f"rendered {name}: {len(docs)} objects")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace", default="llmesh-system")
    parser.add_argument("--out", type=pathlib.Path)
    parser.add_argument("--render-only", metavar="JSON",
                        help="only render every scenario, with these values merged in, into --out")
    args = parser.parse_args()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    if args.render_only is not None:
        return render_only(json.loads(args.render_only), args.namespace, args.out)

    crds = [d for f in sorted((CHART / "crds").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    check(len(crds) == 3, "chart ships the three CRDs")
    validate("crds", crds)
    for crd in crds:
        check(crd["metadata"]["annotations"].get("argocd.argoproj.io/sync-wave") == "-2", f"{crd['metadata']['name']} syncs first (wave -2)")
    if args.out:
        (args.out / "crds.json").write_text(json.dumps(crds))
    check_rbac_comments()

    for name, values in SCENARIOS.items():
        lint(name, values)
        docs = render(values, args.namespace)
        validate(name, docs)
        check_common(name, docs, values, args.namespace)
        {"default": check_default, "full": lambda d: check_full(d, args.namespace), "issuer": check_issuer,
         "dashboards": check_dashboards}.get(name, lambda d: None)(docs)
        if args.out:
            (args.out / f"{name}.json").write_text(json.dumps(docs))

    for what, values in BAD_VALUES.items():
        try:
            render(values, args.namespace)
            check(False, f"values.schema.json refuses {what}")
        except helm_python.HelmError as e:
            check("schema" in str(e).lower() or "values" in str(e).lower(), f"values.schema.json refuses {what}")

    print(f"\nchart: {PASSED} passed, {len(FAILURES)} failed")
    for f in FAILURES:
        print(f"  FAILED: {f}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
