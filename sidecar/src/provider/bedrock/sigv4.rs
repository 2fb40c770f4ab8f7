//! AWS Signature Version 4 for Bedrock requests: the canonical request, the string to
//! sign, the signing-key derivation and the `Authorization` header, written from AWS's
//! published algorithm and checked against AWS's SigV4 test suite at the bottom.
//!
//! Signed: `content-type`, `content-length` and `x-amz-*` when present, `host` (set here
//! from the URI, so what is signed is what is sent) and `x-amz-date`; temporary
//! credentials add `x-amz-security-token`. Path segments are URI-encoded once more for
//! the canonical URI (every service but S3 does this), so a model id sent as `v1%3A0`
//! is signed as `v1%253A0`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use ring::{digest, hmac};

use crate::config::snapshot::AwsCredentials;
use crate::hex::hex;
use crate::provider::{CredentialError, UnsignedRequest};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A set of AWS credentials: long-term keys from a Secret, or temporary ones (with a
/// session token) from STS or the EKS Pod Identity agent.
#[derive(Clone)]
pub struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<HeaderValue>,
}

impl fmt::Debug for Keys {
    // Never print the secret or the token, not even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Checked keys; errors never quote them.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Result<Keys, String> {
        let access_key_id = access_key_id.trim().to_owned();
        let secret_access_key = secret_access_key.trim().to_owned();
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err("aws credentials need an access key id and a secret access key".into());
        }
        if !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("the AWS access key id must be letters and digits".into());
        }
        let session_token = match session_token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(token.trim())
                    .map_err(|_| "the AWS session token has characters not allowed in a header")?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Keys {
            access_key_id,
            secret_access_key,
            session_token,
        })
    }

    /// The keys of a Secret.
    pub fn from_secret(credentials: &AwsCredentials) -> Result<Keys, String> {
        Keys::new(
            credentials.access_key_id.expose(),
            credentials.secret_access_key.expose(),
            credentials.session_token.as_ref().map(|t| t.expose()),
        )
    }

    /// The access key id (not a secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

/// Signs requests for one region and service, with the credentials each request gets.
#[derive(Clone, Debug)]
pub struct Signer {
    region: String,
    service: &'static str,
}

impl Signer {
    /// A signer for `service` (`bedrock`) in `region`.
    pub fn new(region: &str, service: &'static str) -> Signer {
        Signer {
            region: region.to_owned(),
            service,
        }
    }

    /// Adds `host`, `x-amz-date`, the session token if any, and `authorization` to
    /// `request`, signed for the time `at`.
    pub fn sign(
        &self,
        request: &mut UnsignedRequest,
        keys: &Keys,
        at: SystemTime,
    ) -> Result<(), CredentialError> {
        let authority = request
            .uri()
            .authority()
            .ok_or_else(|| CredentialError("the request URI has no host to sign".into()))?
            .as_str()
            .to_owned();
        let amz_date = amz_date(at);
        let headers = request.headers_mut();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&authority)
                .map_err(|_| CredentialError("the host cannot be sent as a header".into()))?,
        );
        headers.insert(
            "x-amz-date",
            HeaderValue::from_str(&amz_date)
                .map_err(|_| CredentialError("bad x-amz-date".into()))?,
        );
        if let Some(token) = &keys.session_token {
            headers.insert("x-amz-security-token", token.clone());
        }
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let (canonical, signed) = canonical_request(request);
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let key = signing_key(&keys.secret_access_key, date, &self.region, self.service);
        let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
        let mut value = HeaderValue::from_str(&format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            keys.access_key_id
        ))
        .map_err(|_| CredentialError("the authorization header cannot be built".into()))?;
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        Ok(())
    }
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// Whether a header takes part in the signature.
fn signs(name: &str) -> bool {
    matches!(name, "host" | "content-type" | "content-length") || name.starts_with("x-amz-")
}

/// The canonical request and the `SignedHeaders` list.
fn canonical_request(request: &UnsignedRequest) -> (String, String) {
    let mut names: Vec<&str> = request
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| signs(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::with_capacity(512);
    out.push_str(request.method().as_str());
    out.push('\n');
    out.push_str(&canonical_uri(request.uri().path()));
    out.push('\n');
    out.push_str(&canonical_query(request.uri().query().unwrap_or("")));
    out.push('\n');
    for name in &names {
        let values: Vec<String> = request
            .headers()
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    let signed = names.join(";");
    out.push_str(&signed);
    out.push('\n');
    out.push_str(&hex(
        digest::digest(&digest::SHA256, request.body()).as_ref()
    ));
    (out, signed)
}

/// Each path segment URI-encoded again; `/` for an empty path.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters decoded, URI-encoded and sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but RFC 3986 unreserved characters, upper-case hex.
pub fn uri_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `%XX` decoding; malformed escapes are kept as they are.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| input.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm (public domain).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::snapshot::SecretString;

    // AWS's SigV4 test suite (aws-c-auth tests/aws-signing-test-suite/v4): one set of
    // credentials, one instant, region us-east-1, service "service".
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z.
    const SUITE_TIME: u64 = 1_440_938_160;

    fn keys(token: Option<&str>) -> Keys {
        let creds = AwsCredentials {
            access_key_id: SecretString::new(AKID),
            secret_access_key: SecretString::new(SECRET),
            session_token: token.map(SecretString::new),
        };
        Keys::from_secret(&creds).unwrap()
    }

    fn signer() -> Signer {
        Signer::new("us-east-1", "service")
    }

    fn signed(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
        token: Option<&str>,
    ) -> String {
        let mut request = http::Request::new(Bytes::from(body.to_owned()));
        *request.method_mut() = method.parse().unwrap();
        *request.uri_mut() = uri.parse().unwrap();
        for (n, v) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        signer()
            .sign(
                &mut request,
                &keys(token),
                UNIX_EPOCH + Duration::from_secs(SUITE_TIME),
            )
            .unwrap();
        assert_eq!(request.headers()["x-amz-date"], "20150830T123600Z");
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn expect(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn get_vanilla() {
        assert_eq!(
            signed("GET", "https://example.amazonaws.com/", &[], "", None),
            expect(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            signed("POST", "https://example.amazonaws.com/", &[], "", None),
            expect(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            signed(
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                &[],
                "",
                None
            ),
            expect(
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        assert_eq!(
            signed(
                "GET",
                "https://example.amazonaws.com/",
                &[],
                "",
                Some(token)
            ),
            expect(
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "13"),
            (
                "x-amz-content-sha256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
        ];
        assert_eq!(
            signed(
                "POST",
                "https://example.amazonaws.com/",
                &headers,
                "Param1=value1",
                None
            ),
            expect(
                "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
            )
        );
    }

    #[test]
    fn bedrock_model_ids_are_encoded_twice_in_the_canonical_uri() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_query("b=2&a=%201"), "a=%201&b=2");
    }

    #[test]
    fn dates_and_redaction() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
        let debug = format!("{:?}", keys(Some("tok")));
        assert!(
            !debug.contains(SECRET) && !debug.contains("tok\""),
            "{debug}"
        );
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"
            .parse()
            .unwrap();
        signer()
            .sign(&mut request, &keys(Some("tok")), SystemTime::now())
            .unwrap();
        assert!(request.headers()["authorization"].is_sensitive());
        assert!(request.headers()["x-amz-security-token"].is_sensitive());
        assert_eq!(
            request.headers()["host"],
            "bedrock-runtime.us-east-1.amazonaws.com"
        );
    }
}
