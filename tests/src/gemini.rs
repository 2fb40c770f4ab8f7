//! A scriptable, in-process mock of Google's Gemini API (AI Studio) and Vertex AI,
//! with the OAuth 2.0 token endpoint Vertex clients get their access tokens from.
//!
//! [`MockGemini::start`] binds an ephemeral port on 127.0.0.1 and serves, in Google's
//! exact wire format:
//!
//! * AI Studio: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//!   (`?alt=sse` gives SSE events, `data: {GenerateContentResponse}` framed with CRLF
//!   and no `[DONE]`; without it Google streams one JSON array), `:embedContent`,
//!   `:batchEmbedContents` — authenticated by `x-goog-api-key` (or `?key=`) equal to
//!   [`API_KEY`];
//! * Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`,
//!   `:streamGenerateContent`, `:predict` (text embeddings), `:embedContent` —
//!   authenticated by `Authorization: Bearer` with a token this mock (or an identity
//!   mock sharing its [`tokens`](MockGemini::tokens)) issued and that has not expired;
//!   the project must be [`PROJECT`];
//! * `POST /token`: the service-account JWT exchange, verifying the RS256 signature
//!   against the test key and the `iss`, `aud`, `scope`, `iat` and `exp` claims.
//!
//! Requests are checked as strictly as Google checks them (unknown fields, JSON-schema
//! keywords outside Gemini's subset, turn order, function call/response pairing,
//! base64 of inline data, at most 100 requests in a batch, thought signatures; see
//! `validate` and `thought`), so what passes here is what Google would accept.
//! [`MockGemini::set_strict`] turns that off.
//!
//! Tests script replies as with every mock ([`crate::mock`]; [`Reply::chunks`] streams
//! these `GenerateContentResponse`s, framed as the request asks) or by model name, with
//! [`Reply::ok`] in effect:
//!
//! | model | answer |
//! |---|---|
//! | anything else | `mock reply to: <last user text>` (images noted as `[mime N bytes]`), stop sequences and `maxOutputTokens` honoured (`MAX_TOKENS`), `candidateCount` candidates, JSON fitting `responseSchema` in JSON mode; mode `ANY` forces a function call |
//! | `mock-tool-call` / `mock-parallel-tools` | one / every declared function called (finish `STOP`: Gemini has no tool-call finish reason), arguments filled from the schema (`"mock-<field>"`, 1, 1.5, true); a turn of function responses is answered `mock saw tool results: name={...}` |
//! | `mock-two-cities` | the first declared function called twice, with `{"city":"Paris"}` and `{"city":"Rome"}` |
//! | `mock-max-tokens` | half the reply, finish `MAX_TOKENS`, whatever the limit |
//! | `mock-thinking` | 7 thinking tokens; a thought part when `thinkingConfig.includeThoughts` |
//! | `mock-cached` | half the prompt reported as `cachedContentTokenCount` |
//! | `mock-blocked` | `promptFeedback.blockReason: SAFETY`, no candidates |
//! | `mock-safety` / `mock-recitation` | finish `SAFETY` (no content, a blocked rating) / `RECITATION` |
//! | `mock-error-<code>` | Google's error for 400/401/403/404/429/500/503/504 (429 with `RetryInfo`) |
//! | `mock-context-length` | 400: input token count exceeds the maximum |
//! | `mock-malformed` | 200 with truncated JSON, or a stream whose first event is garbled |
//! | `mock-garbled-stream` | a stream with one sound chunk, then a garbled one |
//! | `mock-stream-cut` | the connection cut after two chunks (one frame for whole bodies) |
//! | `mock-stream-error` | one chunk, then `data: {"error": {...UNAVAILABLE}}` |
//! | `mock-slow-<ms>` | the normal answer after a wait |
//! | `gemini-3…` | signs its answers (`thoughtSignature` on the first function call, else the last part) and refuses a current turn whose first function call is unsigned, as Gemini 3 does; `gemini-3-<name>` otherwise behaves as `<name>` |
//! | `…mock-no-usage…` | embedding answers without `usageMetadata`, as the Gemini API's older surfaces |

mod auth;
mod behave;
mod embed;
mod handle;
mod oauth;
mod render;
mod thought;
mod validate;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::mock::Mock;
pub use crate::mock::{Recorded, Reply};
pub use behave::THOUGHT_TEXT;
pub use oauth::{
    CLIENT_EMAIL, PRIVATE_KEY_ID, PROJECT, SCOPE, TEST_PRIVATE_KEY_PEM, service_account_json,
};

use oauth::Issuer;

/// The API key AI Studio paths accept.
pub const API_KEY: &str = "mock-gemini-api-key";

const JSON: &str = "application/json; charset=UTF-8";
const EVENT_STREAM: &str = "text/event-stream";

/// Google's wire formats, checks and token endpoint, for the mock core.
pub struct Gemini {
    next_id: AtomicU64,
    issuer: Issuer,
    strict: AtomicBool,
}

impl Default for Gemini {
    fn default() -> Self {
        Gemini {
            next_id: AtomicU64::new(1),
            issuer: Issuer::new(),
            strict: AtomicBool::new(true),
        }
    }
}

/// A running mock Gemini and Vertex AI.
pub type MockGemini = Mock<Gemini>;

impl Mock<Gemini> {
    /// `http://127.0.0.1:PORT/v1beta`, standing in for
    /// `https://generativelanguage.googleapis.com/v1beta`.
    pub fn ai_studio_base(&self) -> String {
        format!("{}/v1beta", self.base_url())
    }

    /// `http://127.0.0.1:PORT`, standing in for `https://{location}-aiplatform.googleapis.com`.
    pub fn vertex_base(&self) -> String {
        self.base_url()
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// A service-account key file whose `token_uri` is this mock's.
    pub fn service_account_json(&self) -> String {
        service_account_json(&self.token_url())
    }

    /// Whether requests are checked as Google checks them (on by default).
    pub fn set_strict(&self, strict: bool) {
        self.provider().strict.store(strict, Ordering::SeqCst);
    }

    /// The requests to model paths (everything but `/token`).
    pub fn model_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }

    /// How long tokens issued from now on live (`expires_in`); 3599 s by default.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.provider().issuer.set_lifetime(lifetime);
    }

    /// Makes every token request fail with this status and OAuth error body, or
    /// succeed again with `None`.
    pub fn fail_token_requests(&self, failure: Option<(u16, Value)>) {
        self.provider().issuer.set_failure(failure);
    }

    /// How many access tokens its own token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.provider().issuer.issued()
    }

    /// The tokens Vertex AI paths accept: the identity mocks ([`crate::identity`])
    /// issue into it, so the tokens of GKE's metadata server and of workload identity
    /// federation authenticate here too.
    pub fn tokens(&self) -> crate::identity::Tokens {
        self.provider().issuer.tokens.clone()
    }

    /// Invalidates every token issued so far.
    pub fn revoke_tokens(&self) {
        self.provider().issuer.revoke_all();
    }
}

#[cfg(test)]
mod tests;
