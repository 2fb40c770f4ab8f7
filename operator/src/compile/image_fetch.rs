//! Compiles an `LLMModel`'s `imageFetch`: host rules and address ranges checked with the
//! sidecar's own parsers (so what compiles is what the sidecar accepts), the timeout in
//! milliseconds, unset fields taking the sidecar's defaults.
//!
//! A bad entry is an error, not a warning: dropping an allowed-hosts rule could widen
//! the list to any host, so the model is left out until it is fixed.

use llmesh_crds::llm_model::ImageFetch;
use llmesh_sidecar::config::snapshot::ImageFetchSpec;
use llmesh_sidecar::router::images::MAX_IMAGE_BYTES;
use llmesh_sidecar::upstream::guard::{Cidr, HostRule};

use super::units::{millis, nonzero};
use super::{Reason, Report};

const AT: &str = "spec.imageFetch";

pub(super) fn image_fetch(value: Option<&ImageFetch>, report: &mut Report<'_>) -> ImageFetchSpec {
    let defaults = ImageFetchSpec::default();
    let Some(value) = value else {
        return defaults;
    };
    for (i, rule) in value.allowed_hosts.iter().enumerate() {
        if let Err(message) = rule.parse::<HostRule>() {
            report.error(
                format!("{AT}.allowedHosts[{i}]"),
                Reason::InvalidImageFetch,
                message,
            );
        }
    }
    for (i, range) in value.allow_private_addresses.iter().enumerate() {
        if let Err(message) = range.parse::<Cidr>() {
            report.error(
                format!("{AT}.allowPrivateAddresses[{i}]"),
                Reason::InvalidImageFetch,
                message,
            );
        }
    }
    let max_bytes = value.max_bytes.unwrap_or(defaults.max_bytes);
    if max_bytes == 0 || max_bytes > MAX_IMAGE_BYTES {
        report.error(
            format!("{AT}.maxBytes"),
            Reason::InvalidImageFetch,
            format!("maxBytes must be between 1 and {MAX_IMAGE_BYTES}"),
        );
    }
    let max_images = value.max_images.unwrap_or(defaults.max_images);
    if max_images == 0 {
        report.error(
            format!("{AT}.maxImages"),
            Reason::InvalidImageFetch,
            "maxImages must be at least 1 (set enabled: false to fetch nothing)",
        );
    }
    let field = format!("{AT}.timeout");
    let timeout_ms = millis(&field, value.timeout.as_ref(), defaults.timeout_ms, report);
    ImageFetchSpec {
        enabled: value.enabled.unwrap_or(defaults.enabled),
        allowed_hosts: value.allowed_hosts.clone(),
        allow_private_addresses: value.allow_private_addresses.clone(),
        max_bytes,
        timeout_ms: nonzero(&field, timeout_ms, report),
        max_images,
    }
}

#[cfg(test)]
mod tests {
    use llmesh_crds::LlmModel;
    use llmesh_crds::shared::HumanDuration;

    use super::*;
    use crate::compile::fixtures::{model_names, reasons};
    use crate::compile::{Inputs, Severity, compile};

    fn compiled(fetch: ImageFetch) -> crate::compile::Compiled {
        let mut model = LlmModel::test("chat");
        model.spec.image_fetch = Some(fetch);
        compile(&Inputs {
            models: vec![model],
            ..Inputs::default()
        })
    }

    #[test]
    fn unset_means_the_sidecar_defaults_and_stays_out_of_the_snapshot() {
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            ..Inputs::default()
        });
        let spec = &compiled.snapshot.models[0].image_fetch;
        assert!(spec.is_default());
        let json = serde_json::to_value(&compiled.snapshot).unwrap();
        assert!(json["models"][0].get("imageFetch").is_none(), "{json}");
    }

    #[test]
    fn fields_compile_into_the_snapshot() {
        let compiled = compiled(ImageFetch {
            enabled: Some(true),
            allowed_hosts: vec!["images.example.com".into(), "*.cdn.example.com:8443".into()],
            allow_private_addresses: vec!["10.20.0.0/16".into(), "fd00::1".into()],
            max_bytes: Some(1024),
            timeout: Some(HumanDuration::new("2s500ms")),
            max_images: Some(3),
        });
        assert_eq!(compiled.problems, []);
        assert_eq!(
            compiled.snapshot.models[0].image_fetch,
            ImageFetchSpec {
                enabled: true,
                allowed_hosts: vec!["images.example.com".into(), "*.cdn.example.com:8443".into()],
                allow_private_addresses: vec!["10.20.0.0/16".into(), "fd00::1".into()],
                max_bytes: 1024,
                timeout_ms: 2500,
                max_images: 3,
            }
        );
        let off = compiled_off();
        assert!(!off.snapshot.models[0].image_fetch.enabled);
    }

    fn compiled_off() -> crate::compile::Compiled {
        compiled(ImageFetch {
            enabled: Some(false),
            ..ImageFetch::default()
        })
    }

    #[test]
    fn bad_rules_ranges_and_limits_leave_the_model_out() {
        let compiled = compiled(ImageFetch {
            allowed_hosts: vec!["ok.example.com".into(), "Bad Host".into()],
            allow_private_addresses: vec!["10.0.0.1/8".into(), "nonsense".into()],
            max_bytes: Some(0),
            timeout: Some(HumanDuration::new("0s")),
            max_images: Some(0),
            ..ImageFetch::default()
        });
        assert_eq!(model_names(&compiled), Vec::<&str>::new());
        let fields: Vec<(&str, Reason)> = reasons(&compiled)
            .iter()
            .filter(|r| r.3 == Severity::Error)
            .map(|r| (r.1, r.2))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.imageFetch.allowedHosts[1]", Reason::InvalidImageFetch),
                (
                    "spec.imageFetch.allowPrivateAddresses[0]",
                    Reason::InvalidImageFetch
                ),
                (
                    "spec.imageFetch.allowPrivateAddresses[1]",
                    Reason::InvalidImageFetch
                ),
                ("spec.imageFetch.maxBytes", Reason::InvalidImageFetch),
                ("spec.imageFetch.maxImages", Reason::InvalidImageFetch),
                ("spec.imageFetch.timeout", Reason::InvalidDuration),
            ]
        );
    }
}
