#!/usr/bin/env python3
"""Runs the Argo CD health checks shipped in charts/llmesh/argocd/ against sample objects.

Argo CD runs resource.customizations health scripts with gopher-lua, a Lua 5.1: this runs
them with Lua 5.1 too (lupa.lua51), with the object as the global `obj`, exactly as Argo
CD does, and checks the status and message for each sample. It also checks that the
argocd-cm.yaml snippet carries the same scripts as the .lua files.

Exits 3 when a package is missing (the Rust test then skips or fails), 1 on a failure.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGO = ROOT / "charts" / "llmesh" / "argocd"

try:
    import lupa.lua51 as lua
    import yaml
except ImportError as e:
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


def health(script: str, obj: dict) -> dict:
    runtime = lua.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    # Argo CD wraps the script as a function body: `return hs` ends it.
    result = runtime.execute(script)
    return {"status": result["status"], "message": result["message"]}


def ready(status: str, reason: str, message: str) -> dict:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}


def meta(generation: int = 2) -> dict:
    return {"name": "x", "namespace": "team-a", "generation": generation}


MODEL = {"spec": {"deployments": [{"name": "a", "provider": "openai", "model": "gpt-4o-mini"}]}}
KEY = {"spec": {"models": ["chat"]}}
BUDGET = {"spec": {"limit": "100.00", "period": "monthly"}}

CASES = {
    "LLMModel": [
        ("no status yet", {**MODEL, "metadata": meta()}, "Progressing", "Waiting"),
        ("stale generation", {**MODEL, "metadata": meta(3), "status": {"observedGeneration": 2, "conditions": [ready("True", "Compiled", "ok")]}}, "Progressing", "generation 3"),
        ("ready", {**MODEL, "metadata": meta(), "status": {"observedGeneration": 2, "conditions": [ready("True", "Compiled", "1 deployment")], "deployments": 1}}, "Healthy", "Compiled"),
        ("missing secret", {**MODEL, "metadata": meta(), "status": {"observedGeneration": 2, "conditions": [ready("False", "SecretNotFound", "spec.deployments[0].apiKeySecretRef: Secret openai not found")]}}, "Degraded", "SecretNotFound: spec.deployments[0]"),
        ("unknown", {**MODEL, "metadata": meta(), "status": {"observedGeneration": 2, "conditions": [ready("Unknown", "Pending", "")]}}, "Progressing", "Pending"),
    ],
    "VirtualKey": [
        ("no status yet", {**KEY, "metadata": meta()}, "Progressing", "generate the key"),
        ("ready", {**KEY, "metadata": meta(), "status": {"observedGeneration": 2, "secretName": "x-key", "keyPrefix": "sk-llmesh-ab12", "conditions": [ready("True", "KeyReady", "key in Secret x-key")]}}, "Healthy", "key in Secret x-key"),
        ("expired", {**KEY, "metadata": meta(), "status": {"observedGeneration": 2, "conditions": [ready("False", "Expired", "expired at 2026-01-01T00:00:00Z")]}}, "Degraded", "Expired"),
    ],
    "Budget": [
        ("no status yet", {**BUDGET, "metadata": meta()}, "Progressing", "ledger"),
        ("spending", {**BUDGET, "metadata": meta(), "status": {"observedGeneration": 2, "limitMicros": 100_000_000, "limit": "$100.00", "spentMicros": 12_500_000, "spent": "$12.50", "remainingMicros": 87_500_000, "remaining": "$87.50", "exhausted": False, "conditions": [ready("True", "Tracking", "")]}}, "Healthy", "Spent $12.50 of $100.00"),
        ("status without limit (older operator)", {**BUDGET, "metadata": meta(), "status": {"observedGeneration": 2, "spentMicros": 12_500_000, "spent": "$12.50", "remainingMicros": 87_500_000, "exhausted": False, "conditions": [ready("True", "Tracking", "")]}}, "Healthy", "Spent $12.50 of 100.00"),
        ("exhausted", {**BUDGET, "metadata": meta(), "status": {"observedGeneration": 2, "limitMicros": 100_000_000, "limit": "$100.00", "spentMicros": 100_000_000, "spent": "$100.00", "remainingMicros": 0, "exhausted": True, "resetAt": "2026-02-01T00:00:00Z", "conditions": [ready("True", "Exhausted", "spent $100.00 of $100.00")]}}, "Degraded", "Exhausted: spent $100.00 of $100.00; resets at 2026-02-01T00:00:00Z"),
        ("bad spec", {**BUDGET, "metadata": meta(), "status": {"observedGeneration": 2, "exhausted": False, "conditions": [ready("False", "InvalidTimeZone", "spec.timeZone: unknown zone Mars/Olympus")]}}, "Degraded", "InvalidTimeZone"),
    ],
}


def main() -> int:
    cm = yaml.safe_load((ARGO / "argocd-cm.yaml").read_text())
    for kind, cases in CASES.items():
        path = ARGO / "health" / f"llmesh.io_{kind}.lua"
        script = path.read_text()
        key = f"resource.customizations.health.llmesh.io_{kind}"
        check(cm["data"].get(key) == script, f"argocd-cm.yaml {key} is {path.name}")
        for name, obj, status, message in cases:
            try:
                got = health(script, {"apiVersion": "llmesh.io/v1alpha1", "kind": kind, **obj})
            except lua.LuaError as e:
                check(False, f"{kind} {name}: Lua error {e}")
                continue
            check(got["status"] == status and message in (got["message"] or ""),
                  f"{kind} {name}: {got['status']} {got['message']!r} (want {status}, {message!r})")
    print(f"\nargocd: {PASSED} passed, {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
