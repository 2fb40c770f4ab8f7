//! Failure classes and the retry rules attached to them: which upstream failures are
//! retried and how often, how long to back off, what `Retry-After` asks for, and which
//! fallback list a failure leads to.
//!
//! `Retry-After` comes from outside: every form saturates at [`MAX_RETRY_AFTER`], and
//! the lints below make the compiler reject unchecked arithmetic here.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::config::snapshot::RetrySpec;

/// What went wrong with one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// 429 from the upstream.
    RateLimited,
    /// 5xx, or a 2xx whose body was broken.
    ServerError,
    /// No answer in time.
    Timeout,
    /// No connection.
    Connect,
    /// The prompt exceeds the model's context window.
    ContextWindow,
    /// The upstream refused the content on policy grounds.
    ContentPolicy,
    /// Any other 4xx: the request itself is at fault.
    ClientError,
    /// No deployment could take the request (all cooling down or at their limits).
    NoDeployment,
}

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

impl FailureClass {
    /// Retries allowed for this class by a model's policy.
    pub fn retries(self, spec: &RetrySpec) -> u32 {
        match self {
            FailureClass::RateLimited => spec.rate_limited,
            FailureClass::ServerError => spec.server_error,
            FailureClass::Timeout => spec.timeout,
            FailureClass::Connect => spec.connect_error,
            FailureClass::ClientError => spec.client_error,
            // Retrying cannot shrink a prompt or change a policy verdict, and an empty
            // pool is handled by waiting for it, not by counting retries.
            FailureClass::ContextWindow | FailureClass::ContentPolicy => 0,
            FailureClass::NoDeployment => 0,
        }
    }

    /// Whether the failure counts toward the deployment's cooldown.
    pub fn counts_toward_cooldown(self) -> bool {
        matches!(
            self,
            FailureClass::RateLimited
                | FailureClass::ServerError
                | FailureClass::Timeout
                | FailureClass::Connect
        )
    }

    /// The fallback list this failure leads to, if any.
    pub fn fallback(self) -> Option<FallbackKind> {
        match self {
            FailureClass::RateLimited
            | FailureClass::ServerError
            | FailureClass::Timeout
            | FailureClass::Connect
            | FailureClass::NoDeployment => Some(FallbackKind::General),
            FailureClass::ContextWindow => Some(FallbackKind::ContextWindow),
            FailureClass::ContentPolicy => Some(FallbackKind::ContentPolicy),
            FailureClass::ClientError => None,
        }
    }

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::RateLimited => "rate_limited",
            FailureClass::ServerError => "server_error",
            FailureClass::Timeout => "timeout",
            FailureClass::Connect => "connect_error",
            FailureClass::ContextWindow => "context_window",
            FailureClass::ContentPolicy => "content_policy",
            FailureClass::ClientError => "client_error",
            FailureClass::NoDeployment => "no_deployment",
        }
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

/// Classifies an upstream error response by status and, for 400s, by what the body
/// says: providers report context-window and content-policy refusals as plain 400s.
pub fn classify(status: StatusCode, body: &[u8]) -> FailureClass {
    match status.as_u16() {
        429 => FailureClass::RateLimited,
        500..=599 => FailureClass::ServerError,
        400 | 413 | 422 => {
            let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
            if CONTEXT_WINDOW_MARKERS.iter().any(|m| text.contains(m)) {
                FailureClass::ContextWindow
            } else if CONTENT_POLICY_MARKERS.iter().any(|m| text.contains(m)) {
                FailureClass::ContentPolicy
            } else {
                FailureClass::ClientError
            }
        }
        408 => FailureClass::Timeout,
        _ => FailureClass::ClientError,
    }
}

/// Phrases providers use for prompts over the context window (OpenAI's
/// `context_length_exceeded`, Azure's and vLLM's wording, Anthropic's "prompt is too long").
const CONTEXT_WINDOW_MARKERS: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "prompt is too long",
    "input is too long",
    "too many tokens",
];

/// Phrases providers use for content refusals (OpenAI's `content_policy_violation`,
/// Azure's `content_filter`).
const CONTENT_POLICY_MARKERS: &[&str] = &[
    "content_policy_violation",
    "content_filter",
    "content management policy",
    "content policy",
    "responsibleaipolicyviolation",
];

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
    fn classifies_statuses_and_400_bodies() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(429), b""), FailureClass::RateLimited);
        assert_eq!(classify(s(503), b""), FailureClass::ServerError);
        assert_eq!(classify(s(401), b""), FailureClass::ClientError);
        assert_eq!(classify(s(404), b""), FailureClass::ClientError);
        let openai = br#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(classify(s(400), openai), FailureClass::ContextWindow);
        let azure = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        assert_eq!(classify(s(400), azure), FailureClass::ContentPolicy);
        assert_eq!(
            classify(s(400), br#"{"error":{"message":"bad"}}"#),
            FailureClass::ClientError
        );
    }

    #[test]
    fn only_transient_failures_are_retried_by_default() {
        let spec = RetrySpec::default();
        assert!(FailureClass::RateLimited.retries(&spec) > 0);
        assert!(FailureClass::ServerError.retries(&spec) > 0);
        assert!(FailureClass::Timeout.retries(&spec) > 0);
        assert!(FailureClass::Connect.retries(&spec) > 0);
        assert_eq!(FailureClass::ClientError.retries(&spec), 0);
        assert_eq!(FailureClass::ContextWindow.retries(&spec), 0);
        assert_eq!(FailureClass::ClientError.fallback(), None);
        assert!(!FailureClass::ClientError.counts_toward_cooldown());
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
