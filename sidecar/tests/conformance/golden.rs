//! Golden files: the exact upstream request body a provider receives. Set
//! `LLMESH_UPDATE_GOLDEN=1` to rewrite them after an intended change.

use serde_json::Value;

/// Compares `actual` with the golden JSON at `path`, field by field.
pub fn check(path: &std::path::Path, actual: &Value) {
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var("LLMESH_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with LLMESH_UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&expected).unwrap();
    let mut differences = Vec::new();
    diff("", &expected, actual, &mut differences);
    assert!(
        differences.is_empty(),
        "{} differs:\n{}",
        path.display(),
        differences.join("\n")
    );
}

fn diff(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => diff(&format!("{at}.{k}"), v, av, out),
                    None => out.push(format!("  {at}.{k}: missing (expected {v})")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("  {at}.{k}: unexpected {}", a[k]));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{at}[{i}]"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!("  {at}: expected {expected}, got {actual}")),
        _ => {}
    }
}
