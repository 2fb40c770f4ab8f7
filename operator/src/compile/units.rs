//! Units: human durations to milliseconds, USD amounts to integer micro-dollars, and
//! the base-URL check the sidecar applies too.

use llmesh_crds::{
    llm_model::ModelPricing,
    shared::{HumanDuration, UsdAmount},
};
use llmesh_sidecar::config::snapshot::Pricing;

use super::{Reason, Report};

/// The duration in milliseconds; `default` when unset or (reported) invalid.
pub(super) fn millis(at: &str, value: Option<&HumanDuration>, or: u64, r: &mut Report<'_>) -> u64 {
    match value.map(HumanDuration::to_millis) {
        None => or,
        Some(Ok(ms)) => ms,
        Some(Err(err)) => {
            r.error(at, Reason::InvalidDuration, err.to_string());
            or
        }
    }
}

/// `ms`, reported as an error when it is zero (a timeout of nothing).
pub(super) fn nonzero(field: &str, ms: u64, report: &mut Report<'_>) -> u64 {
    if ms == 0 {
        report.error(field, Reason::InvalidDuration, "must be longer than 0s");
    }
    ms
}

/// Prices from `value`, each unset one taken from `base`.
pub(super) fn pricing(
    at: &str,
    value: Option<&ModelPricing>,
    base: Pricing,
    report: &mut Report<'_>,
) -> Pricing {
    let Some(value) = value else {
        return base;
    };
    let mut price = |field: &str, amount: Option<&UsdAmount>, base: u64| match amount
        .map(UsdAmount::to_micros)
    {
        None => base,
        Some(Ok(micros)) => micros,
        Some(Err(err)) => {
            report.error(
                format!("{at}.{field}"),
                Reason::InvalidPrice,
                err.to_string(),
            );
            base
        }
    };
    Pricing {
        input_micros_per_million: price(
            "inputPerMillion",
            value.input_per_million.as_ref(),
            base.input_micros_per_million,
        ),
        output_micros_per_million: price(
            "outputPerMillion",
            value.output_per_million.as_ref(),
            base.output_micros_per_million,
        ),
        cached_input_micros_per_million: price(
            "cachedInputPerMillion",
            value.cached_input_per_million.as_ref(),
            base.cached_input_micros_per_million,
        ),
        cache_write_input_micros_per_million: price(
            "cacheWriteInputPerMillion",
            value.cache_write_input_per_million.as_ref(),
            base.cache_write_input_micros_per_million,
        ),
    }
}

/// An absolute `http`/`https` URL with a host; the same test the sidecar applies, so a
/// URL it would refuse (and with it the whole snapshot) never reaches it.
pub(super) fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use llmesh_crds::{LlmModel, llm_model::Timeouts, shared::HumanDuration};

    use super::*;
    use crate::compile::{Inputs, compile};

    #[test]
    fn bad_durations_and_prices_are_problems() {
        let mut model = LlmModel::test("chat").with_prices("0.1234567", "1");
        model.spec.timeouts = Some(Timeouts {
            total: Some(HumanDuration::new("0s")),
            time_to_first_token: Some(HumanDuration::new("ten seconds")),
        });
        let compiled = compile(&Inputs {
            models: vec![model],
            ..Inputs::default()
        });
        assert!(compiled.snapshot.models.is_empty());
        let fields: Vec<_> = compiled
            .problems
            .iter()
            .map(|p| (p.field.as_str(), p.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.pricing.inputPerMillion", Reason::InvalidPrice),
                ("spec.timeouts.total", Reason::InvalidDuration),
                ("spec.timeouts.timeToFirstToken", Reason::InvalidDuration),
            ]
        );
        assert!(compiled.problems[2].message.contains("\"ten seconds\""));
    }

    #[test]
    fn http_urls_are_recognised() {
        assert!(is_http_url("https://api.example.com/v1"));
        assert!(is_http_url("http://10.0.0.1:8000"));
        for bad in [
            "ftp://x",
            "https://",
            "localhost:8000",
            "https:///path",
            "http://a b",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
