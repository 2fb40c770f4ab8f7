//! AWS Signature Version 4, as the mock Bedrock checks it: the canonical request, the
//! string to sign, the signing-key derivation and the signature, written from AWS's
//! published algorithm and checked against AWS's SigV4 test suite below.
//!
//! The sidecar has its own signer; this independent copy is what decides whether a
//! request the sidecar signed would be accepted, so the two are never the same code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use ring::{digest, hmac};

use crate::mock::{Recorded, hex, percent_decode, uri_encode};

/// The only algorithm SigV4 header signing uses.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's `x-amz-date` may be from the mock's clock, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// An access key pair, and the session token that comes with temporary credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA...` (long-term) or `ASIA...` (temporary).
    pub access_key_id: String,
    /// The secret the signature is keyed with.
    pub secret_access_key: String,
    /// Sent as `x-amz-security-token` with temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials.
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// The same key pair with a session token.
    pub fn with_session_token(mut self, token: &str) -> Credentials {
        self.session_token = Some(token.into());
        self
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The canonical URI for every service but S3: each segment of the path as sent
/// (already percent-encoded) is URI-encoded once more, so `v1%3A0` signs as
/// `v1%253A0`. An empty path is `/`.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query: parameters decoded, URI-encoded, sorted by name then value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
            (uri_encode(&decode(k)), uri_encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's canonical value: every occurrence trimmed, inner runs of spaces
/// collapsed, joined with commas. `None` when the header is absent.
pub fn canonical_header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// [`canonical_request`] of a recorded request.
fn canonical_request_of(request: &Recorded, signed: &[&str], payload_hash: &str) -> String {
    let method = request.method.as_str();
    let (path, query) = (request.path_only(), request.query());
    canonical_request(method, path, query, &request.headers, signed, payload_hash)
}

/// The canonical request over `signed` (lower-case, sorted) header names.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed: &[&str],
    payload_hash: &str,
) -> String {
    let mut out = format!(
        "{method}\n{}\n{}\n",
        canonical_uri(path),
        canonical_query(query)
    );
    for name in signed {
        let value = canonical_header_value(headers, name).unwrap_or_default();
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// `AWS4-HMAC-SHA256 \n amz-date \n scope \n hex(sha256(canonical request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign`.
pub fn signature(secret: &str, date: &str, region: &str, service: &str, sts: &str) -> String {
    hex(&hmac_sha256(
        &signing_key(secret, date, region, service),
        sts.as_bytes(),
    ))
}

/// `YYYYMMDDTHHMMSSZ` for a time.
pub fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds since the epoch of a `YYYYMMDDTHHMMSSZ`; `None` when malformed.
pub fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, m as u32, d as u32);
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + hh * 3600 + mm * 60 + ss)
}

// Howard Hinnant's civil-calendar algorithms (public domain).
/// Year, month and day of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Why a request's signature was refused, in AWS's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header (`MissingAuthenticationTokenException`).
    Missing,
    /// The header is not a well-formed SigV4 authorization
    /// (`IncompleteSignatureException`).
    Incomplete(String),
    /// The access key is not known (`UnrecognizedClientException`).
    UnknownAccessKey,
    /// The session token is missing, unexpected or wrong
    /// (`UnrecognizedClientException`).
    BadSessionToken,
    /// The credential scope names another region or service, or the date is out of
    /// range (`InvalidSignatureException`).
    Scope(String),
    /// The body does not hash to `x-amz-content-sha256`.
    ContentHash,
    /// The signature does not match; carries what AWS tells the caller it expected.
    Mismatch {
        /// The canonical request the mock computed.
        canonical_request: String,
        /// The string to sign the mock computed.
        string_to_sign: String,
    },
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    /// The region in the scope.
    pub region: String,
    /// The service in the scope.
    pub service: String,
    /// Lower-case header names, as listed.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// Parses the header value.
    pub fn parse(value: &str) -> Result<Authorization, Rejection> {
        let incomplete = |why: &str| Rejection::Incomplete(why.to_owned());
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| {
                incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm")
            })?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| incomplete("Authorization header requires key=value pairs"))?;
            match key {
                "Credential" => credential = Some(val),
                "SignedHeaders" => signed = Some(val),
                "Signature" => signature = Some(val),
                _ => return Err(incomplete("Authorization header has an unknown parameter")),
            }
        }
        let credential = credential
            .ok_or_else(|| incomplete("Authorization header requires 'Credential' parameter"))?;
        let signed = signed
            .ok_or_else(|| incomplete("Authorization header requires 'SignedHeaders' parameter"))?;
        let signature = signature
            .ok_or_else(|| incomplete("Authorization header requires 'Signature' parameter"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, terminator] = scope[..] else {
            return Err(incomplete(
                "Credential should be scoped to a valid region, service and date",
            ));
        };
        if terminator != "aws4_request" {
            return Err(incomplete(
                "Credential should be scoped with a valid terminator: 'aws4_request'",
            ));
        }
        Ok(Authorization {
            access_key_id: key.into(),
            date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature.into(),
        })
    }
}

/// Checks a received request's SigV4 signature against `credentials`, the expected
/// `region` and `service`, and the clock `now`, as AWS would.
pub fn verify(
    request: &Recorded,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<(), Rejection> {
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(Rejection::Missing)?;
    let auth = Authorization::parse(&String::from_utf8_lossy(value.as_bytes()))?;
    if auth.access_key_id != credentials.access_key_id {
        return Err(Rejection::UnknownAccessKey);
    }
    let token = request
        .headers
        .get("x-amz-security-token")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if token != credentials.session_token {
        return Err(Rejection::BadSessionToken);
    }
    let signed: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
    let mut sorted = signed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != signed
        || signed
            .iter()
            .any(|h| h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(Rejection::Incomplete(
            "SignedHeaders must be lower-case, sorted and unique".into(),
        ));
    }
    if !signed.contains(&"host") {
        return Err(Rejection::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if !signed.contains(&"x-amz-date") {
        return Err(Rejection::Incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if token.is_some() && !signed.contains(&"x-amz-security-token") {
        return Err(Rejection::Incomplete(
            "'X-Amz-Security-Token' must be a 'SignedHeader' when it is sent.".into(),
        ));
    }
    let amz_date = canonical_header_value(&request.headers, "x-amz-date").unwrap_or_default();
    let when = parse_amz_date(&amz_date)
        .ok_or_else(|| Rejection::Incomplete(format!("X-Amz-Date {amz_date:?} is not valid")))?;
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if when.abs_diff(now_secs) > MAX_SKEW.as_secs() {
        return Err(Rejection::Scope(format!(
            "Signature expired: {amz_date} is now earlier or later than the allowed 5 minutes \
             around {} (current time).",
            amz_date_of_secs(now_secs)
        )));
    }
    if auth.date != amz_date[..8] {
        return Err(Rejection::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.region != region {
        return Err(Rejection::Scope(format!(
            "Credential should be scoped to a valid region. '{}' is not '{region}'",
            auth.region
        )));
    }
    if auth.service != service {
        return Err(Rejection::Scope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let body_hash = sha256_hex(&request.body);
    let payload_hash = match request.headers.get("x-amz-content-sha256") {
        Some(v) if v.as_bytes() == b"UNSIGNED-PAYLOAD" => "UNSIGNED-PAYLOAD".to_owned(),
        Some(v) if v.as_bytes() == body_hash.as_bytes() => body_hash,
        Some(_) => return Err(Rejection::ContentHash),
        None => body_hash,
    };
    let creq = canonical_request_of(request, &signed, &payload_hash);
    let scope = format!("{}/{region}/{service}/aws4_request", auth.date);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let expected = signature(
        &credentials.secret_access_key,
        &auth.date,
        region,
        service,
        &sts,
    );
    // A mock answering test clients has no timing side channel worth closing.
    if expected != auth.signature {
        return Err(Rejection::Mismatch {
            canonical_request: creq,
            string_to_sign: sts,
        });
    }
    Ok(())
}

fn amz_date_of_secs(secs: u64) -> String {
    amz_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Signs a request for tests that call the mock directly: adds `host` (from
/// `authority`), `x-amz-date`, the session token if any, and `authorization`, signing
/// every header present.
pub fn sign(
    request: &mut Recorded,
    authority: &str,
    credentials: &Credentials,
    region: &str,
    service: &str,
    at: SystemTime,
) {
    let headers = &mut request.headers;
    let insert = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    let date = amz_date(at);
    insert(headers, "host", authority);
    insert(headers, "x-amz-date", &date);
    if let Some(token) = &credentials.session_token {
        insert(headers, "x-amz-security-token", token);
    }
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let signed: Vec<&str> = names.iter().map(String::as_str).collect();
    let creq = canonical_request_of(request, &signed, &sha256_hex(&request.body));
    let scope = format!("{}/{region}/{service}/aws4_request", &date[..8]);
    let sts = string_to_sign(&date, &scope, &creq);
    let sig = signature(
        &credentials.secret_access_key,
        &date[..8],
        region,
        service,
        &sts,
    );
    let value = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
        credentials.access_key_id,
        signed.join(";")
    );
    insert(&mut request.headers, "authorization", &value);
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::Method;

    // AWS's SigV4 test suite (aws-c-auth tests/aws-signing-test-suite/v4): credentials,
    // time, region and service shared by every case.
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(parse_amz_date(DATE).unwrap())
    }

    fn recorded(method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Recorded {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        Recorded {
            method,
            path: path.into(),
            headers: map,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn suite_signature(
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let req = recorded(method, path, headers, body);
        let mut signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        signed.sort_unstable();
        let creq = canonical_request_of(&req, &signed, &sha256_hex(body));
        let sts = string_to_sign(DATE, "20150830/us-east-1/service/aws4_request", &creq);
        signature(SECRET, "20150830", "us-east-1", "service", &sts)
    }

    const HOST_DATE: [(&str, &str); 2] = [("host", "example.amazonaws.com"), ("x-amz-date", DATE)];

    #[test]
    fn get_vanilla() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
        assert_eq!(
            suite_signature(Method::GET, "/", &HOST_DATE, b""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            suite_signature(Method::POST, "/", &HOST_DATE, b""),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            suite_signature(
                Method::GET,
                "/?Param2=value2&Param1=value1",
                &HOST_DATE,
                b""
            ),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let headers = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-security-token", token),
        ];
        assert_eq!(
            suite_signature(Method::GET, "/", &headers, b""),
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let body = b"Param1=value1";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        let headers = [
            ("content-length", "13"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "example.amazonaws.com"),
            ("x-amz-content-sha256", hash.as_str()),
            ("x-amz-date", DATE),
        ];
        assert_eq!(
            suite_signature(Method::POST, "/", &headers, body),
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        );
    }

    #[test]
    fn verify_accepts_the_suite_and_refuses_tampering() {
        let creds = Credentials::new(AKID, SECRET);
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                    SignedHeaders=host;x-amz-date, \
                    Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
        let mut headers = HOST_DATE.to_vec();
        headers.push(("authorization", auth));
        let ok = recorded(Method::POST, "/", &headers, b"");
        assert_eq!(
            verify(&ok, &creds, "us-east-1", "service", suite_time()),
            Ok(())
        );

        let tampered = recorded(Method::POST, "/", &headers, b"x");
        assert!(matches!(
            verify(&tampered, &creds, "us-east-1", "service", suite_time()),
            Err(Rejection::Mismatch { .. })
        ));
        assert!(matches!(
            verify(&ok, &creds, "us-west-2", "service", suite_time()),
            Err(Rejection::Scope(_))
        ));
        let late = suite_time() + Duration::from_secs(301);
        assert!(matches!(
            verify(&ok, &creds, "us-east-1", "service", late),
            Err(Rejection::Scope(m)) if m.starts_with("Signature expired")
        ));
        let other = Credentials::new("AKIDOTHER", SECRET);
        assert_eq!(
            verify(&ok, &other, "us-east-1", "service", suite_time()),
            Err(Rejection::UnknownAccessKey)
        );
        let with_token = creds.clone().with_session_token("t");
        assert_eq!(
            verify(&ok, &with_token, "us-east-1", "service", suite_time()),
            Err(Rejection::BadSessionToken)
        );
        let bare = recorded(Method::POST, "/", &HOST_DATE, b"");
        assert_eq!(
            verify(&bare, &creds, "us-east-1", "service", suite_time()),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn bedrock_paths_are_encoded_twice() {
        // The model id `anthropic.claude-3-haiku-20240307-v1:0` travels as `...v1%3A0`
        // and signs as `...v1%253A0`; an inference-profile ARN's `/` likewise.
        assert_eq!(
            canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
        );
        assert_eq!(
            canonical_uri(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse"
            ),
            "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A1%253Ainference-profile%252Fus.x/converse"
        );
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn sign_and_verify_agree_with_a_session_token() {
        let creds = Credentials::new("ASIAMOCK", "secret").with_session_token("tok en");
        let now = SystemTime::now();
        let mut req = recorded(
            Method::POST,
            "/model/a%3A0/converse",
            &[("content-type", "application/json")],
            br#"{"messages":[]}"#,
        );
        sign(&mut req, "127.0.0.1:9", &creds, "eu-west-1", "bedrock", now);
        assert_eq!(verify(&req, &creds, "eu-west-1", "bedrock", now), Ok(()));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(amz_date(suite_time()), DATE);
        assert_eq!(
            parse_amz_date("20240229T235959Z")
                .map(amz_date_of_secs)
                .unwrap(),
            "20240229T235959Z"
        );
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
    }
}
