//! What a request costs, exactly, in integer micro-USD: the real cost of the
//! usage an upstream reported, and the largest cost a request can reach
//! (the hold reserved before it is forwarded).
//!
//! Prices are per million tokens, so a cost is `tokens * price / 1_000_000`,
//! computed in `u128` (the catalog's bounds keep it far inside an `i64`) and
//! rounded up to the micro-USD: the operator never sells below cost.

use clawplane_domain::MicroUsd;
use serde::{Deserialize, Serialize};

use crate::catalog::{Model, Prices};

/// Tokens per million, the unit prices are quoted in.
const PER_MILLION: u128 = 1_000_000;
/// Request bytes per estimated input token, rounded up: tokenizers average
/// about four bytes of English per token, so three over-estimates.
pub const BYTES_PER_INPUT_TOKEN: u64 = 3;

/// Token counts as OpenAI's `usage` reports them. `cached_tokens`
/// (`prompt_tokens_details.cached_tokens`) is a part of `prompt_tokens`,
/// not in addition to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Every prompt token, cached ones included.
    pub prompt_tokens: u64,
    /// Completion tokens (reasoning tokens included).
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

impl Usage {
    /// Prompt plus completion tokens, as rate limits count them.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// The cost of `usage` at `prices`, rounded up to the micro-USD. Cached
/// tokens beyond the prompt tokens (an upstream's mistake) count as prompt
/// tokens at the cached price.
pub fn usage_cost(prices: &Prices, usage: &Usage) -> MicroUsd {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens - cached;
    let scaled = u128::from(uncached) * price(prices.input_per_million)
        + u128::from(cached) * price(prices.cached_per_million)
        + u128::from(usage.completion_tokens) * price(prices.output_per_million);
    micro_usd(scaled.div_ceil(PER_MILLION))
}

/// The prompt tokens a request body of `body_len` bytes may hold, at most:
/// its length over [`BYTES_PER_INPUT_TOKEN`] rounded up, capped by the
/// model's context window.
pub fn input_estimate(model: &Model, body_len: usize) -> u64 {
    let bytes = u64::try_from(body_len).unwrap_or(u64::MAX);
    bytes
        .div_ceil(BYTES_PER_INPUT_TOKEN)
        .min(u64::from(model.context_window))
}

/// The completion tokens a request may produce: what it asked for
/// (`max_completion_tokens` or `max_tokens`), or the model's
/// `max_output_tokens` when it asked for none or more.
pub fn output_cap(model: &Model, requested: Option<u64>) -> u64 {
    let cap = u64::from(model.max_output_tokens);
    requested.map_or(cap, |asked| asked.min(cap))
}

/// The largest cost a request can reach: [`input_estimate`] at the input
/// price plus [`output_cap`] at the output price, rounded up. This is the
/// hold reserved before the request is forwarded.
pub fn max_cost(model: &Model, body_len: usize, requested_output: Option<u64>) -> MicroUsd {
    let input = input_estimate(model, body_len);
    let output = output_cap(model, requested_output);
    let scaled = u128::from(input) * price(model.prices.input_per_million)
        + u128::from(output) * price(model.prices.output_per_million);
    micro_usd(scaled.div_ceil(PER_MILLION))
}

/// A catalog price as a multiplier (prices are positive; a negative one
/// cannot pass the catalog, and would count as zero here).
fn price(amount: MicroUsd) -> u128 {
    u128::try_from(amount.micros()).unwrap_or(0)
}

/// Saturates at `i64::MAX`, which the catalog's bounds keep out of reach.
fn micro_usd(micros: u128) -> MicroUsd {
    MicroUsd::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            id: "gpt-mini".into(),
            upstream: "gpt-4o-mini".into(),
            provider: "openai".into(),
            prices: Prices {
                input_per_million: MicroUsd::from_micros(150_000),
                output_per_million: MicroUsd::from_micros(600_000),
                cached_per_million: MicroUsd::from_micros(75_000),
            },
            max_output_tokens: 16_384,
            context_window: 128_000,
        }
    }

    fn usage(prompt: u64, completion: u64, cached: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
        }
    }

    #[test]
    fn a_million_tokens_of_each_kind_cost_exactly_the_prices() {
        let prices = model().prices;
        assert_eq!(
            usage_cost(&prices, &usage(1_000_000, 0, 0)).micros(),
            150_000
        );
        assert_eq!(
            usage_cost(&prices, &usage(0, 1_000_000, 0)).micros(),
            600_000
        );
        assert_eq!(
            usage_cost(&prices, &usage(1_000_000, 0, 1_000_000)).micros(),
            75_000
        );
    }

    #[test]
    fn cached_tokens_are_part_of_the_prompt_tokens() {
        // 1000 prompt (400 cached) and 500 completion:
        // 600 * 150000 + 400 * 75000 + 500 * 600000 = 90e6 + 30e6 + 300e6 = 420e6 -> 420 micro-USD.
        let cost = usage_cost(&model().prices, &usage(1000, 500, 400));
        assert_eq!(cost.micros(), 420);
    }

    #[test]
    fn a_fraction_of_a_micro_usd_is_rounded_up() {
        // 7 prompt tokens: 7 * 150000 = 1_050_000 -> 1.05 micro-USD -> 2.
        assert_eq!(usage_cost(&model().prices, &usage(7, 0, 0)).micros(), 2);
        // 1 completion token: 600000 / 1e6 = 0.6 -> 1.
        assert_eq!(usage_cost(&model().prices, &usage(0, 1, 0)).micros(), 1);
        assert_eq!(usage_cost(&model().prices, &usage(0, 0, 0)).micros(), 0);
    }

    #[test]
    fn more_cached_tokens_than_prompt_tokens_are_capped_at_the_prompt() {
        // 10 prompt, 50 "cached": 10 at the cached price = 750000 -> 1 micro-USD.
        assert_eq!(usage_cost(&model().prices, &usage(10, 0, 50)).micros(), 1);
    }

    #[test]
    fn the_hold_covers_the_body_estimate_and_the_output_asked_for() {
        let m = model();
        // 3001 bytes -> 1001 tokens; 1001 * 150000 + 100 * 600000 = 150_150_000 + 60_000_000
        // = 210_150_000 -> 210.15 -> 211 micro-USD.
        assert_eq!(input_estimate(&m, 3001), 1001);
        assert_eq!(max_cost(&m, 3001, Some(100)).micros(), 211);
    }

    #[test]
    fn the_hold_defaults_and_caps_the_output_at_the_models_limit() {
        let m = model();
        // 300 bytes -> 100 tokens: 15_000_000; 16384 * 600000 = 9_830_400_000; sum 9_845_400_000
        // -> 9845.4 -> 9846 micro-USD, whether nothing or too much was asked.
        assert_eq!(max_cost(&m, 300, None).micros(), 9846);
        assert_eq!(max_cost(&m, 300, Some(1_000_000)).micros(), 9846);
        assert_eq!(output_cap(&m, Some(0)), 0);
    }

    #[test]
    fn the_input_estimate_is_capped_by_the_context_window() {
        let m = model();
        assert_eq!(input_estimate(&m, 10 * 1024 * 1024), 128_000);
        // 128000 * 150000 + 16384 * 600000 = 19_200_000_000 + 9_830_400_000 -> 29030.4 -> 29031.
        assert_eq!(max_cost(&m, 10 * 1024 * 1024, None).micros(), 29_031);
    }

    #[test]
    fn the_real_cost_never_exceeds_the_hold_for_usage_within_the_estimate() {
        let m = model();
        let hold = max_cost(&m, 3000, Some(200));
        let cost = usage_cost(&m.prices, &usage(1000, 200, 0));
        assert!(cost <= hold, "{cost:?} > {hold:?}");
    }

    #[test]
    fn the_largest_prices_and_limits_stay_inside_an_i64() {
        let mut m = model();
        let top = MicroUsd::from_micros(crate::catalog::MAX_PRICE_PER_MILLION);
        m.prices = Prices {
            input_per_million: top,
            output_per_million: top,
            cached_per_million: top,
        };
        m.context_window = crate::catalog::MAX_TOKEN_LIMIT as u32;
        m.max_output_tokens = crate::catalog::MAX_TOKEN_LIMIT as u32;
        assert_eq!(max_cost(&m, usize::MAX, None).micros(), 200_000_000_000_000);
    }
}
