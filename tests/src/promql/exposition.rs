//! Reads Prometheus' text exposition format (what `/metrics` serves): every family's type
//! from its `# TYPE` line, and the label names its samples carry.

use std::collections::{BTreeMap, BTreeSet};

/// A metric family's type, from `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One family as exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub kind: Kind,
    /// The label names on its samples (`le` and `quantile` left out: they belong to the
    /// `_bucket` and quantile series, not the family); `None` when it has no sample yet,
    /// so which labels it has cannot be read.
    pub labels: Option<BTreeSet<String>>,
}

/// The families in `text`, by name. Samples are assigned to the family whose `# TYPE`
/// names them (`x_bucket`, `x_sum`, `x_count` to histogram or summary `x`).
pub fn families(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| format!("line {}: a TYPE without a type", n + 1))?;
            let kind = match kind.trim() {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                "untyped" => Kind::Untyped,
                other => return Err(format!("line {}: unknown type {other}", n + 1)),
            };
            let family = Family { kind, labels: None };
            if out.insert(name.to_owned(), family).is_some() {
                return Err(format!("line {}: a second TYPE for {name}", n + 1));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, labels) = sample(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let family = std::iter::once(name.as_str())
            .filter(|n| out.contains_key(*n))
            .chain(
                ["_bucket", "_sum", "_count"]
                    .into_iter()
                    .filter_map(|suffix| {
                        name.strip_suffix(suffix).filter(|base| {
                            out.get(*base).is_some_and(|f| {
                                f.kind == Kind::Histogram
                                    || (f.kind == Kind::Summary && suffix != "_bucket")
                            })
                        })
                    }),
            )
            .next()
            .map(str::to_owned)
            .ok_or_else(|| format!("line {}: a sample of {name} before its TYPE", n + 1))?;
        if let Some(f) = out.get_mut(&family) {
            let seen = f.labels.get_or_insert_with(BTreeSet::new);
            seen.extend(labels.into_iter().filter(|l| l != "le" && l != "quantile"));
        }
    }
    Ok(out)
}

/// A sample line's metric name and label names.
fn sample(line: &str) -> Result<(String, Vec<String>), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while chars
        .get(i)
        .is_some_and(|c| *c != '{' && !c.is_whitespace())
    {
        i += 1;
    }
    let name: String = chars[..i].iter().collect();
    let mut labels = Vec::new();
    if chars.get(i) == Some(&'{') {
        i += 1;
        loop {
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            if chars.get(i) == Some(&'}') {
                i += 1;
                break;
            }
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                i += 1;
            }
            let label: String = chars[start..i].iter().collect();
            if label.is_empty() || chars.get(i) != Some(&'=') || chars.get(i + 1) != Some(&'"') {
                return Err(format!("a malformed label at {}", start + 1));
            }
            i += 2;
            // The value, with \" \\ \n escapes.
            loop {
                match chars.get(i) {
                    None => return Err("an unterminated label value".into()),
                    Some('\\') => i += 2,
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            labels.push(label);
            match chars.get(i) {
                Some(',') => i += 1,
                Some('}') => {
                    i += 1;
                    break;
                }
                other => return Err(format!("expected , or }} after a label, found {other:?}")),
            }
        }
    }
    let value: String = chars[i..].iter().collect();
    if value.trim().is_empty() {
        return Err(format!("a sample of {name} without a value"));
    }
    Ok((name, labels))
}
