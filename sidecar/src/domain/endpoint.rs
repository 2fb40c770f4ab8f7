//! The API operations the sidecar serves: OpenAI's chat, completions and embeddings,
//! OpenAI's Responses API and Anthropic's Messages API.

/// The API operations the sidecar serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions` (legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic's Messages API).
    Messages,
    /// `POST /v1/responses` (OpenAI's Responses API).
    Responses,
}

impl Endpoint {
    /// All endpoints, in [`Endpoint::index`] order.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Messages,
        Endpoint::Responses,
    ];

    /// The endpoints of OpenAI's original API, which every provider serves (or refuses)
    /// itself; the others may be served through chat (see `provider::bridge`).
    pub const OPENAI: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The endpoint a path below `/v1` names, if any.
    pub fn from_route(route: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == route)
    }

    /// The path below an OpenAI-style base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/messages",
            Endpoint::Responses => "/responses",
        }
    }

    /// Position in per-endpoint tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether requests may ask for `stream: true`.
    pub fn streams(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }

    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
        }
    }

    /// The API whose shapes (errors, stream events) the client expects.
    pub fn api(self) -> Api {
        match self {
            Endpoint::Messages => Api::Anthropic,
            _ => Api::OpenAi,
        }
    }
}

/// The error and event shapes a client expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's (chat, completions, embeddings, responses).
    OpenAi,
    /// Anthropic's (messages).
    Anthropic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_their_endpoint() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_route(endpoint.path()), Some(endpoint));
            assert_eq!(Endpoint::ALL[endpoint.index()], endpoint);
        }
        assert_eq!(Endpoint::from_route("/models"), None);
    }
}
