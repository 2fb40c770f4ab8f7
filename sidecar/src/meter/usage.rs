//! What tokens cost. Providers report [`Usage`]; costs are integer micro-dollars,
//! rounded up once per request so a ledger of many requests never drifts below what
//! providers bill.

use crate::config::snapshot::Pricing;
pub use crate::domain::Usage;

impl Usage {
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
        ..Usage::default()
    }
    .cost_micros(pricing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing(input: u64, output: u64, cached: u64) -> Pricing {
        Pricing {
            input_micros_per_million: input,
            output_micros_per_million: output,
            cached_input_micros_per_million: cached,
        }
    }

    #[test]
    fn prices_cached_tokens_apart() {
        let usage = Usage {
            prompt_tokens: 1000,
            completion_tokens: 500,
            cached_tokens: 400,
            reasoning_tokens: 200,
            ..Usage::default()
        };
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
    fn worst_case_counts_every_allowed_completion_token() {
        assert_eq!(
            worst_case_micros(100, 1000, &pricing(1_000_000, 2_000_000, 0)),
            2_100
        );
    }
}
