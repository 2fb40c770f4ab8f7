//! Fetches one image by URL for a provider that takes images only as bytes, through the
//! SSRF [`guard`](super::guard): a GET on hyper and rustls (the same stack as the
//! upstream client, with Mozilla's roots), following at most [`MAX_REDIRECTS`]
//! redirects, each target checked again, reading at most the policy's byte limit, and
//! keeping only PNG, JPEG, GIF and WebP bodies whose first bytes agree with their
//! `Content-Type`.
//!
//! Names are resolved by a resolver that checks every address a name has and hands the
//! connector only checked ones, so the address checked is the address dialled (no window
//! for DNS rebinding), with the URL's host as `Host` and TLS server name. Each fetch has
//! its own connector, pooling nothing: a connection one model's policy allowed is never
//! reused under another's.
//!
//! The time limit is the caller's (one limit over all of a call's images).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, USER_AGENT};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use super::UpstreamBody;
use super::client::error_chain;
use super::guard::{AddressPolicy, HostRule, Refusal, check_url};
use super::transports::Transports;

/// Redirects followed before a fetch is given up.
pub const MAX_REDIRECTS: usize = 3;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The image types fetched, as `Accept` lists them.
const ACCEPTED: &str = "image/png, image/jpeg, image/gif, image/webp";

/// Where and how much one model's images may be fetched from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Hosts images may come from; empty means any host whose addresses pass.
    pub hosts: Vec<HostRule>,
    /// Addresses that may be dialled.
    pub addresses: Arc<AddressPolicy>,
    /// Largest image read, in bytes.
    pub max_bytes: u64,
}

/// A fetched image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub media_type: &'static str,
    /// The image.
    pub bytes: Bytes,
}

/// Why an image was not fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The guard refused the URL, or the URL a redirect led to.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Whether it was a redirect's target.
        redirected: bool,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    Redirects,
    /// The server answered this status (or a redirect without a usable `Location`).
    Status(u16),
    /// The image is larger than the limit.
    TooLarge,
    /// Not a PNG, JPEG, GIF or WebP image, by its `Content-Type` or its first bytes.
    Type,
    /// The fetch did not end within the time limit.
    Timeout,
    /// The connection could not be made or broke.
    Failed,
}

impl FetchError {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Refused { refusal, .. } => refusal.label(),
            FetchError::Redirects => "too_many_redirects",
            FetchError::Status(_) => "bad_status",
            FetchError::TooLarge => "too_large",
            FetchError::Type => "bad_type",
            FetchError::Timeout => "timeout",
            FetchError::Failed => "error",
        }
    }

    /// Whether the guard refused it (as opposed to the fetch failing).
    pub fn is_refusal(&self) -> bool {
        matches!(self, FetchError::Refused { .. })
    }
}

/// Resolves host names to addresses.
pub trait Lookup: Send + Sync + 'static {
    /// Every address of `name`.
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (`getaddrinfo`, as tokio runs it).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let name = name.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .map(|addr| addr.ip())
                .collect())
        })
    }
}

/// A resolver that refuses a name unless every one of its addresses passes the address
/// policy, and hands on only those: the connector dials nothing else.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    addresses: Arc<AddressPolicy>,
    /// Set when a name was refused, so the fetch can tell a refusal from a failure.
    refused: Arc<AtomicBool>,
}

impl GuardedResolver {
    /// A resolver checking `lookup`'s answers against `addresses`.
    pub fn new(lookup: Arc<dyn Lookup>, addresses: Arc<AddressPolicy>) -> Self {
        GuardedResolver {
            lookup,
            addresses,
            refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a name was refused.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// The addresses of `name`, all checked, or an error if any is refused: a name
    /// with one private address among public ones is refused whole, since which one
    /// is dialled is not the guard's to choose.
    pub async fn resolve(&self, name: &str) -> io::Result<Vec<SocketAddr>> {
        let ips = self.lookup.lookup(name).await?;
        if ips.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
        }
        if ips.iter().any(|ip| self.addresses.check(*ip).is_err()) {
            self.refused.store(true, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "address refused by the image fetch guard",
            ));
        }
        Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect())
    }
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.resolve(name.as_str()).await?.into_iter()) })
    }
}

/// Why a GET got no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialError {
    /// The host's addresses were refused.
    Refused,
    /// The connection could not be made or broke (the causes, for the log).
    Failed(String),
}

/// The future a [`Dialer`] returns.
pub type DialFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, DialError>> + Send>>;

/// Sends one GET whose URL already passed [`check_url`], resolving names through a
/// [`GuardedResolver`] with `addresses`.
pub trait Dialer: Send + Sync + 'static {
    /// Sends the GET; resolves once the response head arrived.
    fn get(&self, uri: http::Uri, addresses: Arc<AddressPolicy>) -> DialFuture;
}

/// The real dialer: hyper over TCP, TLS by rustls with Mozilla's roots, HTTP/1.1 or
/// HTTP/2 by ALPN.
pub struct GuardedDialer {
    lookup: Arc<dyn Lookup>,
    /// Where the sidecar-wide trust (`--ca-file`, `--system-roots`) is read; none: the
    /// web roots only.
    transports: Option<Arc<Transports>>,
    /// The TLS settings of the last trust seen, by its key.
    tls: Mutex<Option<([u8; 32], Arc<rustls::ClientConfig>)>>,
}

impl GuardedDialer {
    /// A dialer resolving names with `lookup` and trusting the web roots.
    pub fn new(lookup: Arc<dyn Lookup>) -> Self {
        GuardedDialer {
            lookup,
            transports: None,
            tls: Mutex::new(None),
        }
    }

    /// Trusts what every upstream does, as `transports` says now: an image server
    /// behind the same private CA as the models is fetched too.
    pub fn trusting(mut self, transports: Arc<Transports>) -> Self {
        self.transports = Some(transports);
        self
    }

    /// The TLS settings, made on first use and again when the trust changes (so
    /// building a dialer cannot fail).
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let trust = self
            .transports
            .as_ref()
            .map(|t| t.base())
            .unwrap_or_default();
        let key = trust.key();
        let mut cached = self.tls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, config)) = cached.as_ref()
            && *known == key
        {
            return Ok(config.clone());
        }
        let config = Arc::new(trust.client_config().map_err(|e| e.to_string())?);
        *cached = Some((key, config.clone()));
        Ok(config)
    }
}

impl Dialer for GuardedDialer {
    fn get(&self, uri: http::Uri, addresses: Arc<AddressPolicy>) -> DialFuture {
        let tls = match self.tls() {
            Ok(tls) => tls,
            Err(e) => return Box::pin(std::future::ready(Err(DialError::Failed(e)))),
        };
        let resolver = GuardedResolver::new(self.lookup.clone(), addresses);
        let mut http = HttpConnector::new_with_resolver(resolver.clone());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(0)
            .build(https);
        let mut request = http::Request::new(Empty::new());
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPTED));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("llmesh/", env!("CARGO_PKG_VERSION"))),
        );
        Box::pin(async move {
            match client.request(request).await {
                Ok(response) => Ok(response.map(|body| body.map_err(Into::into).boxed())),
                Err(_) if resolver.refused() => Err(DialError::Refused),
                Err(err) => Err(DialError::Failed(error_chain(&err))),
            }
        })
    }
}

/// Fetches images through a [`Dialer`]; one per sidecar, shared by every call.
pub struct ImageFetcher {
    dialer: Arc<dyn Dialer>,
}

impl Default for ImageFetcher {
    /// Fetches through the system resolver and the real network.
    fn default() -> Self {
        ImageFetcher::new(Arc::new(GuardedDialer::new(Arc::new(SystemLookup))))
    }
}

impl ImageFetcher {
    /// Fetches through `dialer`.
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        ImageFetcher { dialer }
    }

    /// Fetches the image at `url` as `policy` allows, following redirects. Unbounded in
    /// time: the caller sets the limit.
    pub async fn fetch(&self, url: &str, policy: &FetchPolicy) -> Result<Fetched, FetchError> {
        let mut current = Url::parse(url).map_err(|_| FetchError::Refused {
            refusal: Refusal::Url,
            redirected: false,
        })?;
        for hop in 0..=MAX_REDIRECTS {
            let refused = |refusal| FetchError::Refused {
                refusal,
                redirected: hop > 0,
            };
            let uri = check_url(&current, &policy.hosts, &policy.addresses).map_err(refused)?;
            let response = self
                .dialer
                .get(uri, policy.addresses.clone())
                .await
                .map_err(|e| match e {
                    DialError::Refused => refused(Refusal::Address),
                    DialError::Failed(why) => {
                        tracing::debug!(host = current.host_str().unwrap_or(""), error = %why, "image fetch failed");
                        FetchError::Failed
                    }
                })?;
            let status = response.status();
            if !is_redirect(status) {
                if !status.is_success() {
                    return Err(FetchError::Status(status.as_u16()));
                }
                return read(response, policy.max_bytes).await;
            }
            if hop == MAX_REDIRECTS {
                return Err(FetchError::Redirects);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(FetchError::Status(status.as_u16()))?;
            current = current.join(location).map_err(|_| FetchError::Refused {
                refusal: Refusal::Url,
                redirected: true,
            })?;
        }
        Err(FetchError::Redirects)
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Reads an image answer: its declared type first, then its length, then at most
/// `max_bytes` of body, then its first bytes.
async fn read(
    response: http::Response<UpstreamBody>,
    max_bytes: u64,
) -> Result<Fetched, FetchError> {
    let (parts, mut body) = response.into_parts();
    let declared = declared_type(&parts.headers).ok_or(FetchError::Type)?;
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|len| len > max_bytes) {
        return Err(FetchError::TooLarge);
    }
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| FetchError::Failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len().saturating_add(data.len()) > max {
            return Err(FetchError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    let bytes = buf.freeze();
    if sniff(&bytes) != Some(declared) {
        return Err(FetchError::Type);
    }
    Ok(Fetched {
        media_type: declared,
        bytes,
    })
}

/// The image type a `Content-Type` names, if it is one the sidecar fetches.
fn declared_type(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    let types = [
        ("image/png", "image/png"),
        ("image/jpeg", "image/jpeg"),
        ("image/jpg", "image/jpeg"),
        ("image/gif", "image/gif"),
        ("image/webp", "image/webp"),
    ];
    types
        .iter()
        .find(|(name, _)| essence.eq_ignore_ascii_case(name))
        .map(|(_, media_type)| *media_type)
}

/// The image type the first bytes show (each format's signature).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
pub(crate) mod tests;
