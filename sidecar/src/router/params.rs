//! Request parameters a deployment's provider cannot honour: refused with a 400 naming
//! the parameter, or, under `dropUnsupportedParams`, dropped and counted.
//!
//! Two kinds are dropped: parameters the provider has no counterpart for at all
//! ([`check_params`], by name), and values the provider cannot honour although the call
//! works without the parameter (`n: 2` where one choice comes back,
//! `parallel_tool_calls: false` to Gemini), which only the provider's translation sees
//! ([`request`]). What cannot be dropped (a malformed message, an image in a format the
//! provider lacks) is refused whatever the setting.

use serde_json::{Map, Value};

use crate::domain::CallView;
use crate::metrics::Metrics;
use crate::provider::TranslateError;
use crate::router::routes::{Deployment, Model};

/// Runs the deployment's translation `build` (its request, or its pieces) for `view`.
/// Under `dropUnsupportedParams`, a parameter the translation refuses as droppable is
/// removed and the translation run again; the body without it is returned, for reading
/// the answer with the same view. Each round removes one of the body's keys, so the loop
/// ends.
pub fn request<T>(
    model: &Model,
    deployment: &Deployment,
    view: &CallView<'_>,
    metrics: &Metrics,
    build: impl Fn(&CallView<'_>) -> Result<T, TranslateError>,
) -> Result<(T, Option<Map<String, Value>>), TranslateError> {
    let mut trimmed: Option<Map<String, Value>> = None;
    loop {
        let body = trimmed.as_ref().unwrap_or(view.body);
        let attempt = CallView { body, ..*view };
        let err = match build(&attempt) {
            Ok(request) => return Ok((request, trimmed)),
            Err(err) => err,
        };
        let Some(param) = err.droppable() else {
            return Err(err);
        };
        if !model.drop_unsupported_params || !body.contains_key(param) {
            return Err(err);
        }
        let mut next = body.clone();
        next.remove(param);
        metrics
            .dropped_params
            .with_label_values(&[
                model.name.as_str(),
                deployment.provider_label,
                param_label(param),
            ])
            .inc();
        trimmed = Some(next);
    }
}

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

/// Refuses (or, with `dropUnsupportedParams`, counts and drops) the hosted tools a call
/// restated as chat asks for (see `provider::bridge`): chat cannot carry them, so the
/// restated body already lacks them and dropping is only counting.
pub fn check_hosted_tools(
    model: &Model,
    deployment: &Deployment,
    tools: &[String],
    metrics: &Metrics,
) -> Result<(), TranslateError> {
    let Some(first) = tools.first() else {
        return Ok(());
    };
    if !model.drop_unsupported_params {
        return Err(TranslateError::UnsupportedTool {
            tool: first.clone(),
            provider: deployment.provider_label,
        });
    }
    for tool in tools {
        let label = HOSTED_TOOLS
            .iter()
            .find(|known| tool.starts_with(**known))
            .copied()
            .unwrap_or("other");
        metrics
            .dropped_params
            .with_label_values(&[model.name.as_str(), deployment.provider_label, label])
            .inc();
    }
    Ok(())
}

/// Hosted tool types that may be metric labels (dated versions, such as Anthropic's
/// `web_search_20250305`, count under their stem); any other is counted as `other`.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "tool_search",
    "file_search",
    "computer",
    "code_interpreter",
    "code_execution",
    "image_generation",
    "mcp",
    "local_shell",
    "bash",
    "text_editor",
    "web_fetch",
    "memory",
];

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
    "thinking",
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
