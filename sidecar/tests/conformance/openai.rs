//! OpenAI through the conformance suite: the reference the other providers translate
//! to, passed through as it comes, so the suite checks the pass-through keeps OpenAI's
//! own answers, errors and streams intact.

use llmesh_sidecar::config::snapshot::{DeploymentSpec, ProviderKind};
use llmesh_tests::MockOpenAi;
use serde_json::Value;

use crate::suite::{Behaviour, Upstream, mock_model};

impl Upstream for MockOpenAi {
    async fn start() -> Self {
        MockOpenAi::start().await
    }

    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
        let model = mock_model(behaviour, "gpt-4o-mini");
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

    fn structured_schema(&self, sent: &Value) -> Option<Value> {
        // Chat's `response_format` (Messages through chat), or Responses' own.
        sent.pointer("/response_format/json_schema/schema")
            .or_else(|| sent.pointer("/text/format/schema"))
            .cloned()
    }

    fn tool_image_paths(&self) -> &'static [&'static str] {
        // An image part of a chat `tool` message; a Responses `function_call_output` as sent.
        &[
            "$.messages[*].content[*].image_url.url",
            "$.input[*].output[*].image_url",
        ]
    }
}

crate::conformance!(MockOpenAi);
// The mock reasons in neither API, so no thinking case.
crate::messages_conformance!(
    MockOpenAi,
    messages_stop_sequence_via_chat,
    messages_tool_result_image,
    messages_structured_output,
);
crate::responses_conformance!(
    MockOpenAi,
    responses_tool_result_image,
    responses_structured_output
);
