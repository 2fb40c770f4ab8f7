//! Google's bodies as the Gemini API and Vertex AI send them: the JSON error shape,
//! `GenerateContentResponse` pieces, usage metadata, embeddings.
//!
//! Whole bodies are pretty-printed with two-space indents, as Google's REST front
//! ends send them; stream events are compact, one JSON object per `data:` line.

use bytes::Bytes;
use serde_json::{Value, json};

/// The `google.rpc.Code` name Google puts in `error.status` for an HTTP status.
pub(crate) fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// Google's error object, `{"error": {"code", "message", "status", "details"?}}`.
pub(crate) fn error_value(code: u16, message: &str, details: Vec<Value>) -> Value {
    let mut error = json!({
        "code": code,
        "message": message,
        "status": status_name(code),
    });
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error })
}

/// [`error_value`] as a pretty-printed body.
pub(crate) fn error(code: u16, message: &str, details: Vec<Value>) -> Bytes {
    pretty(&error_value(code, message, details))
}

/// A `google.rpc.ErrorInfo` detail.
pub(crate) fn error_info(reason: &str, service: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": { "service": service },
    })
}

/// A `google.rpc.QuotaFailure` detail naming the quota that was exceeded.
pub(crate) fn quota_failure(metric: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{
            "quotaMetric": metric,
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaValue": "10",
        }],
    })
}

/// A `google.rpc.Help` detail linking to the docs.
pub(crate) fn help(url: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{ "description": "Learn more about Gemini API quotas", "url": url }],
    })
}

/// A `google.rpc.RetryInfo` detail: Gemini says when to retry a 429 here, not in a
/// `Retry-After` header.
pub(crate) fn retry_info(delay: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": delay,
    })
}

/// A `google.rpc.BadRequest` detail naming the offending fields.
pub(crate) fn bad_request(violations: &[(String, String)]) -> Value {
    let violations: Vec<Value> = violations
        .iter()
        .map(|(field, description)| json!({ "field": field, "description": description }))
        .collect();
    json!({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": violations,
    })
}

/// Pretty-printed JSON, as Google's non-streamed bodies are.
pub(crate) fn pretty(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default())
}

/// Token counts of one response, as `usageMetadata` reports them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// Prompt tokens, cached ones included.
    pub(crate) prompt: u64,
    /// Tokens of the visible output (`candidatesTokenCount`); thoughts are not in it.
    pub(crate) candidates: u64,
    /// Thinking tokens, billed as output but reported apart.
    pub(crate) thoughts: u64,
    /// Prompt tokens served from the context cache.
    pub(crate) cached: u64,
}

impl Usage {
    /// `usageMetadata`: `totalTokenCount` is prompt + candidates + thoughts, and the
    /// optional counts are left out when zero, as Google does.
    pub(crate) fn to_json(self) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": self.candidates,
            "totalTokenCount": self.prompt + self.candidates + self.thoughts,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": self.prompt }],
        });
        if self.thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(self.thoughts);
        }
        if self.cached > 0 {
            usage["cachedContentTokenCount"] = json!(self.cached);
            usage["cacheTokensDetails"] =
                json!([{ "modality": "TEXT", "tokenCount": self.cached }]);
        }
        if self.candidates == 0 {
            // Blocked prompts report no output count at all.
            if let Some(usage) = usage.as_object_mut() {
                usage.remove("candidatesTokenCount");
            }
        }
        usage
    }
}

/// Safety ratings with one category flagged and blocked, the rest negligible.
pub(crate) fn safety_ratings(blocked: &str) -> Value {
    let categories = [
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    ];
    categories
        .iter()
        .map(|category| {
            if *category == blocked {
                json!({ "category": category, "probability": "HIGH", "blocked": true })
            } else {
                json!({ "category": category, "probability": "NEGLIGIBLE" })
            }
        })
        .collect()
}
