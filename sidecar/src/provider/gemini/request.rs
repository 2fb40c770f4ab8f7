//! OpenAI chat requests → Gemini's `GenerateContentRequest` (embeddings: see
//! [`embed`](super::embed)).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Value, json};

use super::Flavor;
use super::schema;
use super::signature;
use super::wire::{
    Blob, CallPart, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateRequest, GenerationConfig, PartOut, ThinkingConfig, Tool, ToolConfig,
};
use crate::domain::CallView;
use crate::provider::TranslateError;
use crate::provider::openai_wire::{self, ChatRequest, ResponseFormat};
use crate::provider::translate::{self, Said, ToolMode, TurnBuilder, UserPart};

/// Gemini takes at most this many stop sequences.
const MAX_STOPS: usize = 5;

/// The `generateContent` body for a chat call.
pub fn chat(call: &CallView<'_>, flavor: Flavor) -> Result<Vec<u8>, TranslateError> {
    let req = translate::chat_request(call)?;
    let (system, mut contents) = turns(&req.messages, flavor)?;
    if signature::validated(call.model) {
        signature::fill_current_turn(&mut contents);
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "Gemini needs at least one user or assistant message besides system messages.",
        ));
    }
    let mut body = GenerateRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools: Vec::new(),
        tool_config: None,
        generation_config: generation_config(&req)?,
    };
    if req.parallel_tool_calls == Some(false) {
        // Gemini has no switch for it; dropUnsupportedParams may drop it.
        return Err(TranslateError::Unsupported {
            param: "parallel_tool_calls".into(),
            provider: flavor.provider(),
        });
    }
    let declarations: Vec<FunctionDeclaration<'_>> = translate::functions(&req)?
        .into_iter()
        .map(|function| FunctionDeclaration {
            name: function.name.clone(),
            description: function.description.clone(),
            parameters: function.parameters.as_ref().and_then(schema::convert),
        })
        .collect();
    if !declarations.is_empty() {
        body.tools.push(Tool {
            function_declarations: declarations,
        });
        body.tool_config = tool_config(translate::tool_mode(&req)?);
    }
    translate::encode(&body, "messages")
}

/// `tool_choice` → `functionCallingConfig`: auto → AUTO, none → NONE, required → ANY,
/// a named function → ANY limited to it.
fn tool_config(mode: Option<ToolMode<'_>>) -> Option<ToolConfig<'_>> {
    let (mode, allowed) = match mode? {
        ToolMode::Auto => ("AUTO", None),
        ToolMode::None => ("NONE", None),
        ToolMode::Required => ("ANY", None),
        ToolMode::Named(name) => ("ANY", Some(Cow::Borrowed(name))),
    };
    Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: allowed.into_iter().collect(),
        },
    })
}

fn generation_config(req: &ChatRequest<'_>) -> Result<GenerationConfig, TranslateError> {
    let stops = req.stop_sequences();
    if stops.len() > MAX_STOPS {
        return Err(TranslateError::unsupported_value(
            "stop",
            format!("Gemini takes at most {MAX_STOPS} stop sequences."),
        ));
    }
    let mut config = GenerationConfig {
        stop_sequences: stops,
        max_output_tokens: req.output_limit(),
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        candidate_count: req.n.filter(|&n| n != 1),
        ..GenerationConfig::default()
    };
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config.response_mime_type = Some("application/json"),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json");
            config.response_schema = json_schema.schema.as_ref().and_then(schema::convert);
        }
    }
    if let Some(effort) = &req.reasoning_effort {
        // Budgets in tokens; thought summaries come back as reasoning_content.
        let budget = match effort.as_ref() {
            "none" => 0,
            "minimal" | "low" => 1024,
            "medium" => 8192,
            "high" | "xhigh" => 24576,
            other => {
                return Err(TranslateError::invalid(
                    "reasoning_effort",
                    format!("unknown effort {other:?}"),
                ));
            }
        };
        config.thinking_config = Some(ThinkingConfig {
            include_thoughts: budget > 0,
            thinking_budget: budget,
        });
    }
    Ok(config)
}

/// Splits the conversation into the system instruction and `user`/`model` turns,
/// merging consecutive turns of one role (tool results join the user turn that
/// answers the model's calls, as Gemini requires).
fn turns<'a>(
    messages: &'a [openai_wire::Message<'a>],
    flavor: Flavor,
) -> Result<(Vec<PartOut<'a>>, Vec<Content<'a>>), TranslateError> {
    let mut builder = Turns {
        flavor,
        system: Vec::new(),
        called: HashMap::new(),
    };
    let turns = translate::turns(messages, &mut builder)?;
    let contents = turns.into_iter().map(|(role, parts)| Content {
        role: Some(role),
        parts,
    });
    let contents = contents.collect();
    Ok((builder.system, contents))
}

/// Messages as Gemini parts, system text apart.
struct Turns<'a> {
    flavor: Flavor,
    system: Vec<PartOut<'a>>,
    /// Tool call id → function name: tool messages name only the id, Gemini wants the
    /// name. Later calls with the same id shadow earlier ones.
    called: HashMap<&'a str, &'a str>,
}

impl<'a> TurnBuilder<'a> for Turns<'a> {
    type Block = PartOut<'a>;

    const ASSISTANT: &'static str = "model";

    fn add(&mut self, said: Said<'a>, out: &mut Vec<PartOut<'a>>) -> Result<(), TranslateError> {
        match said {
            Said::System(content) => {
                translate::each_text(content, "system", |t| push_text(&mut self.system, t))
            }
            Said::User(content) => {
                let flavor = self.flavor;
                translate::each_user_part(content, "Gemini accepts", |part| {
                    match part {
                        UserPart::Text(text) => push_text(out, text),
                        UserPart::Image(url) => out.push(image(url, flavor)?),
                    }
                    Ok(())
                })
            }
            Said::Assistant(message) => {
                if let Some(content) = &message.content {
                    translate::each_text(content, "assistant", |t| push_text(out, t))?;
                }
                for call in message.tool_calls.iter().flatten() {
                    self.called
                        .insert(call.id.as_ref(), call.function.name.as_ref());
                    out.push(PartOut::Call(CallPart {
                        function_call: FunctionCall {
                            name: call.function.name.clone(),
                            args: arguments(call)?,
                        },
                        thought_signature: signature::of_call(call),
                    }));
                }
                Ok(())
            }
            Said::Tool(id, message) => {
                let name = self.called.get(id.as_ref()).copied().ok_or_else(|| {
                    TranslateError::invalid(
                        "messages",
                        format!(
                            "tool message for {id:?} answers no tool call of an earlier assistant message."
                        ),
                    )
                })?;
                let text = message
                    .content
                    .as_ref()
                    .map(openai_wire::Content::text)
                    .unwrap_or_default();
                out.push(PartOut::FunctionResponse(FunctionResponse {
                    name: Cow::Borrowed(name),
                    response: tool_response(&text),
                }));
                // A function response is JSON: the result's images follow it as parts
                // of the same turn.
                if let Some(openai_wire::Content::Parts(parts)) = &message.content {
                    for part in parts {
                        if let openai_wire::Part::ImageUrl { image_url, .. } = part {
                            out.push(image(&image_url.url, self.flavor)?);
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// A tool call's arguments as the JSON object Gemini's `args` must be.
fn arguments(call: &openai_wire::ToolCall<'_>) -> Result<Value, TranslateError> {
    match translate::arguments(call) {
        Ok(Value::Object(args)) => Ok(Value::Object(args)),
        _ => Err(TranslateError::invalid(
            "messages",
            format!(
                "tool call {:?} has arguments that are not a JSON object.",
                call.id
            ),
        )),
    }
}

/// A tool result as `functionResponse.response`, which must be a JSON object: an
/// object result is sent as it is, anything else as `{"result": value}` (text that is
/// not JSON as a string).
fn tool_response(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => json!({ "result": other }),
        Err(_) => json!({ "result": text }),
    }
}

/// Gemini refuses empty text parts.
fn push_text<'a>(out: &mut Vec<PartOut<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(PartOut::Text(Cow::Borrowed(text)));
    }
}

/// Where the Gemini API's Files API URIs start: the one kind of URL it takes.
pub(super) const FILES_API: &str = "https://generativelanguage.googleapis.com/";

/// An image: data URLs inline; on Vertex, `gs://` and http(s) URLs as `fileData` (which
/// Vertex fetches itself); on AI Studio only Files API URIs, since the Gemini API does
/// not fetch arbitrary URLs (the router fetches those into data URLs beforehand, unless
/// the model's image fetching is off).
fn image(url: &str, flavor: Flavor) -> Result<PartOut<'_>, TranslateError> {
    if let Some(data) = openai_wire::parse_data_url(url) {
        return Ok(PartOut::InlineData(Blob {
            mime_type: data.media_type,
            data: data.data,
        }));
    }
    let fetchable = match flavor {
        Flavor::Vertex => {
            url.starts_with("gs://") || url.starts_with("https://") || url.starts_with("http://")
        }
        Flavor::AiStudio => url.starts_with(FILES_API),
    };
    if !fetchable {
        let message = match flavor {
            Flavor::AiStudio => {
                "the Gemini API takes images as base64 data URLs or Files API URIs; the sidecar fetches http(s) image URLs for it unless the model's imageFetch is disabled."
            }
            Flavor::Vertex => "image_url must be a base64 data URL, a gs:// URI or an http(s) URL.",
        };
        return Err(TranslateError::invalid("messages", message));
    }
    let mime_type = mime_of(url).ok_or_else(|| {
        TranslateError::invalid(
            "messages",
            format!(
                "cannot tell the image type of {url:?}; use a data URL or a URL ending in .png, .jpg, .jpeg, .gif, .webp, .heic, .heif or .pdf."
            ),
        )
    });
    let mime_type = match (flavor, mime_type) {
        (_, Ok(m)) => m,
        // Files API URIs carry no extension; Google knows the file's type.
        (Flavor::AiStudio, Err(_)) => "application/octet-stream",
        (Flavor::Vertex, Err(e)) => return Err(e),
    };
    Ok(PartOut::FileData(FileData {
        mime_type,
        file_uri: url,
    }))
}

/// The media type a URL's extension names.
pub(super) fn mime_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}
