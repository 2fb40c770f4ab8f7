//! What the identity flows share: one bounded, timed request through the sidecar's
//! transport (no second HTTP stack), form encoding, token files, URLs, and the RFC 3339
//! times their answers carry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::cache::Fetched;
use crate::provider::bedrock::sigv4::uri_encode;
use crate::provider::secret_header;
use crate::upstream::Transport;

/// A token request that takes longer has failed.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Token answers are small; anything bigger is not one.
const MAX_ANSWER: usize = 64 * 1024;
/// Projected service-account tokens are a few KiB.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// An answer read whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// A request to `uri` with the sidecar's user agent and, if given, a body of
/// `content_type`.
pub(crate) fn request(
    method: Method,
    uri: &Uri,
    body: Option<(&'static str, Bytes)>,
) -> http::Request<Bytes> {
    let (content_type, body) = match body {
        Some((kind, body)) => (Some(kind), body),
        None => (None, Bytes::new()),
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    if let Some(kind) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("llmesh/", env!("CARGO_PKG_VERSION"))),
    );
    request
}

/// Sends `request` and reads the answer, bounded in size and in [`FETCH_TIMEOUT`].
/// Errors name the URL (which never carries a secret), not the request.
pub(crate) async fn exchange(
    http: &dyn Transport,
    request: http::Request<Bytes>,
) -> Result<Answer, String> {
    exchange_within(http, request, FETCH_TIMEOUT).await
}

/// [`exchange`] within `timeout`.
pub(super) async fn exchange_within(
    http: &dyn Transport,
    request: http::Request<Bytes>,
    timeout: Duration,
) -> Result<Answer, String> {
    let url = request.uri().clone();
    let exchange = async {
        let response = http
            .send(request.map(Full::new))
            .await
            .map_err(|e| format!("the request to {url} failed: {e}"))?;
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the answer of {url} failed: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_ANSWER {
                    return Err(format!("the answer of {url} is too large"));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Answer {
            status: parts.status,
            body: Bytes::from(bytes),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url} did not answer within {timeout:?}"))?
}

/// An OAuth 2.0 access token answer (RFC 6749 §5.1: `access_token`, `token_type`
/// Bearer, `expires_in` seconds) as an `Authorization: Bearer` value, marked sensitive.
/// `from` names the issuer for messages.
pub(crate) fn oauth_token(body: &[u8], from: &str) -> Result<Fetched<HeaderValue>, String> {
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
        expires_in: Seconds,
        #[serde(default)]
        token_type: Option<String>,
    }
    /// Entra ID's v1 endpoints write `expires_in` as a string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    let token: Token = serde_json::from_slice(body)
        .map_err(|_| format!("the answer of {from} is not an access token"))?;
    if token
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(format!("{from} issued a token that is not a bearer token"));
    }
    let seconds = match token.expires_in {
        Seconds::Number(n) => n,
        Seconds::Text(text) => text
            .parse()
            .map_err(|_| format!("{from} gave an expires_in that is not a number"))?,
    };
    Ok(Fetched {
        value: bearer(&token.access_token, from)?,
        lifetime: Duration::from_secs(seconds),
    })
}

/// `Bearer <token>`, marked sensitive.
pub(super) fn bearer(token: &str, from: &str) -> Result<HeaderValue, String> {
    secret_header(&format!("Bearer {token}"))
        .map_err(|_| format!("the access token from {from} is not a valid header value"))
}

/// What an error answer says: OAuth's `{"error", "error_description"}`, Google's
/// `{"error": {"status", "message"}}`, else the body's first characters.
pub(crate) fn error_said(body: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Said {
        OAuth {
            error: String,
            #[serde(default)]
            error_description: String,
        },
        Google {
            error: GoogleError,
        },
    }
    #[derive(Deserialize)]
    struct GoogleError {
        #[serde(default)]
        status: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<Said>(body) {
        Ok(Said::OAuth {
            error,
            error_description,
        }) => format!("{error}: {error_description}"),
        Ok(Said::Google { error }) => format!("{}: {}", error.status, error.message),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    match text.char_indices().nth(300) {
        Some((at, _)) => text[..at].to_owned(),
        None => text,
    }
}

/// `application/x-www-form-urlencoded` of `pairs`, every byte but RFC 3986's
/// unreserved ones percent-encoded.
pub(super) fn form(pairs: &[(&str, &str)]) -> Bytes {
    let text = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Bytes::from(text)
}

/// The form content type.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// A token file's contents, trimmed, read anew on every fetch (kubelet rotates
/// projected tokens). Errors never quote the file.
pub(super) async fn read_token_file(path: &str) -> Result<String, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read the token file {path}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)
        .await
        .map_err(|e| format!("cannot read the token file {path}: {e}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!("the token file {path} is larger than 64 KiB"));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {path} is empty"));
    }
    Ok(token.to_owned())
}

/// An absolute http(s) URL, or why `what` is not one.
pub(super) fn http_url(text: &str, what: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("{what} {text:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("{what} {text:?} must be an absolute http(s) URL")),
    }
}

/// How long from now until `expiry` (Unix seconds); zero if it has passed.
pub(super) fn lifetime_until(expiry: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(expiry.saturating_sub(now))
}

/// Unix seconds of an RFC 3339 time (`2014-10-24T23:00:23Z`, fractions and offsets
/// allowed), or `None`.
pub(super) fn unix_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, zone) = rest.split_at_checked(8)?;
    let number = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let ymd: Vec<&str> = date.split('-').collect();
    let hms: Vec<&str> = time.split(':').collect();
    let ([y, mo, d], [h, mi, s]) = (ymd.as_slice(), hms.as_slice()) else {
        return None;
    };
    let (y, mo, d) = (number(y)?, number(mo)?, number(d)?);
    let (h, mi, s) = (number(h)?, number(mi)?, number(s)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Fractions of a second are dropped: expiries are compared in seconds.
    let zone = match zone.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => zone,
    };
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = zone.get(1..)?.split_once(':')?;
            sign * (number(oh)? * 3600 + number(om)? * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_as_aws_and_google_write_them() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2014-10-24T23:00:23Z"), Some(1_414_191_623));
        assert_eq!(
            unix_seconds("2014-10-02T15:01:23.045123456Z"),
            Some(1_412_262_083)
        );
        assert_eq!(unix_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(
            unix_seconds("2014-10-24T23:00:23+01:00"),
            unix_seconds("2014-10-24T22:00:23Z")
        );
        for bad in [
            "",
            "2014-10-24",
            "2014-13-24T23:00:23Z",
            "2014-10-24T23:00:23",
            "2014-10-24T23:0a:23Z",
            "1969-12-31T23:59:59Z",
            "२०१४-10-24T23:00:23Z",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn oauth_answers_and_errors() {
        let t = oauth_token(
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            "Google",
        )
        .unwrap();
        assert_eq!(t.value, "Bearer ya29.x");
        assert!(t.value.is_sensitive());
        assert_eq!(t.lifetime, Duration::from_secs(3599));
        let entra_v1 = oauth_token(
            br#"{"access_token":"e","expires_in":"3599","token_type":"Bearer"}"#,
            "Entra ID",
        )
        .unwrap();
        assert_eq!(entra_v1.lifetime, Duration::from_secs(3599));
        for bad in [
            r#"{"access_token":"t","expires_in":60,"token_type":"MAC"}"#,
            r#"{"access_token":"t\n","expires_in":60}"#,
            r#"{"access_token":"t","expires_in":"soon"}"#,
            "<html>",
        ] {
            assert!(oauth_token(bad.as_bytes(), "x").is_err(), "{bad}");
        }
        assert_eq!(
            error_said(br#"{"error":"invalid_grant","error_description":"Invalid JWT."}"#),
            "invalid_grant: Invalid JWT."
        );
        assert_eq!(
            error_said(
                br#"{"error":{"code":403,"message":"Permission denied.","status":"PERMISSION_DENIED"}}"#
            ),
            "PERMISSION_DENIED: Permission denied."
        );
        assert_eq!(error_said(b" Not Found\n"), "Not Found");
    }

    #[test]
    fn forms_encode_everything_but_unreserved_bytes() {
        assert_eq!(
            form(&[("scope", "https://x/.default"), ("a b", "c+d=&")]),
            "scope=https%3A%2F%2Fx%2F.default&a%20b=c%2Bd%3D%26"
        );
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(http_url("https://sts.amazonaws.com", "x").is_ok());
        assert!(http_url("file:///etc/passwd", "x").is_err());
        assert!(http_url("sts.amazonaws.com", "x").is_err());
    }

    #[tokio::test]
    async fn token_files_are_trimmed_bounded_and_never_quoted() {
        let dir = std::env::temp_dir().join(format!("llmesh-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "secret-token\n").unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(read_token_file(path).await.unwrap(), "secret-token");
        std::fs::write(path, " \n").unwrap();
        let err = read_token_file(path).await.unwrap_err();
        assert!(err.contains("empty"), "{err}");
        std::fs::write(path, "x".repeat(70 * 1024)).unwrap();
        let err = read_token_file(path).await.unwrap_err();
        assert!(err.contains("larger") && !err.contains("xxx"), "{err}");
        assert!(read_token_file("/nonexistent/token").await.is_err());
    }
}
