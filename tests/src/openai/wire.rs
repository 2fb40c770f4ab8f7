//! OpenAI's response bodies, byte for byte in the shape the real API sends.
//!
//! Bodies are serialized straight from borrowed structs rather than through a
//! `serde_json::Value` tree: the mock binary sits under load tests at
//! thousands of requests a second, and one output buffer per reply keeps the
//! mock from being the bottleneck being measured.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Serialize;

/// The fingerprint every success body carries; real responses always have
/// one, and clients that log it should see something plausible.
const SYSTEM_FINGERPRINT: &str = "fp_mock";

/// Width of mock embedding vectors: large enough to look like a vector,
/// small enough that embedding replies stay cheap.
pub(crate) const EMBEDDING_DIM: usize = 8;

/// The fields every completion body and chunk repeats.
pub(crate) struct Meta<'a> {
    pub(crate) id: &'a str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
}

/// Token accounting as OpenAI reports it.
#[derive(Serialize, Clone, Copy, Debug)]
pub(crate) struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    // The legacy completions endpoint omits the breakdowns entirely, the
    // chat endpoint always sends them.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Serialize, Clone, Copy, Debug)]
struct PromptTokensDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Clone, Copy, Debug)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl Usage {
    /// Usage as `/chat/completions` reports it, breakdowns included.
    pub(crate) fn chat(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: 0,
                audio_tokens: 0,
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: 0,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            }),
        }
    }

    /// Usage as `/completions` reports it: the three totals only.
    pub(crate) fn legacy(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChatChoice<'a>; 1],
    usage: Usage,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    annotations: [(); 0],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [ToolCall],
}

/// One function call of an assistant message.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: FunctionCall,
}

/// The function a [`ToolCall`] calls, with its arguments as JSON text.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct FunctionCall {
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// How an answer ends: its tool calls (none for text) and its finish reason.
pub(crate) struct Ending<'a> {
    pub(crate) tool_calls: &'a [ToolCall],
    pub(crate) finish_reason: &'static str,
}

impl Ending<'_> {
    /// A text answer that ended by itself.
    pub(crate) const STOP: Ending<'static> = Ending {
        tool_calls: &[],
        finish_reason: "stop",
    };
}

/// A complete `chat.completion` object; the content is `null` when the answer is tool
/// calls.
pub(crate) fn chat_completion(
    meta: &Meta<'_>,
    content: &str,
    ending: &Ending<'_>,
    usage: Usage,
) -> Bytes {
    let calls = ending.tool_calls;
    to_bytes(&ChatCompletion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: [ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: Some(content).filter(|_| calls.is_empty()),
                refusal: None,
                annotations: [],
                tool_calls: calls,
            },
            logprobs: None,
            finish_reason: ending.finish_reason,
        }],
        usage,
        service_tier: "default",
        system_fingerprint: SYSTEM_FINGERPRINT,
    })
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    // Absent unless the client asked for usage; then `null` on every chunk
    // but the last, which carries the totals (OpenAI documents exactly this).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    // Only the role chunk carries `refusal: null`, as OpenAI's does.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<()>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// A piece of a streamed tool call: the first names it, the rest carry arguments.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The SSE events of a streamed chat completion, one `Bytes` per event:
/// the role chunk, one chunk per piece, each tool call (its id and name, then its
/// arguments in two halves), the finish chunk, the usage chunk when `usage` is given,
/// and `[DONE]`.
pub(crate) fn chat_chunks(
    meta: &Meta<'_>,
    pieces: &[&str],
    ending: &Ending<'_>,
    usage: Option<Usage>,
) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(pieces.len() + 4);
    let per_chunk_usage = usage.map(|_| None);
    let chunk = |choices: &[ChunkChoice<'_>], usage: Option<Option<Usage>>| {
        sse(&ChatChunk {
            id: meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: meta.model,
            service_tier: "default",
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage,
        })
    };
    fn choice<'a>(delta: Delta<'a>, finish_reason: Option<&'static str>) -> ChunkChoice<'a> {
        ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
    // OpenAI's first chunk announces the role with empty content.
    let role = Delta {
        role: Some("assistant"),
        content: Some(""),
        refusal: Some(None),
        tool_calls: None,
    };
    events.push(chunk(&[choice(role, None)], per_chunk_usage));
    for piece in pieces {
        let delta = Delta {
            content: Some(piece),
            ..Delta::default()
        };
        events.push(chunk(&[choice(delta, None)], per_chunk_usage));
    }
    for (index, call) in ending.tool_calls.iter().enumerate() {
        let arguments = &call.function.arguments;
        let (a, b) = arguments.split_at(arguments.len() / 2);
        let opening = ToolCallDelta {
            index,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(&call.function.name),
                arguments: "",
            },
        };
        let rest = [a, b].map(|arguments| ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments,
            },
        });
        for piece in std::iter::once(opening).chain(rest) {
            let delta = Delta {
                tool_calls: Some([piece]),
                ..Delta::default()
            };
            events.push(chunk(&[choice(delta, None)], per_chunk_usage));
        }
    }
    events.push(chunk(
        &[choice(Delta::default(), Some(ending.finish_reason))],
        per_chunk_usage,
    ));
    if let Some(usage) = usage {
        events.push(chunk(&[], Some(Some(usage))));
    }
    events.push(done());
    events
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [TextChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// A complete `text_completion` object.
pub(crate) fn text_completion(meta: &Meta<'_>, text: &str, usage: Usage) -> Bytes {
    to_bytes(&TextCompletion {
        id: meta.id,
        object: "text_completion",
        created: meta.created,
        model: meta.model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices: &[TextChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason: Some("stop"),
        }],
        usage: Some(Some(usage)),
    })
}

/// The SSE events of a streamed legacy completion: one `text_completion`
/// chunk per piece, an empty `stop` chunk, the usage chunk when `usage` is
/// given, and `[DONE]`. Unlike chat there is no role chunk.
pub(crate) fn text_chunks(meta: &Meta<'_>, pieces: &[&str], usage: Option<Usage>) -> Vec<Bytes> {
    let mut events = Vec::with_capacity(pieces.len() + 3);
    let per_chunk_usage = usage.map(|_| None);
    let chunk = |choices: &[TextChoice<'_>], usage: Option<Option<Usage>>| {
        sse(&TextCompletion {
            id: meta.id,
            object: "text_completion",
            created: meta.created,
            model: meta.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage,
        })
    };
    let choice = |text, finish_reason| TextChoice {
        text,
        index: 0,
        logprobs: None,
        finish_reason,
    };
    for piece in pieces {
        events.push(chunk(&[choice(piece, None)], per_chunk_usage));
    }
    events.push(chunk(&[choice("", Some("stop"))], per_chunk_usage));
    if let Some(usage) = usage {
        events.push(chunk(&[], Some(Some(usage))));
    }
    events.push(done());
    events
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding<'a>>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding<'a> {
    object: &'static str,
    index: usize,
    embedding: EmbeddingVector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingVector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// An embeddings `list`, one `embedding` object per vector, in input order.
///
/// With `base64` the vectors are sent the way `encoding_format: "base64"`
/// asks: little-endian `f32`s, base64-encoded (the official Python client
/// asks for this by default).
pub(crate) fn embeddings(
    model: &str,
    vectors: &[Vec<f32>],
    prompt_tokens: u64,
    base64: bool,
) -> Bytes {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                EmbeddingVector::Base64(STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Floats(vector)
            },
        })
        .collect();
    to_bytes(&EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<Model<'static>>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// What `/v1/models` lists: a few real-looking ids plus the scripted
/// `mock-*` ones, so a client that validates against the list can use them.
const MODELS: &[(&str, &str)] = &[
    ("gpt-4o", "system"),
    ("gpt-4o-mini", "system"),
    ("gpt-3.5-turbo-instruct", "system"),
    ("text-embedding-3-small", "system"),
    ("mock-model", "llmesh"),
    ("mock-error-429", "llmesh"),
    ("mock-error-500", "llmesh"),
    ("mock-error-503", "llmesh"),
    ("mock-context-length", "llmesh"),
    ("mock-content-filter", "llmesh"),
];

/// A fixed creation time for listed models; real ones are release dates.
const MODEL_CREATED: u64 = 1_715_367_049;

fn model_owner(id: &str) -> &'static str {
    MODELS
        .iter()
        .find(|(known, _)| *known == id)
        .map_or("llmesh", |(_, owner)| owner)
}

/// The `/v1/models` list.
pub(crate) fn models() -> Bytes {
    to_bytes(&ModelList {
        object: "list",
        data: MODELS
            .iter()
            .map(|(id, owned_by)| Model {
                id,
                object: "model",
                created: MODEL_CREATED,
                owned_by,
            })
            .collect(),
    })
}

/// One `model` object, as `/v1/models/{id}` returns it. Any id is "known":
/// a mock that 404s on unlisted models would only get in tests' way.
pub(crate) fn model(id: &str) -> Bytes {
    to_bytes(&Model {
        id,
        object: "model",
        created: MODEL_CREATED,
        owned_by: model_owner(id),
    })
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(
    message: &str,
    kind: Option<&str>,
    param: Option<&str>,
    code: Option<&str>,
) -> Bytes {
    to_bytes(&ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    })
}

/// Azure OpenAI's content-filter rejection, which differs from OpenAI's
/// error shape: `type` is `null`, and `status` plus `innererror` (with the
/// per-category verdicts) are added.
pub(crate) fn azure_content_filter() -> Bytes {
    Bytes::from_static(concat!(
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "#,
        r#"Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: "#,
        r#"https://go.microsoft.com/fwlink/?linkid=2198766","type":null,"param":"prompt","code":"content_filter","status":400,"#,
        r#""innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"#,
        r#""hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"#,
        r#""self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"#,
        r#""violence":{"filtered":true,"severity":"medium"}}}}}"#
    ).as_bytes())
}

/// The stream terminator.
fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// One SSE event carrying `value` as its data line.
fn sse<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(384);
    out.extend_from_slice(b"data: ");
    // Serializing these structs into a Vec cannot fail (no maps with
    // non-string keys, no failing writer), so an error leaves an empty data
    // line rather than a panic.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    // As in `sse`: cannot fail for these types.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn azure_content_filter_is_valid_json() {
        let v: serde_json::Value =
            serde_json::from_slice(&azure_content_filter()).expect("valid json");
        assert_eq!(v["error"]["code"], "content_filter");
        assert!(v["error"]["type"].is_null());
    }
}
