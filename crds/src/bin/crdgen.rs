//! Writes the CRD manifests generated from `llmesh-crds` into the repository, or checks
//! that the committed ones are current.
//!
//! ```text
//! crdgen [--check] [--out WORKSPACE_ROOT]
//! ```
//!
//! Files go to `<root>/crds/` and `<root>/charts/llmesh/crds/`. The root defaults to the
//! workspace this crate was built from. `--check` writes nothing, lists the files that
//! differ, and exits with status 1 if any do.

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

/// Where, under the workspace root, the manifests live.
const TARGET_DIRS: [&str; 2] = ["crds", "charts/llmesh/crds"];

const USAGE: &str = "usage: crdgen [--check] [--out WORKSPACE_ROOT]";

fn main() -> ExitCode {
    let mut check = false;
    // The crate sits one level under the workspace root.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut root = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(&root, check) {
        Ok(stale) if stale.is_empty() => ExitCode::SUCCESS,
        Ok(stale) => {
            eprintln!("CRD manifests are stale; run `cargo run -p llmesh-crds --bin crdgen`:");
            for path in stale {
                eprintln!("  {}", path.display());
            }
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Writes (or, with `check`, compares) every manifest; returns the stale ones when
/// checking.
fn run(root: &Path, check: bool) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let rendered = llmesh_crds::rendered()?;
    let mut stale = Vec::new();
    for dir in TARGET_DIRS {
        let dir = root.join(dir);
        for (name, yaml) in &rendered {
            let path = dir.join(name);
            if check {
                if fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                    stale.push(path);
                }
            } else {
                fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(stale)
}
