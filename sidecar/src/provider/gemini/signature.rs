//! Thought signatures: the opaque `thoughtSignature` Gemini puts on parts of its answers
//! (Gemini 2.5 and 3 with thinking), which must come back on the same parts in the
//! conversation's next turns. Gemini 3 refuses a function-calling turn whose steps do
//! not start with a signed `functionCall` (400 "Function call is missing a
//! thought_signature").
//!
//! An OpenAI client keeps tool calls, not Gemini parts, so a `functionCall`'s signature
//! rides on the tool call made of it, twice:
//! - in `extra_content.google.thought_signature`, as Google's own OpenAI-compatible API
//!   writes it (whole answers and stream deltas), for clients that keep a call whole;
//! - in the call's id, `{id}__thought__{signature}` with the signature in base64url
//!   (no padding; the separator is the one LiteLLM uses), for the many clients that
//!   rebuild a call from its id, name and arguments, and through the Messages and
//!   Responses bridges, which keep `tool_use.id` and `call_id` (base64url keeps the id
//!   within Anthropic's `^[a-zA-Z0-9_-]+$`).
//!
//! On the way back the signature is taken from `extra_content`, else from the id (in
//! either base64 alphabet, so LiteLLM's ids work too), and put on that call's
//! `functionCall` part. For a Gemini 3 model, the first `functionCall` of each model
//! turn since the last user message with content of its own (the steps Gemini
//! validates) that has no signature, because the history was written elsewhere or the
//! client dropped it, gets Google's documented placeholder
//! [`SKIP_VALIDATOR`], which tells Gemini to skip the check.

use std::borrow::Cow;

use super::wire::{Content, PartOut};
use crate::provider::openai_wire::ExtraContent;

/// Between a tool call's own id and the signature it carries.
pub const SEPARATOR: &str = "__thought__";

/// The signature Google documents for function calls Gemini did not make (history
/// from another model, or one a client rebuilt without signatures).
pub const SKIP_VALIDATOR: &str = "skip_thought_signature_validator";

/// `id` carrying `signature`: `{id}__thought__{signature}`, the signature in base64url
/// without padding. A signature that is not standard base64 (Gemini's are) rides in
/// `extra_content` only, since rewriting it could change it.
pub fn id_with(id: String, signature: Option<&str>) -> String {
    match signature.filter(|s| is_standard_base64(s)) {
        Some(signature) => {
            let mut out = String::with_capacity(id.len() + SEPARATOR.len() + signature.len());
            out.push_str(&id);
            out.push_str(SEPARATOR);
            out.extend(signature.chars().filter(|&c| c != '=').map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            }));
            out
        }
        None => id,
    }
}

/// The signature a tool call id carries, in standard base64 with padding as Gemini
/// wrote it; `None` for an id without one.
pub fn from_id(id: &str) -> Option<String> {
    let (_, encoded) = id.split_once(SEPARATOR)?;
    if encoded.is_empty()
        || !encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='))
    {
        return None;
    }
    let mut signature: String = encoded
        .chars()
        .filter(|&c| c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    // One leftover character cannot end a byte: not base64.
    match signature.len() % 4 {
        1 => return None,
        2 => signature.push_str("=="),
        3 => signature.push('='),
        _ => {}
    }
    Some(signature)
}

/// The `extra_content` of a tool call made of a part with `signature`.
pub fn extra(signature: Option<&str>) -> Option<ExtraContent> {
    signature.map(|s| ExtraContent::thought_signature(s.to_owned()))
}

/// The signature to send back with a tool call: its `extra_content`'s, else its id's.
pub fn of_call<'a>(call: &'a crate::provider::openai_wire::ToolCall<'_>) -> Option<Cow<'a, str>> {
    call.extra_content
        .as_ref()
        .and_then(|e| e.pointer("/google/thought_signature"))
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(Cow::Borrowed)
        .or_else(|| from_id(&call.id).map(Cow::Owned))
}

/// Whether `model` validates the signatures of function calls (Gemini 3 and later; an
/// alias such as `gemini-flash-latest` may name one, so it is counted in).
pub fn validated(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("gemini-") else {
        return false;
    };
    !(rest.starts_with("1.")
        || rest.starts_with("1-")
        || rest.starts_with("2.")
        || rest.starts_with("2-")
        || rest.starts_with("embedding"))
}

/// Signs, with [`SKIP_VALIDATOR`], the first `functionCall` of each model turn of the
/// current turn that has no signature: Gemini 3 validates those. The current turn
/// starts after the last user turn with content of its own, not only function
/// responses (Google's rule). Text is what counts here: the images that follow a
/// function's result are not a new turn, and counting too few turns as new only adds
/// placeholders Gemini would not have checked.
pub fn fill_current_turn(contents: &mut [Content<'_>]) {
    let start = contents
        .iter()
        .rposition(|c| {
            c.role == Some("user") && c.parts.iter().any(|p| matches!(p, PartOut::Text(_)))
        })
        .map_or(0, |at| at + 1);
    for content in contents.iter_mut().skip(start) {
        if content.role != Some("model") {
            continue;
        }
        let first = content.parts.iter_mut().find_map(|p| match p {
            PartOut::Call(call) => Some(call),
            _ => None,
        });
        if let Some(call) = first
            && call.thought_signature.is_none()
        {
            call.thought_signature = Some(Cow::Borrowed(SKIP_VALIDATOR));
        }
    }
}

/// Standard base64 with padding, as Gemini writes bytes in JSON.
fn is_standard_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !text.is_empty()
        && text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_ride_in_ids_as_base64url_and_come_back_as_they_were() {
        for signature in ["CiQB0e2Kb+/x", "CiQB0e2K+/8=", "AbC/", "Zm9vYmFy", "YQ=="] {
            let id = id_with("call_r_0".into(), Some(signature));
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{id}"
            );
            assert!(id.starts_with("call_r_0__thought__"));
            assert_eq!(from_id(&id).as_deref(), Some(signature), "{id}");
        }
        assert_eq!(id_with("c".into(), Some("CiQB+/x=")), "c__thought__CiQB-_x");
        // LiteLLM writes the signature as it came.
        assert_eq!(
            from_id("call_1__thought__CiQB+/x=").as_deref(),
            Some("CiQB+/x=")
        );
        // Not base64: the id keeps no signature.
        assert_eq!(
            id_with("c".into(), Some("skip_thought_signature_validator")),
            "c"
        );
        assert_eq!(id_with("c".into(), None), "c");
        for id in [
            "call_1",
            "call_1__thought__",
            "c__thought__a",
            "c__thought__ab cd",
        ] {
            assert_eq!(from_id(id), None, "{id}");
        }
    }

    #[test]
    fn gemini_3_and_later_validate() {
        for model in [
            "gemini-3-pro-preview",
            "gemini-3.1-pro",
            "gemini-3-flash-preview",
            "gemini-flash-latest",
        ] {
            assert!(validated(model), "{model}");
        }
        for model in [
            "gemini-2.5-flash",
            "gemini-2.0-flash",
            "gemini-1.5-pro",
            "gemma-3-27b-it",
            "gemini-embedding-001",
        ] {
            assert!(!validated(model), "{model}");
        }
    }
}
