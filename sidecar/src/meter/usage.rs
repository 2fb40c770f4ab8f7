//! Token usage and what it costs. Every dialect hands back OpenAI-shaped answers, so usage
//! is read from one format whatever the provider: the `usage` object of a whole answer,
//! or of a stream's usage chunk. Costs are integer micro-dollars, rounded up once per
//! request so a ledger of many requests never drifts below what providers bill.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::snapshot::Pricing;

/// Tokens one request used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Completion tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// OpenAI's `usage` object, as far as metering reads it.
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// The part of a whole answer read for metering.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    usage: Option<Wire>,
}

impl From<Wire> for Usage {
    fn from(wire: Wire) -> Usage {
        Usage {
            prompt_tokens: wire.prompt_tokens,
            completion_tokens: wire.completion_tokens,
            cached_tokens: wire
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: wire
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Reads an OpenAI `usage` object; `None` when it is absent, null or malformed.
    pub fn from_value(usage: &Value) -> Option<Usage> {
        if !usage.is_object() {
            return None;
        }
        Wire::deserialize(usage).ok().map(Usage::from)
    }

    /// Reads the usage of a whole OpenAI answer. Fails when the body is not a JSON
    /// object (or its `usage` not OpenAI's), which also proves the answer well-formed.
    pub fn from_answer(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
        let answer: Answer = serde_json::from_slice(body)?;
        Ok(answer.usage.map(Usage::from))
    }

    /// The cost at `pricing`, in micro-dollars, rounded up. Cached prompt tokens use the
    /// cached price when one is set, else the input price; reasoning tokens are part of
    /// the completion and priced with it.
    pub fn cost_micros(&self, pricing: &Pricing) -> u64 {
        let cached = self.cached_tokens.min(self.prompt_tokens);
        let cached_price = match pricing.cached_input_micros_per_million {
            0 => pricing.input_micros_per_million,
            price => price,
        };
        let numerator = u128::from(self.prompt_tokens - cached)
            * u128::from(pricing.input_micros_per_million)
            + u128::from(cached) * u128::from(cached_price)
            + u128::from(self.completion_tokens) * u128::from(pricing.output_micros_per_million);
        u64::try_from(numerator.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// The most a call can cost at `pricing`: its estimated prompt plus every completion
/// token it may ask for.
pub fn worst_case_micros(prompt_tokens: u64, max_completion_tokens: u64, pricing: &Pricing) -> u64 {
    Usage {
        prompt_tokens,
        completion_tokens: max_completion_tokens,
        cached_tokens: 0,
        reasoning_tokens: 0,
    }
    .cost_micros(pricing)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pricing(input: u64, output: u64, cached: u64) -> Pricing {
        Pricing {
            input_micros_per_million: input,
            output_micros_per_million: output,
            cached_input_micros_per_million: cached,
        }
    }

    #[test]
    fn reads_details_and_prices_cached_tokens_apart() {
        let usage = Usage::from_value(&json!({
            "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 400},
            "completion_tokens_details": {"reasoning_tokens": 200}
        }))
        .unwrap();
        assert_eq!(usage.cached_tokens, 400);
        assert_eq!(usage.reasoning_tokens, 200);
        // $2.50/M input, $10/M output, $1.25/M cached:
        // 600×2.5 + 400×1.25 + 500×10 = 1500 + 500 + 5000 micro-dollars.
        assert_eq!(
            usage.cost_micros(&pricing(2_500_000, 10_000_000, 1_250_000)),
            7_000
        );
        // No cached price: cached tokens cost the input price.
        assert_eq!(usage.cost_micros(&pricing(2_500_000, 10_000_000, 0)), 7_500);
    }

    #[test]
    fn rounds_up_once_per_request() {
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            ..Usage::default()
        };
        // 0.15 + 0.6 micro-dollars → 1.
        assert_eq!(usage.cost_micros(&pricing(150_000, 600_000, 0)), 1);
        assert_eq!(
            Usage::default().cost_micros(&pricing(150_000, 600_000, 0)),
            0
        );
    }

    #[test]
    fn answers_without_usage_or_with_null_usage_have_none() {
        assert_eq!(Usage::from_answer(br#"{"id":"x"}"#).unwrap(), None);
        assert_eq!(Usage::from_answer(br#"{"usage":null}"#).unwrap(), None);
        assert!(Usage::from_answer(b"not json").is_err());
        let u = Usage::from_answer(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(u.total(), 7);
    }

    #[test]
    fn worst_case_counts_every_allowed_completion_token() {
        assert_eq!(
            worst_case_micros(100, 1000, &pricing(1_000_000, 2_000_000, 0)),
            2_100
        );
    }
}
