//! Compiles an `LLMModel`'s `cache`: the ttl in milliseconds and the memory limits,
//! unset limits taking the sidecar's defaults, all checked with the sidecar's own check
//! (so what compiles is what the sidecar accepts).
//!
//! A bad value is an error: the model is left out (not Ready, the reason in its status)
//! rather than served with a cache other than the one asked for.

use llmesh_crds::llm_model::CacheSpec;
use llmesh_sidecar::config::snapshot;

use super::units::millis;
use super::{Reason, Report};

const AT: &str = "spec.cache";

pub(super) fn cache(
    value: Option<&CacheSpec>,
    report: &mut Report<'_>,
) -> Option<snapshot::CacheSpec> {
    let value = value?;
    let field = format!("{AT}.ttl");
    let Some(ttl) = value.ttl.as_ref() else {
        report.error(
            field,
            Reason::InvalidCache,
            "cache needs a ttl: how long answers are served from it",
        );
        return None;
    };
    let ttl_ms = millis(&field, Some(ttl), 0, report);
    let max_bytes = value
        .max_bytes
        .unwrap_or(snapshot::CacheSpec::DEFAULT_MAX_BYTES);
    let spec = snapshot::CacheSpec {
        ttl_ms,
        max_entries: value
            .max_entries
            .unwrap_or(snapshot::CacheSpec::DEFAULT_MAX_ENTRIES),
        max_bytes,
        max_entry_bytes: value
            .max_entry_bytes
            .unwrap_or(snapshot::CacheSpec::DEFAULT_MAX_ENTRY_BYTES.min(max_bytes)),
    };
    if let Err((name, message)) = spec.check() {
        report.error(format!("{AT}.{name}"), Reason::InvalidCache, message);
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use llmesh_crds::LlmModel;
    use llmesh_crds::shared::HumanDuration;

    use super::*;
    use crate::compile::fixtures::{model_names, reasons};
    use crate::compile::{Inputs, Severity, compile};

    fn compiled(cache: Option<CacheSpec>) -> crate::compile::Compiled {
        let mut model = LlmModel::test("chat");
        model.spec.cache = cache;
        compile(&Inputs {
            models: vec![model],
            ..Inputs::default()
        })
    }

    fn errors(compiled: &crate::compile::Compiled) -> Vec<(&str, Reason)> {
        reasons(compiled)
            .iter()
            .filter(|r| r.3 == Severity::Error)
            .map(|r| (r.1, r.2))
            .collect()
    }

    #[test]
    fn unset_means_no_cache_and_stays_out_of_the_snapshot() {
        let compiled = compiled(None);
        assert_eq!(compiled.snapshot.models[0].cache, None);
        let json = serde_json::to_value(&compiled.snapshot).unwrap();
        assert!(json["models"][0].get("cache").is_none(), "{json}");
    }

    #[test]
    fn fields_compile_into_the_snapshot_with_defaults() {
        let compiled = compiled(Some(CacheSpec {
            ttl: Some(HumanDuration::new("5m")),
            ..CacheSpec::default()
        }));
        assert_eq!(compiled.problems, []);
        assert_eq!(
            compiled.snapshot.models[0].cache,
            Some(snapshot::CacheSpec::new(300_000))
        );
        let compiled = self::compiled(Some(CacheSpec {
            ttl: Some(HumanDuration::new("1h")),
            max_entries: Some(10),
            max_bytes: Some(4096),
            max_entry_bytes: None,
        }));
        assert_eq!(compiled.problems, []);
        assert_eq!(
            compiled.snapshot.models[0].cache,
            Some(snapshot::CacheSpec {
                ttl_ms: 3_600_000,
                max_entries: 10,
                max_bytes: 4096,
                // The default entry limit, capped by the whole cache's.
                max_entry_bytes: 4096,
            })
        );
    }

    #[test]
    fn bad_values_leave_the_model_out() {
        for (cache, field, reason) in [
            (CacheSpec::default(), "spec.cache.ttl", Reason::InvalidCache),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("soon")),
                    ..CacheSpec::default()
                },
                "spec.cache.ttl",
                Reason::InvalidDuration,
            ),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("0s")),
                    ..CacheSpec::default()
                },
                "spec.cache.ttl",
                Reason::InvalidCache,
            ),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("169h")),
                    ..CacheSpec::default()
                },
                "spec.cache.ttl",
                Reason::InvalidCache,
            ),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("1m")),
                    max_entries: Some(0),
                    ..CacheSpec::default()
                },
                "spec.cache.maxEntries",
                Reason::InvalidCache,
            ),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("1m")),
                    max_bytes: Some(2 << 30),
                    ..CacheSpec::default()
                },
                "spec.cache.maxBytes",
                Reason::InvalidCache,
            ),
            (
                CacheSpec {
                    ttl: Some(HumanDuration::new("1m")),
                    max_bytes: Some(4096),
                    max_entry_bytes: Some(8192),
                    ..CacheSpec::default()
                },
                "spec.cache.maxEntryBytes",
                Reason::InvalidCache,
            ),
        ] {
            let compiled = compiled(Some(cache.clone()));
            assert_eq!(model_names(&compiled), Vec::<&str>::new(), "{cache:?}");
            let errors = errors(&compiled);
            assert!(errors.contains(&(field, reason)), "{cache:?}: {errors:?}");
        }
    }
}
