//! The benchmark's scenarios: what is asked (a chat answer, a stream, embeddings, a
//! streamed Messages call from an Anthropic client), in
//! which provider's format the upstream answers (OpenAI: pass-through; Anthropic: the
//! sidecar translates), and how each target is called for it, so that the direct call
//! and the proxied ones do the same work at the upstream.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::load::RequestSpec;

/// What is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole chat completion.
    Chat,
    /// A streamed chat completion.
    Stream,
    /// One embedding.
    Embed,
    /// A streamed call to Anthropic's Messages API (`/v1/messages`), as Claude Code makes
    /// one: served natively by an Anthropic upstream, through chat by an OpenAI one. The
    /// direct call is the upstream's own stream.
    Messages,
}

/// Which wire format the upstream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// OpenAI's: the proxy passes the call through.
    OpenAi,
    /// Anthropic's Messages API: the proxy translates.
    Anthropic,
}

/// One scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// What is asked.
    pub kind: Kind,
    /// Who answers.
    pub upstream: Upstream,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Chat => "chat",
            Kind::Stream => "stream",
            Kind::Embed => "embed",
            Kind::Messages => "messages",
        };
        let upstream = match self.upstream {
            Upstream::OpenAi => "openai",
            Upstream::Anthropic => "anthropic",
        };
        write!(f, "{kind} {upstream}")
    }
}

/// Who is called.
#[derive(Clone, Debug)]
pub enum Target {
    /// The mock upstream itself, in its own format.
    Direct(SocketAddr),
    /// The llmesh sidecar.
    Llmesh(SocketAddr),
    /// LiteLLM's proxy, with its master key.
    Litellm(SocketAddr, String),
}

impl Target {
    /// The name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Direct(_) => "direct",
            Target::Llmesh(_) => "llmesh",
            Target::Litellm(..) => "litellm",
        }
    }
}

/// Model names the proxies are configured with (`scripts/bench.sh` writes both configs).
pub const MODEL_CHAT_OPENAI: &str = "chat-openai";
/// The Anthropic-backed chat model.
pub const MODEL_CHAT_ANTHROPIC: &str = "chat-anthropic";
/// The OpenAI embeddings model.
pub const MODEL_EMBED: &str = "embed-openai";

/// About 1 KB of prompt text, the same for every request (a proxy that cached on
/// content would be measuring something else, and none of these does).
fn prompt() -> String {
    let sentence = "Summarise the following notes on the quarterly platform review in three short bullet points. ";
    let mut text = String::with_capacity(1100);
    while text.len() < 1000 {
        text.push_str(sentence);
    }
    text
}

const SYSTEM: &str = "You are a terse assistant.";
const MAX_TOKENS: u32 = 128;

/// The request a target gets for a scenario.
pub fn request(scenario: Scenario, target: &Target) -> RequestSpec {
    let stream = matches!(scenario.kind, Kind::Stream | Kind::Messages);
    let openai_chat = |model: &str| {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt()}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0.2,
        });
        if stream {
            body["stream"] = Value::Bool(true);
        }
        body
    };
    let embed = |model: &str| json!({"model": model, "input": prompt()});
    let (addr, path, body, headers, expect) = match target {
        Target::Direct(addr) => match (scenario.kind, scenario.upstream) {
            (Kind::Embed, _) => (
                *addr,
                "/v1/embeddings",
                embed("text-embedding-3-small"),
                vec![bearer("sk-bench")],
                "\"embedding\"",
            ),
            (_, Upstream::OpenAi) => (
                *addr,
                "/v1/chat/completions",
                openai_chat("gpt-4o-mini"),
                vec![bearer("sk-bench")],
                if stream { "[DONE]" } else { "chat.completion" },
            ),
            (_, Upstream::Anthropic) => {
                let mut body = json!({
                    "model": "claude-3-5-haiku-latest",
                    "max_tokens": MAX_TOKENS,
                    "temperature": 0.2,
                    "system": SYSTEM,
                    "messages": [{"role": "user", "content": prompt()}],
                });
                if stream {
                    body["stream"] = Value::Bool(true);
                }
                (
                    *addr,
                    "/v1/messages",
                    body,
                    vec![
                        header("x-api-key", "sk-ant-bench"),
                        header("anthropic-version", "2023-06-01"),
                    ],
                    if stream {
                        "message_stop"
                    } else {
                        "\"type\":\"message\""
                    },
                )
            }
        },
        Target::Llmesh(addr) | Target::Litellm(addr, _) => {
            let headers = match target {
                Target::Litellm(_, key) => vec![bearer(key)],
                _ => Vec::new(),
            };
            let model = match (scenario.kind, scenario.upstream) {
                (Kind::Embed, _) => MODEL_EMBED,
                (_, Upstream::OpenAi) => MODEL_CHAT_OPENAI,
                (_, Upstream::Anthropic) => MODEL_CHAT_ANTHROPIC,
            };
            match scenario.kind {
                Kind::Messages => {
                    let mut headers = headers;
                    headers.push(header("anthropic-version", "2023-06-01"));
                    let body = json!({
                        "model": model,
                        "max_tokens": MAX_TOKENS,
                        "temperature": 0.2,
                        "stream": true,
                        "system": SYSTEM,
                        "messages": [{"role": "user", "content": prompt()}],
                    });
                    (*addr, "/v1/messages", body, headers, "message_stop")
                }
                Kind::Embed => (
                    *addr,
                    "/v1/embeddings",
                    embed(model),
                    headers,
                    "\"embedding\"",
                ),
                Kind::Chat => (
                    *addr,
                    "/v1/chat/completions",
                    openai_chat(model),
                    headers,
                    "chat.completion",
                ),
                Kind::Stream => (
                    *addr,
                    "/v1/chat/completions",
                    openai_chat(model),
                    headers,
                    "[DONE]",
                ),
            }
        }
    };
    RequestSpec {
        addr,
        path,
        headers,
        body: Bytes::from(body.to_string()),
        expect,
    }
}

fn bearer(token: &str) -> (HeaderName, HeaderValue) {
    let value = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-key"));
    (AUTHORIZATION, value)
}

fn header(name: &'static str, value: &'static str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_about_a_kilobyte_and_targets_get_their_format() {
        assert!((1000..1100).contains(&prompt().len()));
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let anthropic = Scenario {
            kind: Kind::Stream,
            upstream: Upstream::Anthropic,
        };
        let direct = request(anthropic, &Target::Direct(addr));
        assert_eq!(direct.path, "/v1/messages");
        let proxied = request(anthropic, &Target::Llmesh(addr));
        assert_eq!(proxied.path, "/v1/chat/completions");
        let body: Value = serde_json::from_slice(&proxied.body).unwrap();
        assert_eq!(body["model"], MODEL_CHAT_ANTHROPIC);
        assert_eq!(body["stream"], true);
        let messages = Scenario {
            kind: Kind::Messages,
            upstream: Upstream::OpenAi,
        };
        let proxied = request(messages, &Target::Llmesh(addr));
        assert_eq!(proxied.path, "/v1/messages");
        assert_eq!(proxied.expect, "message_stop");
        let body: Value = serde_json::from_slice(&proxied.body).unwrap();
        assert_eq!(body["model"], MODEL_CHAT_OPENAI);
        // The direct call is the upstream's own stream.
        assert_eq!(request(messages, &Target::Direct(addr)).expect, "[DONE]");
    }
}
