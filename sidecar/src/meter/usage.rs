//! What tokens cost. Providers report [`Usage`]; costs are integer micro-dollars,
//! rounded up once per request so a ledger of many requests never drifts below what
//! providers bill.

use crate::config::snapshot::Pricing;
pub use crate::domain::Usage;

impl Usage {
    /// The cost at `pricing`, in micro-dollars, rounded up. Prompt tokens read from the
    /// provider's cache use the cached price and those written to it the cache-write
    /// price, each when set, else the input price; reasoning tokens are part of the
    /// completion and priced with it.
    pub fn cost_micros(&self, pricing: &Pricing) -> u64 {
        let or_input = |price: u64| match price {
            0 => pricing.input_micros_per_million,
            price => price,
        };
        let cached = self.cached_tokens.min(self.prompt_tokens);
        let written = self.cache_write_tokens.min(self.prompt_tokens - cached);
        let numerator = u128::from(self.prompt_tokens - cached - written)
            * u128::from(pricing.input_micros_per_million)
            + u128::from(cached) * u128::from(or_input(pricing.cached_input_micros_per_million))
            + u128::from(written)
                * u128::from(or_input(pricing.cache_write_input_micros_per_million))
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
            cache_write_input_micros_per_million: 0,
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
    fn prices_cache_reads_and_writes_apart() {
        let usage = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 100,
            cached_tokens: 6_000,
            cache_write_tokens: 3_000,
            ..Usage::default()
        };
        // Claude Sonnet: $3/M input, $15/M output, $0.30/M cache reads, $3.75/M writes:
        // 1000×3 + 6000×0.3 + 3000×3.75 + 100×15 = 3000 + 1800 + 11250 + 1500.
        let sonnet = Pricing {
            cache_write_input_micros_per_million: 3_750_000,
            ..pricing(3_000_000, 15_000_000, 300_000)
        };
        assert_eq!(usage.cost_micros(&sonnet), 17_550);
        // No cache-write price: writes cost the input price (3000×3 = 9000).
        assert_eq!(
            usage.cost_micros(&pricing(3_000_000, 15_000_000, 300_000)),
            15_300
        );
        // Counts past the prompt never price more tokens than the prompt had.
        let odd = Usage {
            prompt_tokens: 100,
            cached_tokens: 80,
            cache_write_tokens: 50,
            ..Usage::default()
        };
        // 80×0.3 + 20×3.75 = 24 + 75 micro-dollars.
        assert_eq!(odd.cost_micros(&sonnet), 99);
        // The worst case prices the whole prompt at the input price, as before.
        assert_eq!(worst_case_micros(1_000, 0, &sonnet), 3_000);
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
