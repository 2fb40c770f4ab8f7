//! Golden files: the exact upstream request body a provider receives, in
//! `tests/golden/{provider}/{name}.json`. Set `LLMESH_BLESS=1` to rewrite them after an
//! intended change (and review the diff).

use std::path::PathBuf;

use serde_json::Value;

/// Compares `actual` with `tests/golden/{provider}/{name}.json` field by field, naming
/// every differing path.
pub fn check(provider: &str, name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(provider)
        .join(format!("{name}.json"));
    if std::env::var("LLMESH_BLESS").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with LLMESH_BLESS=1 to create it)",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&text).unwrap();
    let mut differences = Vec::new();
    diff("$", &expected, actual, &mut differences);
    assert!(
        differences.is_empty(),
        "{} differs from the request sent upstream:\n  {}",
        path.display(),
        differences.join("\n  ")
    );
}

fn diff(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => diff(&format!("{at}.{k}"), v, av, out),
                    None => out.push(format!("{at}.{k}: missing (expected {v})")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{at}.{k}: unexpected {}", a[k]));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{at}: {} items, expected {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{at}[{i}]"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!("{at}: {actual}, expected {expected}")),
        _ => {}
    }
}
