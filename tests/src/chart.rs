//! The Helm chart's Python tools (`tests/chart/`), run with the test Python named by
//! `LLMESH_PYTHON` (`scripts/test.sh` makes it: helm-python-sdk embeds Helm's Go library,
//! so no `helm` binary is needed). Without it the callers skip with a message, unless
//! `LLMESH_REQUIRE_CHART=1` (which `scripts/test.sh` sets) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const REQUIRE_ENV: &str = "LLMESH_REQUIRE_CHART";

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Runs `tests/chart/SCRIPT ARGS`: its output when it passed, `None` when it cannot run
/// here (said loudly; a panic instead under `LLMESH_REQUIRE_CHART=1`), a panic with its
/// output when it failed.
pub fn run_python(script: &str, args: &[String]) -> Option<String> {
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(
            !required,
            "{why}, and {REQUIRE_ENV}=1 requires the chart tests"
        );
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPED: the chart tests need {why}.\n\
             !! Run ./scripts/test.sh, or set LLMESH_PYTHON to a Python with\n\
             !! tests/chart/requirements.txt installed.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
    };
    let Ok(python) = std::env::var("LLMESH_PYTHON") else {
        skip("LLMESH_PYTHON (a Python with helm-python-sdk and kubernetes-validate)".into());
        return None;
    };
    let output = match Command::new(&python)
        .arg(root().join("tests/chart").join(script))
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip(format!("{python} to run ({e})"));
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => Some(text),
        Some(3) => {
            skip(format!("Python packages: {}", text.trim()));
            None
        }
        _ => panic!("{script} failed:\n{text}"),
    }
}

/// The chart's scenarios (`tests/chart/check_chart.py`: `default` and each non-default
/// set of values), rendered for release namespace `namespace` with `extra` values merged
/// into each: scenario name → its objects. `None` when the tools are missing (skipped).
pub fn render(namespace: &str, extra: &Value, out: &Path) -> Option<Vec<(String, Vec<Value>)>> {
    let args = [
        "--namespace".to_owned(),
        namespace.to_owned(),
        "--out".to_owned(),
        out.display().to_string(),
        "--render-only".to_owned(),
        extra.to_string(),
    ];
    let report = run_python("check_chart.py", &args)?;
    let mut scenarios = Vec::new();
    for line in report.lines() {
        let Some(name) = line
            .strip_prefix("rendered ")
            .and_then(|l| l.split(':').next())
        else {
            continue;
        };
        let path = out.join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        scenarios.push((name.to_owned(), docs));
    }
    Some(scenarios)
}
