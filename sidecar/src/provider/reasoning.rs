//! How much a chat call asks its model to reason, read once for every dialect that maps
//! it onto a provider's reasoning configuration (Anthropic, Claude on Vertex AI and on
//! Bedrock, Amazon Nova 2, OpenAI's gpt-oss on Bedrock).
//!
//! A chat call says it with OpenAI's `reasoning_effort` (`none`, `minimal`, `low`,
//! `medium`, `high`, `xhigh`), or with Anthropic's `thinking` object, which chat clients
//! written for Claude send as an extension field: `{"type":"enabled","budget_tokens":N}`,
//! `{"type":"adaptive"}` or `{"type":"disabled"}`. `thinking` is the more precise of
//! the two and wins when both are sent.
//!
//! | asked | effort | thinking budget |
//! |---|---|---|
//! | `minimal`, `low` | low | 1024 |
//! | `medium` | medium | 4096 |
//! | `high`, `xhigh` | high | 16384 |
//! | `thinking` enabled, `budget_tokens` ≤ 1024 / ≤ 8192 / more | low / medium / high | `budget_tokens` |
//! | `thinking` adaptive | the model's own (medium where a level is needed) | 4096 |
//! | `none`, `thinking` disabled, absent | no reasoning | — |
//!
//! The budget-to-effort thresholds are those the Messages bridge uses to restate
//! `thinking` as `reasoning_effort`, so a budget means the same effort on every path.

use serde_json::Value;

use crate::provider::TranslateError;
use crate::provider::openai_wire::ChatRequest;

/// Output tokens kept for the answer above a thinking budget: Anthropic counts
/// thinking inside `max_tokens`, so a limit at or under the budget leaves no room.
pub const ANSWER_ROOM: u32 = 1024;

/// An effort level, as the providers that take levels name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    /// A little reasoning.
    Low,
    /// Some.
    Medium,
    /// Much.
    High,
}

impl Effort {
    /// The thinking budget (tokens) this effort stands for.
    pub fn budget(self) -> u32 {
        match self {
            Effort::Low => 1024,
            Effort::Medium => 4096,
            Effort::High => 16384,
        }
    }

    /// The effort a thinking budget stands for.
    pub fn of_budget(budget: u32) -> Effort {
        match budget {
            0..=1024 => Effort::Low,
            1025..=8192 => Effort::Medium,
            _ => Effort::High,
        }
    }

    /// `low`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

/// The reasoning a call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reasoning {
    /// A level (`reasoning_effort`).
    Effort(Effort),
    /// A thinking budget in tokens (`thinking` enabled).
    Budget(u32),
    /// As much as the model judges it needs (`thinking` adaptive).
    Adaptive,
}

impl Reasoning {
    /// The thinking budget, for providers that take one.
    pub fn budget(self) -> u32 {
        match self {
            Reasoning::Effort(e) => e.budget(),
            Reasoning::Budget(n) => n,
            Reasoning::Adaptive => Effort::Medium.budget(),
        }
    }

    /// The effort level; `None` for adaptive thinking, which leaves it to the model.
    pub fn effort(self) -> Option<Effort> {
        match self {
            Reasoning::Effort(e) => Some(e),
            Reasoning::Budget(n) => Some(Effort::of_budget(n)),
            Reasoning::Adaptive => None,
        }
    }

    /// The effort level, medium for adaptive thinking, for providers that need one.
    pub fn level(self) -> Effort {
        self.effort().unwrap_or(Effort::Medium)
    }
}

/// What a call asked, and the parameter it asked with (named when a provider refuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The reasoning asked for.
    pub reasoning: Reasoning,
    /// `thinking` or `reasoning_effort`.
    pub param: &'static str,
}

/// The reasoning `req` asks for; `None` when it asks for none. A malformed `thinking`
/// or an unknown effort is refused as invalid.
pub fn requested(req: &ChatRequest<'_>) -> Result<Option<Asked>, TranslateError> {
    if let Some(thinking) = req.thinking.as_ref().filter(|t| !t.is_null()) {
        return Ok(thinking_asks(thinking)?.map(|reasoning| Asked {
            reasoning,
            param: "thinking",
        }));
    }
    let Some(effort) = req.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let effort = match effort {
        // `none` asks for no reasoning (Codex sends it for some models).
        "none" => return Ok(None),
        "minimal" | "low" => Effort::Low,
        "medium" => Effort::Medium,
        "high" | "xhigh" => Effort::High,
        other => {
            return Err(TranslateError::invalid(
                "reasoning_effort",
                format!("unknown effort {other:?}"),
            ));
        }
    };
    Ok(Some(Asked {
        reasoning: Reasoning::Effort(effort),
        param: "reasoning_effort",
    }))
}

/// Reads Anthropic's `thinking` object.
fn thinking_asks(thinking: &Value) -> Result<Option<Reasoning>, TranslateError> {
    let invalid = |message: &str| TranslateError::invalid("thinking", message);
    let kind = thinking
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                "thinking must be an object with a type: enabled (with budget_tokens), \
                 adaptive or disabled.",
            )
        })?;
    match kind {
        "enabled" => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("thinking.budget_tokens must be a positive integer."))?;
            Ok(Some(Reasoning::Budget(budget)))
        }
        "adaptive" => Ok(Some(Reasoning::Adaptive)),
        "disabled" => Ok(None),
        other => Err(TranslateError::invalid(
            "thinking",
            format!("thinking.type must be enabled, adaptive or disabled, not {other:?}."),
        )),
    }
}

/// `max_tokens` raised, when needed, above a thinking `budget` with room for the answer.
pub fn with_room(max_tokens: u32, budget: u32) -> u32 {
    max_tokens.max(budget.saturating_add(ANSWER_ROOM))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn asked(body: Value) -> Result<Option<Asked>, TranslateError> {
        let map = body.as_object().cloned().unwrap_or_default();
        let req = ChatRequest::deserialize(&map).unwrap();
        requested(&req)
    }

    fn reasoning(body: Value) -> Option<Reasoning> {
        asked(body).unwrap().map(|a| a.reasoning)
    }

    #[test]
    fn efforts_map_to_levels_and_budgets() {
        for (effort, level, budget) in [
            ("minimal", Effort::Low, 1024),
            ("low", Effort::Low, 1024),
            ("medium", Effort::Medium, 4096),
            ("high", Effort::High, 16384),
            ("xhigh", Effort::High, 16384),
        ] {
            let r = reasoning(json!({"messages": [], "reasoning_effort": effort})).unwrap();
            assert_eq!(r, Reasoning::Effort(level), "{effort}");
            assert_eq!(r.budget(), budget, "{effort}");
            assert_eq!(r.effort(), Some(level));
        }
        assert_eq!(
            reasoning(json!({"messages": [], "reasoning_effort": "none"})),
            None
        );
        assert_eq!(reasoning(json!({"messages": []})), None);
        let err = asked(json!({"messages": [], "reasoning_effort": "huge"})).unwrap_err();
        assert!(matches!(
            err,
            TranslateError::Invalid {
                param: "reasoning_effort",
                ..
            }
        ));
    }

    #[test]
    fn thinking_wins_and_budgets_map_to_levels() {
        let a = asked(json!({"messages": [], "reasoning_effort": "low",
            "thinking": {"type": "enabled", "budget_tokens": 5000}}))
        .unwrap()
        .unwrap();
        assert_eq!(a.reasoning, Reasoning::Budget(5000));
        assert_eq!(a.param, "thinking");
        assert_eq!(a.reasoning.budget(), 5000);
        assert_eq!(a.reasoning.effort(), Some(Effort::Medium));
        for (budget, level) in [
            (1024, Effort::Low),
            (1025, Effort::Medium),
            (8192, Effort::Medium),
            (8193, Effort::High),
        ] {
            assert_eq!(Effort::of_budget(budget), level, "{budget}");
        }
        let adaptive = reasoning(json!({"messages": [], "thinking": {"type": "adaptive"}}));
        assert_eq!(adaptive, Some(Reasoning::Adaptive));
        assert_eq!(Reasoning::Adaptive.effort(), None);
        assert_eq!(Reasoning::Adaptive.level(), Effort::Medium);
        assert_eq!(Reasoning::Adaptive.budget(), 4096);
        // Disabled thinking overrides an effort: the client said no.
        let off =
            json!({"messages": [], "reasoning_effort": "high", "thinking": {"type": "disabled"}});
        assert_eq!(reasoning(off), None);
    }

    #[test]
    fn malformed_thinking_is_invalid() {
        for bad in [
            json!(true),
            json!({"budget_tokens": 2048}),
            json!({"type": "enabled"}),
            json!({"type": "enabled", "budget_tokens": 0}),
            json!({"type": "enabled", "budget_tokens": "lots"}),
            json!({"type": "sometimes"}),
        ] {
            let err = asked(json!({"messages": [], "thinking": bad})).unwrap_err();
            assert!(
                matches!(
                    err,
                    TranslateError::Invalid {
                        param: "thinking",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn room_is_made_for_the_answer() {
        assert_eq!(with_room(300, 1024), 2048);
        assert_eq!(with_room(20_000, 4096), 20_000);
        assert_eq!(with_room(5, u32::MAX), u32::MAX);
    }
}
