//! Plumbing shared by the mock providers that are not OpenAI (Bedrock, Cohere): the
//! accept loop with its shutdown, request recording, bodies that drip frames and can
//! be cut, and the small codecs (base64, percent-encoding, hex) their wire formats need.
//!
//! The OpenAI mock predates this module and keeps its own copy; the behaviour is the
//! same (ephemeral port, every connection cut when the mock is dropped).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::openai::Recorded;

/// The body type every mock response uses.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A poisoned lock only means a test thread panicked while holding it; what it guards
/// stays consistent, so keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running accept loop. Dropping it stops accepting and cuts every connection,
/// including requests that were never going to be answered.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection
        // task; the signal covers HTTP/2 streams, which hyper spawns outside that set.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// Binds `listen` and answers every request with `handler`, which receives the request
/// with its body already read.
pub(crate) async fn serve<H, F>(listen: SocketAddr, handler: H) -> io::Result<Server>
where
    H: Fn(Recorded) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let handler = Arc::new(handler);
    let task = tokio::spawn(accept(listener, handler, shutdown_rx));
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}

async fn accept<H, F>(listener: TcpListener, handler: Arc<H>, shutdown: watch::Receiver<bool>)
where
    H: Fn(Recorded) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Without it, small stream frames wait on Nagle for the previous
                    // one's ACK and chunk timing is lost.
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let handler = Arc::clone(&handler);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            answer(Arc::clone(&handler), shutdown.clone(), req)
                        });
                        // Clients hanging up and our own cuts are part of the job.
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                // Typically EMFILE under load; pausing lets connections close.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer<H, F>(
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error>
where
    H: Fn(Recorded) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let work = async {
        let (parts, body) = req.into_parts();
        // A client that fails mid-body gets its connection closed, as a real server
        // would.
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let mut headers = parts.headers;
        // HTTP/2 requests carry the host in the URI, not a header; signatures cover it
        // either way.
        if !headers.contains_key(http::header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(http::header::HOST, value);
        }
        let recorded = Recorded {
            method: parts.method,
            path,
            headers,
            body,
        };
        Ok(handler(recorded).await)
    };
    tokio::select! {
        response = work => response,
        _ = shutdown.wait_for(|&stopped| stopped) => Err(io::Error::other("mock stopped")),
    }
}

/// A whole body in one frame.
pub(crate) fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A body that sends `frames` one per poll, waiting `delay` before each, and fails
/// after `cut_after` of them (even if it asked for more frames than there were).
pub(crate) fn drip(frames: Vec<Bytes>, delay: Duration, cut_after: Option<usize>) -> Body {
    struct Drip {
        frames: std::vec::IntoIter<Bytes>,
        sent: usize,
        delay: Duration,
        cut_after: Option<usize>,
        finished: bool,
    }
    let state = Drip {
        frames: frames.into_iter(),
        sent: 0,
        delay,
        cut_after,
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, move |mut d| async move {
        if d.finished {
            return None;
        }
        let due = d.cut_after.is_some_and(|n| d.sent >= n);
        let next = if due { None } else { d.frames.next() };
        let Some(bytes) = next else {
            d.finished = true;
            d.cut_after?;
            // hyper discards what it has not flushed when the body fails; one pending
            // poll makes it flush the frames sent so far, so the client sees them.
            tokio::task::yield_now().await;
            let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "mock: disconnect");
            return Some((Err(cut), d));
        };
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        d.sent += 1;
        Some((Ok(Frame::data(bytes)), d))
    });
    StreamBody::new(stream).boxed_unsync()
}

/// Builds a response with a content type and extra headers.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    headers: &[(HeaderName, HeaderValue)],
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    let mut overridden = Vec::new();
    for (name, value) in headers {
        // The first header of a name replaces the mock's own; later ones add to it.
        if overridden.contains(name) {
            map.append(name.clone(), value.clone());
        } else {
            map.insert(name.clone(), value.clone());
            overridden.push(name.clone());
        }
    }
    response
}

/// Status codes out of range are a broken test script; fail where it is written.
pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("invalid HTTP status {status}"))
}

/// A header pair from test-script strings; invalid ones are a broken script.
pub(crate) fn header_pair(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let name =
        HeaderName::try_from(name).unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
    let value = HeaderValue::try_from(value)
        .unwrap_or_else(|e| panic!("invalid header value {value:?}: {e}"));
    (name, value)
}

/// Serializes test data; these types (maps with string keys) cannot fail.
pub(crate) fn to_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Roughly one token per word, as every mock counts.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A deterministic unit vector of `dim` components derived from `seed`: equal inputs
/// embed equally and different ones (almost always) differently.
pub(crate) fn unit_vector(seed: &str, dim: usize) -> Vec<f32> {
    // FNV-1a over the seed, then xorshift for the components.
    let mut state = 0xcbf2_9ce4_8422_2325_u64;
    for b in seed.as_bytes() {
        state = (state ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut vector: Vec<f32> = (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Top 24 bits into [-1, 1): exactly representable in an f32.
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = vector.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm > 0.0 {
        for c in &mut vector {
            *c /= norm;
        }
    }
    vector
}

/// Tool arguments that satisfy a simple JSON schema, made from its property names.
pub(crate) fn input_from_schema(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let value = if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
                first.clone()
            } else {
                match prop["type"].as_str() {
                    Some("number" | "integer") => serde_json::json!(1),
                    Some("boolean") => serde_json::json!(true),
                    Some("object") => input_from_schema(prop),
                    Some("array") => serde_json::json!([]),
                    _ => serde_json::json!(format!("mock-{name}")),
                }
            };
            out.insert(name.clone(), value);
        }
    }
    Value::Object(out)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(BASE64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 with padding; `None` for anything else (the mocks refuse
/// image bytes that a real provider could not decode).
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| BASE64.iter().position(|&a| a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, with upper-case hex
/// (what SigV4 calls URI-encoding).
pub fn uri_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_the_rfc_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*", "abc"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn percent_codecs() {
        assert_eq!(
            percent_decode("anthropic.claude-v2%3A1").unwrap(),
            "anthropic.claude-v2:1"
        );
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%4").is_none());
        assert_eq!(uri_encode("a:b/c d~"), "a%3Ab%2Fc%20d~");
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    #[test]
    fn unit_vectors_are_deterministic_and_normalised() {
        let a = unit_vector("x", 16);
        assert_eq!(a, unit_vector("x", 16));
        assert_ne!(a, unit_vector("y", 16));
        let norm: f32 = a.iter().map(|c| c * c).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
