//! Anthropic through the conformance suite, plus the golden upstream request.

use llmesh_sidecar::config::snapshot::{DeploymentSpec, ProviderKind, SecretString};
use llmesh_tests::MockAnthropic;
use llmesh_tests::anthropic::API_KEY;
use serde_json::{Value, json};

use crate::suite::{Behaviour, Upstream};
use crate::support::{Running, model, post, snapshot};

impl Upstream for MockAnthropic {
    async fn start() -> Self {
        MockAnthropic::start().await
    }

    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
        let model = match behaviour {
            Behaviour::Text => "claude-sonnet-4-5".to_owned(),
            Behaviour::Tools => "claude-tools".to_owned(),
            Behaviour::MaxTokens => "claude-max".to_owned(),
            Behaviour::StopSequence => "claude-stop".to_owned(),
            Behaviour::Error(status) => format!("claude-error-{status}"),
            Behaviour::Malformed => "claude-malformed".to_owned(),
            Behaviour::Cut => "claude-cut".to_owned(),
            Behaviour::Thinking => "claude-thinking".to_owned(),
        };
        let mut d = DeploymentSpec::new("anthropic", ProviderKind::Anthropic, model);
        d.base_url = Some(self.base_url());
        d.api_key = Some(SecretString::new(API_KEY));
        d
    }

    fn bodies(&self) -> Vec<Value> {
        MockAnthropic::bodies(self)
    }

    fn error_statuses(&self) -> Vec<(u16, u16)> {
        // Anthropic's 529 (overloaded) reaches clients as 503.
        let mut statuses = [400, 401, 403, 404, 429, 500].map(|s| (s, s)).to_vec();
        statuses.push((529, 503));
        statuses
    }

    fn structured_schema(&self, sent: &Value) -> Option<Value> {
        // Messages' own `output_config`, or the forced tool chat's `response_format` becomes.
        sent.pointer("/output_config/format/schema")
            .cloned()
            .or_else(|| {
                let tools = sent["tools"].as_array()?;
                let tool = tools.iter().find(|t| t["name"] == "json_response")?;
                (sent["tool_choice"]["name"] == "json_response")
                    .then(|| tool["input_schema"].clone())
            })
    }

    fn tool_image_paths(&self) -> &'static [&'static str] {
        &["$.messages[*].content[*].content[*].source.data"]
    }
}

crate::conformance!(MockAnthropic);
crate::messages_conformance!(
    MockAnthropic,
    messages_stop_sequence_reported,
    messages_tool_result_image,
    messages_thinking,
    messages_structured_output,
);
crate::responses_conformance!(
    MockAnthropic,
    responses_tool_result_image,
    responses_reasoning,
    responses_structured_output,
);

/// The request Anthropic receives for a representative call, field by field.
#[tokio::test]
async fn golden_upstream_request() {
    let up = MockAnthropic::start().await;
    let mut m = model("chat", vec![up.deployment(Behaviour::Tools)]);
    m.default_max_tokens = Some(1024);
    let sidecar = Running::start(Some(snapshot("golden", vec![m]))).await;
    let request = json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Thanks. And tomorrow?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "auto",
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": "END",
        "user": "user-42"
    });
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request).await;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    let sent = up.bodies().pop().unwrap();
    crate::golden::check("anthropic", "chat_tools_vision", &sent);
    let headers = &up.requests()[0].headers;
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(headers["x-api-key"], API_KEY);
    assert!(
        headers.get("authorization").is_none(),
        "the client's key never reaches the upstream"
    );
}

/// Parameters Anthropic cannot honour are refused by name, or dropped and counted when
/// the model says so.
#[tokio::test]
async fn unsupported_parameters_are_refused_or_dropped() {
    let up = MockAnthropic::start().await;
    let strict = model("strict", vec![up.deployment(Behaviour::Text)]);
    let mut lenient = model("lenient", vec![up.deployment(Behaviour::Text)]);
    lenient.drop_unsupported_params = true;
    let sidecar = Running::start(Some(snapshot("params", vec![strict, lenient]))).await;
    let body = |m: &str| json!({"model": m, "messages": [{"role": "user", "content": "hi"}], "seed": 7, "presence_penalty": 0.5});
    let (status, headers, err) = post(sidecar.api, "/v1/chat/completions", body("strict")).await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["code"], "unsupported_parameter");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'presence_penalty'") || message.contains("'seed'"),
        "{message}"
    );
    assert_eq!(crate::support::header(&headers, "x-llmesh-attempts"), "1");
    assert!(up.requests().is_empty(), "nothing was sent upstream");
    let (status, _, ok) = post(sidecar.api, "/v1/chat/completions", body("lenient")).await;
    assert_eq!(status, http::StatusCode::OK, "{ok}");
    let sent = up.bodies().pop().unwrap();
    assert!(sent.get("seed").is_none() && sent.get("presence_penalty").is_none());
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(
            r#"llmesh_dropped_params_total{model="lenient",param="seed",provider="anthropic"} 1"#
        ),
        "{metrics}"
    );
    // A value only the translation sees it cannot honour: two choices from a provider
    // that returns one. Refused naming it, or dropped (and counted) like the others.
    let two =
        |m: &str| json!({"model": m, "messages": [{"role": "user", "content": "hi"}], "n": 2});
    let (status, _, err) = post(sidecar.api, "/v1/chat/completions", two("strict")).await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["code"], "unsupported_parameter");
    assert_eq!(err["error"]["param"], "n");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("n must be 1"),
        "{err}"
    );
    let sent_before = up.requests().len();
    let (status, _, ok) = post(sidecar.api, "/v1/chat/completions", two("lenient")).await;
    assert_eq!(status, http::StatusCode::OK, "{ok}");
    assert_eq!(up.requests().len(), sent_before + 1);
    assert_eq!(ok["choices"].as_array().map(Vec::len), Some(1));
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(
            r#"llmesh_dropped_params_total{model="lenient",param="n",provider="anthropic"} 1"#
        ),
        "{metrics}"
    );
}
