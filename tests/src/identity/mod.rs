//! Mocks of the services a pod gets its cloud identity from, on the one mock core
//! ([`crate::mock`]), each speaking the service's documented wire format:
//!
//! | mock | stands in for | module |
//! |---|---|---|
//! | [`MockSts`] | AWS STS `AssumeRoleWithWebIdentity` (query API, XML answers) | [`aws`] |
//! | [`MockPodIdentity`] | the EKS Pod Identity agent's `/v1/credentials` | [`aws`] |
//! | [`MockMetadata`] | the GCE/GKE metadata server | [`gcp`] |
//! | [`MockGoogleSts`] | Google STS `v1/token` and IAM Credentials `generateAccessToken` | [`gcp`] |
//! | [`MockEntra`] | Microsoft Entra ID's `/{tenant}/oauth2/v2.0/token` | [`entra`] |
//!
//! What they issue goes into a book the provider mock checks: AWS keys into a
//! [`Keyring`](aws::Keyring) the mock Bedrock verifies signatures against, bearer tokens
//! into [`Tokens`] the mock Vertex AI and the mock Azure OpenAI accept. Revoking or
//! expiring what is in a book makes the provider mock refuse it as the real service
//! does, which is how tests reach the sidecar's refresh on a refused credential.
//!
//! As with every mock, a scripted [`Reply::error`](crate::Reply::error) makes the next
//! credential request fail in the service's own error format.

pub mod aws;
pub mod entra;
pub mod gcp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use aws::{Keyring, MockPodIdentity, MockSts};
pub use entra::MockEntra;
pub use gcp::{MockGoogleSts, MockMetadata};

use crate::mock::{lock, percent_decode};

/// Bearer tokens an identity mock issued, each with its expiry; cheap to clone, and
/// shared with the provider mock that accepts them.
#[derive(Clone, Debug, Default)]
pub struct Tokens(Arc<Mutex<Book>>);

#[derive(Debug, Default)]
struct Book {
    valid: HashMap<String, SystemTime>,
    issued: usize,
}

impl Tokens {
    /// A new token `{prefix}{n:04}` valid for `lifetime`.
    pub fn issue(&self, prefix: &str, lifetime: Duration) -> String {
        let mut book = lock(&self.0);
        book.issued += 1;
        let token = format!("{prefix}{:04}", book.issued);
        book.valid
            .insert(token.clone(), SystemTime::now() + lifetime);
        token
    }

    /// Whether `token` was issued here and has not expired or been revoked.
    pub fn valid(&self, token: &str) -> bool {
        lock(&self.0)
            .valid
            .get(token)
            .is_some_and(|expiry| *expiry > SystemTime::now())
    }

    /// Whether `Authorization` is `Bearer <a valid token>`.
    pub fn bearer_valid(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| self.valid(token))
    }

    /// Forgets every token, as if each were revoked.
    pub fn revoke_all(&self) {
        lock(&self.0).valid.clear();
    }

    /// How many tokens have been issued.
    pub fn issued(&self) -> usize {
        lock(&self.0).issued
    }
}

/// `application/x-www-form-urlencoded` fields, percent-decoded (`+` is a space); a
/// field that does not decode is kept as sent.
pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode(&s).unwrap_or(s)
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// RFC 3339 in UTC with seconds (`2014-10-24T23:00:23Z`), as AWS and Google write times;
/// with `nanos`, Go's `RFC3339Nano` (trailing zeros of the fraction dropped).
pub(crate) fn rfc3339(at: SystemTime, nanos: bool) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::bedrock::sigv4::civil_from_days(days as i64);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let fraction = since.subsec_nanos();
    if nanos && fraction != 0 {
        let digits = format!("{fraction:09}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    } else {
        format!("{base}Z")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod book_tests {
    use super::*;

    #[test]
    fn tokens_expire_and_are_revoked() {
        let tokens = Tokens::default();
        let t = tokens.issue("tok-", Duration::from_secs(60));
        assert_eq!(t, "tok-0001");
        assert!(tokens.valid(&t));
        let short = tokens.issue("tok-", Duration::ZERO);
        assert!(!tokens.valid(&short));
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
        assert!(tokens.bearer_valid(&headers));
        tokens.revoke_all();
        assert!(!tokens.valid(&t));
        assert_eq!(tokens.issued(), 2);
    }

    #[test]
    fn forms_and_times() {
        let f = form(b"a=x%3Ay+z&b=&c");
        assert_eq!(f["a"], "x:y z");
        assert_eq!(f["b"], "");
        assert_eq!(f["c"], "");
        let at = UNIX_EPOCH + Duration::from_secs(1_414_191_623);
        assert_eq!(rfc3339(at, false), "2014-10-24T23:00:23Z");
        assert_eq!(
            rfc3339(at + Duration::from_millis(250), true),
            "2014-10-24T23:00:23.25Z"
        );
        assert_eq!(rfc3339(at, true), "2014-10-24T23:00:23Z");
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod mock_tests;
