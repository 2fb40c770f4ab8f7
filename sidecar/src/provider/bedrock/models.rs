//! What a Bedrock model id says about the model's features, where Converse leaves them
//! to the model: how it takes reasoning, whether it has native structured output, and
//! whether it takes Anthropic's `tool_choice` (for `disable_parallel_tool_use`).
//!
//! Ids may be foundation model ids (`anthropic.claude-sonnet-4-5-20250929-v1:0`),
//! cross-region inference profiles (`us.anthropic.claude…`, `global.…`) or ARNs ending
//! in either. Application inference profiles, whose ARN does not name the model, are
//! [`Family::Other`]: the features below are refused for them rather than guessed.
//!
//! | family | ids | reasoning | native structured output |
//! |---|---|---|---|
//! | Claude 3.7 – 4.5 | `anthropic.claude-3-7-…`, `…-sonnet-4-…`, `…-opus-4-1-…`, `…-4-5-…` | `thinking` enabled with a budget | from 4.5 |
//! | Claude 4.6 and later, Mythos, Fable | `…-opus-4-6-v1`, `…-sonnet-4-6`, `…-opus-4-7`, `…-5`, `…-mythos-…`, `…-fable-…` | adaptive `thinking` with `output_config.effort` | yes |
//! | older Claude | `anthropic.claude-3-…`, `-3-5-…`, `-instant-…`, `-v2` | none | no |
//! | Amazon Nova 2 | `amazon.nova-2-…` | `reasoningConfig` with `maxReasoningEffort` | no |
//! | OpenAI gpt-oss | `openai.gpt-oss-…` | `reasoning_effort` | no |

/// A model family, as far as the features above go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Claude.
    Claude(Claude),
    /// Amazon Nova 2, which takes `reasoningConfig`.
    Nova2,
    /// OpenAI's open-weight gpt-oss models, which take `reasoning_effort`.
    GptOss,
    /// Any other model.
    Other,
}

/// How a Claude model takes extended thinking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thinking {
    /// It does not think.
    None,
    /// `{"type":"enabled","budget_tokens":N}`.
    Budget,
    /// `{"type":"adaptive"}` with `output_config.effort` (Claude 4.6 and later, where a
    /// budget is deprecated or, from Opus 4.7, refused).
    Adaptive,
}

/// A Claude model's generation, read from its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claude {
    /// Major and minor version (`(4, 5)`); `None` when the id names none (Mythos
    /// Preview), which only the newest models do.
    pub version: Option<(u32, u32)>,
}

impl Claude {
    /// How it thinks.
    pub fn thinking(self) -> Thinking {
        match self.version {
            None => Thinking::Adaptive,
            Some(v) if v >= (4, 6) => Thinking::Adaptive,
            Some(v) if v >= (3, 7) => Thinking::Budget,
            Some(_) => Thinking::None,
        }
    }

    /// Whether Converse's `outputConfig.textFormat` (structured output) serves it:
    /// Claude Sonnet, Haiku and Opus 4.5 and everything later.
    pub fn structured_output(self) -> bool {
        self.version.is_none_or(|v| v >= (4, 5))
    }
}

impl Family {
    /// The family of a model id, inference profile id or ARN.
    pub fn of(model: &str) -> Family {
        let id = model.rsplit('/').next().unwrap_or(model);
        // A cross-region inference profile prefixes the model id with its geography.
        let id = match id.split_once('.') {
            Some((prefix, rest)) if !matches!(prefix, "anthropic" | "amazon" | "openai") => rest,
            _ => id,
        };
        if let Some(rest) = id.strip_prefix("anthropic.claude-") {
            return Family::Claude(claude(rest));
        }
        if id.starts_with("amazon.nova-2-") {
            return Family::Nova2;
        }
        if id.starts_with("openai.gpt-oss-") {
            return Family::GptOss;
        }
        Family::Other
    }

    /// The Claude model, if it is one.
    pub fn claude(self) -> Option<Claude> {
        match self {
            Family::Claude(c) => Some(c),
            _ => None,
        }
    }
}

/// Reads the version of a Claude id after `anthropic.claude-`: the first number of one
/// or two digits, and the next dash-separated token as its minor version when it is one
/// too (dates have eight digits): `3-5-sonnet-20240620-v1:0` is 3.5,
/// `sonnet-4-20250514-v1:0` 4.0, `opus-4-1-20250805-v1:0` 4.1, `opus-4-6-v1` 4.6,
/// `fable-5` 5.0. Ids without a version are the newest families (`mythos-preview`),
/// except the first generations (`instant-v1`, `v2`), which are the oldest.
fn claude(rest: &str) -> Claude {
    let small = |t: &str| {
        (!t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u32>().ok())
            .flatten()
    };
    if rest.starts_with("instant") || rest.starts_with('v') {
        return Claude {
            version: Some((2, 0)),
        };
    }
    let tokens: Vec<&str> = rest.split(['-', ':']).collect();
    let version = tokens.iter().position(|t| small(t).is_some()).map(|i| {
        let major = tokens.get(i).and_then(|t| small(t)).unwrap_or(0);
        let minor = tokens.get(i + 1).and_then(|t| small(t)).unwrap_or(0);
        (major, minor)
    });
    Claude { version }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_name_their_family_and_generation() {
        let cases = [
            ("anthropic.claude-3-haiku-20240307-v1:0", Some((3, 0))),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0", Some((3, 5))),
            ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", Some((3, 7))),
            ("anthropic.claude-sonnet-4-20250514-v1:0", Some((4, 0))),
            ("anthropic.claude-opus-4-1-20250805-v1:0", Some((4, 1))),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some((4, 5)),
            ),
            ("anthropic.claude-haiku-4-5-20251001-v1:0", Some((4, 5))),
            ("anthropic.claude-opus-4-6-v1", Some((4, 6))),
            ("eu.anthropic.claude-sonnet-4-6", Some((4, 6))),
            ("anthropic.claude-opus-4-7", Some((4, 7))),
            ("anthropic.claude-fable-5-1", Some((5, 1))),
            ("anthropic.claude-sonnet-5", Some((5, 0))),
            ("anthropic.claude-mythos-preview", None),
            ("anthropic.claude-instant-v1", Some((2, 0))),
            ("anthropic.claude-v2:1", Some((2, 0))),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-5-20251101-v1:0",
                Some((4, 5)),
            ),
        ];
        for (id, version) in cases {
            assert_eq!(Family::of(id), Family::Claude(Claude { version }), "{id}");
        }
        assert_eq!(Family::of("us.amazon.nova-2-lite-v1:0"), Family::Nova2);
        assert_eq!(Family::of("amazon.nova-pro-v1:0"), Family::Other);
        assert_eq!(Family::of("openai.gpt-oss-120b-1:0"), Family::GptOss);
        assert_eq!(Family::of("deepseek.r1-v1:0"), Family::Other);
        assert_eq!(
            Family::of(
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
            ),
            Family::Other
        );
    }

    #[test]
    fn generations_decide_thinking_and_structured_output() {
        let of = |id: &str| Family::of(id).claude().unwrap();
        let cases = [
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                Thinking::None,
                false,
            ),
            (
                "anthropic.claude-3-7-sonnet-20250219-v1:0",
                Thinking::Budget,
                false,
            ),
            (
                "anthropic.claude-opus-4-1-20250805-v1:0",
                Thinking::Budget,
                false,
            ),
            (
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                Thinking::Budget,
                true,
            ),
            ("anthropic.claude-opus-4-6-v1", Thinking::Adaptive, true),
            ("anthropic.claude-mythos-preview", Thinking::Adaptive, true),
            ("anthropic.claude-v2", Thinking::None, false),
        ];
        for (id, thinking, structured) in cases {
            assert_eq!(of(id).thinking(), thinking, "{id}");
            assert_eq!(of(id).structured_output(), structured, "{id}");
        }
    }
}
