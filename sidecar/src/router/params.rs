//! Request parameters a deployment's provider cannot honour: refused with a 400 naming
//! the parameter, or, under `dropUnsupportedParams`, dropped and counted.

use crate::domain::CallView;
use crate::metrics::Metrics;
use crate::provider::TranslateError;
use crate::router::routes::{Deployment, Model};

/// Parameters every endpoint accepts whatever the provider.
const ALWAYS_SUPPORTED: &[&str] = &["model", "stream"];

/// Refuses (or, with `dropUnsupportedParams`, counts and drops) request parameters the
/// deployment's provider cannot honour. Dialects only read the fields they know, so
/// dropping needs no rewrite of the body.
pub fn check_params(
    model: &Model,
    deployment: &Deployment,
    view: &CallView<'_>,
    metrics: &Metrics,
) -> Result<(), TranslateError> {
    let Some(supported) = deployment.dialect.supported_params(view.endpoint) else {
        return Ok(());
    };
    for key in view.body.keys() {
        let key = key.as_str();
        if ALWAYS_SUPPORTED.contains(&key) || supported.contains(&key) {
            continue;
        }
        if model.drop_unsupported_params {
            metrics
                .dropped_params
                .with_label_values(&[
                    model.name.as_str(),
                    deployment.provider_label,
                    param_label(key),
                ])
                .inc();
            continue;
        }
        return Err(TranslateError::Unsupported {
            param: key.to_owned(),
            provider: deployment.provider_label,
        });
    }
    Ok(())
}

/// OpenAI request parameters that may be metric labels; anything else a client sends is
/// counted as `other`, so client-chosen names never become series.
const KNOWN_PARAMS: &[&str] = &[
    "audio",
    "dimensions",
    "encoding_format",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt",
    "reasoning_effort",
    "response_format",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream_options",
    "suffix",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "web_search_options",
    "best_of",
    "echo",
    "input",
];

/// The label for a dropped parameter: its name if OpenAI defines it, else `other`.
fn param_label(param: &str) -> &str {
    if KNOWN_PARAMS.contains(&param) {
        param
    } else {
        "other"
    }
}
