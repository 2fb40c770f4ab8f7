//! The retry rules attached to failure classes: which upstream failures are retried and
//! how often, which cool a deployment down, how long to back off, what `Retry-After`
//! asks for, and which fallback list a failure leads to.
//!
//! `Retry-After` comes from outside: every form saturates at [`MAX_RETRY_AFTER`], and
//! the lints below make the compiler reject unchecked arithmetic here.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::snapshot::RetrySpec;
use crate::domain::ErrorClass;

/// The fallback lists an LLMModel has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackKind {
    /// `fallbacks`: on 429, 5xx, timeouts and connect errors.
    General,
    /// `contextWindowFallbacks`.
    ContextWindow,
    /// `contentPolicyFallbacks`.
    ContentPolicy,
}

/// Retries a model's policy allows for failures of `class`.
pub fn retries(class: ErrorClass, spec: &RetrySpec) -> u32 {
    match class {
        ErrorClass::RateLimited => spec.rate_limited,
        ErrorClass::Server => spec.server_error,
        ErrorClass::Timeout => spec.timeout,
        ErrorClass::Connect => spec.connect_error,
        ErrorClass::Invalid | ErrorClass::Auth => spec.client_error,
        // Retrying cannot shrink a prompt or change a policy verdict, and an empty
        // pool is handled by waiting for it, not by counting retries.
        ErrorClass::ContextWindow | ErrorClass::ContentPolicy | ErrorClass::Unavailable => 0,
    }
}

/// Whether a failure of `class` counts toward the deployment's cooldown: only what
/// says the deployment, not the request, is in trouble.
pub fn cools_down(class: ErrorClass) -> bool {
    class.retryable()
}

/// The fallback list a failure of `class` leads to, if any.
pub fn fallback(class: ErrorClass) -> Option<FallbackKind> {
    match class {
        ErrorClass::RateLimited
        | ErrorClass::Server
        | ErrorClass::Timeout
        | ErrorClass::Connect
        | ErrorClass::Unavailable => Some(FallbackKind::General),
        ErrorClass::ContextWindow => Some(FallbackKind::ContextWindow),
        ErrorClass::ContentPolicy => Some(FallbackKind::ContentPolicy),
        ErrorClass::Invalid | ErrorClass::Auth => None,
    }
}

impl FallbackKind {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackKind::General => "general",
            FallbackKind::ContextWindow => "context_window",
            FallbackKind::ContentPolicy => "content_policy",
        }
    }
}

/// The longest wait an upstream can ask for. A deployment rests for what its upstream
/// asks, and the client is told it; past an hour the answer means "not soon", and a
/// larger number (`1e300`, `u64::MAX` seconds) must neither overflow a clock nor bench
/// a deployment for ever. Whether the sidecar itself waits is decided against the
/// model's `maxBackoff`: a longer wait ends the call with 429 and `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait an upstream asks for: `retry-after-ms` (OpenAI, Azure), or `Retry-After`
/// as seconds or an HTTP date, saturated at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        // Too large for a Duration at all is as good as "the longest".
        #[allow(clippy::float_arithmetic)]
        let secs = ms / 1000.0;
        let wait = Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER);
        return Some(wait.min(MAX_RETRY_AFTER));
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits beyond u64 are still "a very long time", not junk.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The backoff before retry number `retry` (0-based): full jitter over an exponential
/// ceiling, so a fleet of sidecars does not retry in lockstep.
pub fn backoff(spec: &RetrySpec, retry: u32) -> Duration {
    let ceiling = spec
        .initial_backoff_ms
        .saturating_mul(1u64 << retry.min(20))
        .min(spec.max_backoff_ms);
    // Half fixed, half random: never retry instantly, never wait past the ceiling.
    let half = ceiling.div_euclid(2);
    Duration::from_millis(half.saturating_add(fastrand::u64(0..=ceiling.saturating_sub(half))))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried_by_default() {
        let spec = RetrySpec::default();
        for class in [
            ErrorClass::RateLimited,
            ErrorClass::Server,
            ErrorClass::Timeout,
            ErrorClass::Connect,
        ] {
            assert!(retries(class, &spec) > 0, "{class:?}");
            assert!(cools_down(class));
            assert_eq!(fallback(class), Some(FallbackKind::General));
        }
        assert_eq!(retries(ErrorClass::Invalid, &spec), 0);
        assert_eq!(retries(ErrorClass::Auth, &spec), 0);
        assert_eq!(retries(ErrorClass::ContextWindow, &spec), 0);
        assert_eq!(fallback(ErrorClass::Invalid), None);
        assert_eq!(fallback(ErrorClass::Auth), None);
        assert!(!cools_down(ErrorClass::Invalid));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(now + Duration::from_secs(30))
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let mut junk = HeaderMap::new();
        junk.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&junk, now), None);
    }

    #[test]
    fn huge_retry_after_values_saturate_instead_of_panicking() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (name, value) in [
            ("retry-after-ms", "1e300"),
            (
                "retry-after-ms",
                "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            ),
            ("retry-after", "18446744073709551615"),
            ("retry-after", "99999999999999999999999999"),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            assert_eq!(
                retry_after(&h, now),
                Some(MAX_RETRY_AFTER),
                "{name}: {value}"
            );
        }
        for value in ["-5", "NaN", "inf", "1e-300"] {
            let mut h = HeaderMap::new();
            h.insert("retry-after-ms", value.parse().unwrap());
            assert!(
                retry_after(&h, now).is_none_or(|d| d < Duration::from_millis(1)),
                "{value}"
            );
        }
    }

    #[test]
    fn backoff_grows_within_half_to_full_ceiling_and_caps() {
        let spec = RetrySpec {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..RetrySpec::default()
        };
        for _ in 0..200 {
            let b0 = backoff(&spec, 0).as_millis();
            assert!((50..=100).contains(&b0), "{b0}");
            let b3 = backoff(&spec, 3).as_millis();
            assert!((400..=800).contains(&b3), "{b3}");
            let b9 = backoff(&spec, 9).as_millis();
            assert!((500..=1000).contains(&b9), "{b9}");
        }
    }
}
