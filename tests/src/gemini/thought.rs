//! Thought signatures as Gemini 3 gives and checks them.
//!
//! A model whose name starts with `gemini-3` signs its answers: the first `functionCall`
//! part of an answer that calls functions (parallel calls: the first only), else the
//! last part, carries a `thoughtSignature`. It behaves otherwise as the model named by
//! the rest of its name (`gemini-3-mock-two-cities` as `mock-two-cities`).
//!
//! Requests to such a model are checked as Gemini 3 checks them: from the last user
//! turn holding anything but function responses (the start of the current turn), the
//! first `functionCall` of every model turn must carry a signature, or the request is
//! refused with the 400 the Gemini API or Vertex AI sends. Every signature, to any
//! model, must be base64 and either one this mock issued or one of Google's documented
//! placeholders (`skip_thought_signature_validator`, `context_engineering_is_the_way_to_go`),
//! else "Corrupted thought signature.".

use serde_json::Value;

use super::behave::{Answer, Out, Planned};
use super::validate::{Api, decode_bytes};

/// What every signature this mock issues starts with, once decoded: the first bytes
/// make its standard base64 start with `++//`, so a translator that carries it in
/// the other alphabet must map it back (Google's protobuf JSON reads both).
const ISSUED: &[u8] = b"\xfb\xef\xffmock-thought-signature:";

/// Google's placeholders for function calls Gemini did not make.
const PLACEHOLDERS: &[&str] = &[
    "skip_thought_signature_validator",
    "context_engineering_is_the_way_to_go",
];

/// Whether `model` signs and checks signatures.
pub(crate) fn gemini_3(model: &str) -> bool {
    model.starts_with("gemini-3")
}

/// The model whose behaviour `model` has.
pub(crate) fn behaviour(model: &str) -> &str {
    model.strip_prefix("gemini-3-").unwrap_or(model)
}

/// The signature of candidate `index` of response `response_id`, standard base64.
pub(crate) fn issue(response_id: &str, index: usize) -> String {
    use base64::Engine;
    let mut bytes = ISSUED.to_vec();
    bytes.extend_from_slice(format!("{response_id}/{index}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Signs the answer of a Gemini 3 model.
pub(crate) fn sign(model: &str, mut answer: Answer, response_id: &str) -> Answer {
    if !gemini_3(model) {
        return answer;
    }
    let planned: &mut Planned = match &mut answer {
        Answer::Planned(p)
        | Answer::Malformed(p)
        | Answer::GarbledLater(p)
        | Answer::Cut(p)
        | Answer::StreamError(p)
        | Answer::Slow(p, _) => p,
        Answer::Error(..) => return answer,
    };
    planned.model = model.to_owned();
    for (i, candidate) in planned.candidates.iter_mut().enumerate() {
        let call = candidate
            .parts
            .iter()
            .position(|p| matches!(p, Out::Call { .. }));
        let at = call.or_else(|| candidate.parts.len().checked_sub(1));
        candidate.signed = at.map(|at| (at, issue(response_id, i)));
    }
    answer
}

/// What Gemini says of the signatures in `contents` sent to `model`, if it refuses
/// them.
pub(crate) fn check(api: Api, model: &str, contents: &[Value]) -> Vec<String> {
    let mut refused = Vec::new();
    let parts = |content: &Value| -> Vec<Value> {
        content
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field = |part: &Value, camel: &str, snake: &str| -> Option<Value> {
        part.get(camel).or_else(|| part.get(snake)).cloned()
    };
    for (i, content) in contents.iter().enumerate() {
        for (j, part) in parts(content).iter().enumerate() {
            let Some(signature) = field(part, "thoughtSignature", "thought_signature") else {
                continue;
            };
            let text = signature.as_str().unwrap_or_default();
            match decode_bytes(text) {
                None => refused.push(format!(
                    "Invalid value at 'contents[{i}].parts[{j}].thought_signature' (TYPE_BYTES), Base64 decoding failed for \"{text}\""
                )),
                Some(bytes) if !bytes.starts_with(ISSUED) && !PLACEHOLDERS.contains(&text) => {
                    refused.push("Corrupted thought signature.".into());
                }
                Some(_) => {}
            }
        }
    }
    if !gemini_3(model) {
        return refused;
    }
    let start = contents
        .iter()
        .rposition(|c| {
            c.get("role").and_then(Value::as_str) == Some("user")
                && parts(c)
                    .iter()
                    .any(|p| field(p, "functionResponse", "function_response").is_none())
        })
        .map_or(0, |at| at + 1);
    for (i, content) in contents.iter().enumerate().skip(start) {
        if content.get("role").and_then(Value::as_str) != Some("model") {
            continue;
        }
        let parts = parts(content);
        let Some(first) = parts
            .iter()
            .find(|p| field(p, "functionCall", "function_call").is_some())
        else {
            continue;
        };
        if field(first, "thoughtSignature", "thought_signature").is_some() {
            continue;
        }
        let name = field(first, "functionCall", "function_call")
            .and_then(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        refused.push(match api {
            Api::AiStudio => format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                i + 1
            ),
            Api::Vertex => format!(
                "Unable to submit request because function call `{name}` in the {}. content block is missing a `thought_signature`. Learn more: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures",
                i + 1
            ),
        });
        // Google names the first missing signature only.
        break;
    }
    refused
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::super::validate::{Shape, check as validate};
    use super::*;

    fn refusal(api: Api, model: &str, contents: Value) -> Option<String> {
        let body = json!({"contents": contents});
        validate(api, Shape::Generate, model, &body).map(|b| {
            let v: Value = serde_json::from_slice(&b).unwrap();
            v["error"]["message"].as_str().unwrap().to_owned()
        })
    }

    fn call(city: &str, signature: Option<&str>) -> Value {
        let mut part = json!({"functionCall": {"name": "weather", "args": {"city": city}}});
        if let Some(s) = signature {
            part["thoughtSignature"] = json!(s);
        }
        part
    }

    fn answered(turn: Vec<Value>) -> Value {
        json!([
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": turn},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "weather", "response": {"t": 1}}},
                {"functionResponse": {"name": "weather", "response": {"t": 2}}}]}
        ])
    }

    #[test]
    fn issued_signatures_are_standard_base64_with_both_odd_characters() {
        let s = issue("mock-response-000001", 0);
        assert!(s.starts_with("++//"), "{s}");
        assert!(decode_bytes(&s).unwrap().starts_with(ISSUED));
    }

    #[test]
    fn gemini_3_refuses_a_current_turn_whose_first_call_is_unsigned() {
        let signed = issue("r", 0);
        let good = answered(vec![call("Paris", Some(&signed)), call("Rome", None)]);
        assert_eq!(refusal(Api::AiStudio, "gemini-3-pro-preview", good), None);
        let placeholder = answered(vec![
            call("Paris", Some("skip_thought_signature_validator")),
            call("Rome", None),
        ]);
        assert_eq!(
            refusal(Api::Vertex, "gemini-3-pro-preview", placeholder),
            None
        );
        let unsigned = answered(vec![call("Paris", None), call("Rome", Some(&signed))]);
        let message = refusal(Api::AiStudio, "gemini-3-pro-preview", unsigned.clone()).unwrap();
        assert!(
            message
                .starts_with("Function call is missing a thought_signature in functionCall parts.")
                && message.contains("function call `default_api:weather` , position 2."),
            "{message}"
        );
        let message = refusal(Api::Vertex, "gemini-3-flash-preview", unsigned.clone()).unwrap();
        assert!(message.contains("in the 2. content block is missing a `thought_signature`"));
        // Gemini 2.5 does not check; an earlier turn is not checked either.
        assert_eq!(
            refusal(Api::AiStudio, "gemini-2.5-flash", unsigned.clone()),
            None
        );
        let mut later = unsigned.as_array().unwrap().clone();
        later.push(json!({"role": "model", "parts": [{"text": "18 and 21."}]}));
        later.push(json!({"role": "user", "parts": [{"text": "Thanks"}]}));
        assert_eq!(
            refusal(Api::AiStudio, "gemini-3-pro-preview", Value::Array(later)),
            None
        );
    }

    #[test]
    fn signatures_gemini_did_not_issue_are_corrupted() {
        for model in ["gemini-3-pro-preview", "gemini-2.5-flash"] {
            // Base64 of something Gemini did not sign.
            let forged = answered(vec![call("Paris", Some("Zm9yZ2Vk")), call("Rome", None)]);
            assert_eq!(
                refusal(Api::AiStudio, model, forged).as_deref(),
                Some("Corrupted thought signature.")
            );
        }
        let bad = answered(vec![call("Paris", Some("not base64!")), call("Rome", None)]);
        assert!(
            refusal(Api::AiStudio, "gemini-2.5-flash", bad)
                .unwrap()
                .contains("(TYPE_BYTES), Base64 decoding failed")
        );
    }
}
