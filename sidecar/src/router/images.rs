//! Image URLs for providers that take images only as bytes: before a call is sent to
//! such a deployment, the `http(s)` image URLs its provider cannot fetch are fetched by
//! the sidecar (see `upstream::fetch` and its SSRF guard) and written into the body as
//! the data URLs the providers already take.
//!
//! Which images: chat `image_url` parts (calls to the Messages and Responses APIs reach
//! such providers restated as chat, so their images are chat parts too), and, for a
//! Messages call a provider serves natively (Claude on Bedrock), `image` blocks with a
//! `url` source, in user turns and tool results. The deployment's dialect says which URLs
//! it needs as bytes ([`Dialect::needs_image_bytes`]).
//!
//! Once per call: the first attempt that needs the images fetches them, concurrently
//! ([`CONCURRENCY`] at a time) within the model's time limit (and the call's deadline),
//! and keeps the rewritten body, or the refusal, for every later attempt and deployment
//! under the same policy. A fallback model with another policy fetches under its own.
//!
//! A refused or failed fetch is the client's to fix: a 400 naming the image, with code
//! `image_url_refused` (the guard or the policy said no) or `image_fetch_failed`.
//!
//! Metrics: `llmesh_image_fetches_total{model,result}`, one per URL fetched or refused,
//! `result` from a fixed list (`ok`, `too_many_images`, and [`FetchError::label`]'s:
//! `refused_url`, `refused_host`, `refused_port`, `refused_address`,
//! `too_many_redirects`, `bad_status`, `too_large`, `bad_type`, `timeout`, `error`);
//! `llmesh_image_fetch_bytes_total{model}`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::config::snapshot::ImageFetchSpec;
use crate::domain::{CallView, Endpoint, ErrorClass, UpstreamError};
use crate::metrics::Metrics;
use crate::provider::Dialect;
use crate::provider::openai_wire::base64_encode;
use crate::router::routes::Model;
use crate::upstream::fetch::{FetchError, FetchPolicy, Fetched, ImageFetcher};
use crate::upstream::guard::{AddressPolicy, Cidr, HostRule};

/// Images of one call fetched at once.
pub const CONCURRENCY: usize = 4;

/// Most image bytes one call may fetch in all: the upstream body carries them again,
/// base64-encoded.
pub const MAX_CALL_BYTES: u64 = 64 * 1024 * 1024;

/// Largest `maxBytes` a model may set.
pub const MAX_IMAGE_BYTES: u64 = MAX_CALL_BYTES;

/// A model's image fetching, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Fetch at all.
    pub enabled: bool,
    /// Where from and how much.
    pub fetch: FetchPolicy,
    /// Time limit for all of one call's images.
    pub timeout: Duration,
    /// Most URLs fetched for one call.
    pub max_images: usize,
}

impl ImagePolicy {
    /// The policy a snapshot's spec describes, or what is wrong with it (naming the
    /// field).
    pub fn from_spec(spec: &ImageFetchSpec) -> Result<ImagePolicy, (&'static str, String)> {
        let hosts = spec
            .allowed_hosts
            .iter()
            .map(|h| h.parse::<HostRule>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("allowedHosts", e))?;
        let ranges = spec
            .allow_private_addresses
            .iter()
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("allowPrivateAddresses", e))?;
        if spec.max_bytes == 0 || spec.max_bytes > MAX_IMAGE_BYTES {
            return Err((
                "maxBytes",
                format!("must be between 1 and {MAX_IMAGE_BYTES}"),
            ));
        }
        if spec.timeout_ms == 0 {
            return Err(("timeoutMs", "must be positive".into()));
        }
        if spec.max_images == 0 {
            return Err((
                "maxImages",
                "must be positive (set enabled: false to fetch nothing)".into(),
            ));
        }
        Ok(ImagePolicy {
            enabled: spec.enabled,
            fetch: FetchPolicy {
                hosts,
                addresses: Arc::new(AddressPolicy::new(ranges)),
                max_bytes: spec.max_bytes,
            },
            // Longer than any call's deadline means "the call's deadline".
            timeout: Duration::from_millis(spec.timeout_ms.min(24 * 3600 * 1000)),
            max_images: usize::try_from(spec.max_images).unwrap_or(usize::MAX),
        })
    }
}

impl Default for ImagePolicy {
    fn default() -> Self {
        let spec = ImageFetchSpec::default();
        ImagePolicy {
            enabled: spec.enabled,
            fetch: FetchPolicy {
                hosts: Vec::new(),
                addresses: Arc::default(),
                max_bytes: spec.max_bytes,
            },
            timeout: Duration::from_millis(spec.timeout_ms),
            max_images: spec.max_images as usize,
        }
    }
}

/// A body with its images inlined, shared by the attempts that send it.
pub type Inlined = Arc<Map<String, Value>>;

/// One call's fetched images: what the first attempt that needed them made of them.
pub struct CallImages<'a> {
    fetcher: &'a ImageFetcher,
    done: Mutex<Vec<Done>>,
}

/// The outcome for one policy and body shape. Within a call the shape names the body:
/// a chat body is the client's (a chat call) or its restatement (a Messages or
/// Responses call through chat), never both; a Messages body is the client's.
struct Done {
    policy: Arc<ImagePolicy>,
    endpoint: Endpoint,
    outcome: Result<Inlined, UpstreamError>,
}

impl<'a> CallImages<'a> {
    /// Nothing fetched yet.
    pub fn new(fetcher: &'a ImageFetcher) -> Self {
        CallImages {
            fetcher,
            done: Mutex::new(Vec::new()),
        }
    }

    /// The body `view` should carry to a deployment speaking `dialect`: `None` when it
    /// needs no image fetched (or `model` fetches none), else the body with every image
    /// it needs as bytes inlined, fetched now or by an earlier attempt.
    pub async fn inline(
        &self,
        model: &Model,
        dialect: &dyn Dialect,
        view: &CallView<'_>,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Option<Inlined>, UpstreamError> {
        let policy = &model.image_fetch;
        // Most providers take URLs themselves: their calls are not even walked.
        if !policy.enabled || !dialect.fetches_images(view.endpoint) {
            return Ok(None);
        }
        let urls = wanted(view.endpoint, view.body, |url| {
            dialect.needs_image_bytes(view.endpoint, url)
        });
        if urls.is_empty() {
            return Ok(None);
        }
        if let Some(outcome) = self.lock().iter().find_map(|d| {
            (d.endpoint == view.endpoint && *d.policy == **policy).then(|| d.outcome.clone())
        }) {
            return outcome.map(Some);
        }
        let outcome = self
            .fetch(model, &urls, deadline, metrics)
            .await
            .map(|images| Arc::new(rewrite(view.endpoint, view.body, &images)));
        self.lock().push(Done {
            policy: policy.clone(),
            endpoint: view.endpoint,
            outcome: outcome.clone(),
        });
        outcome.map(Some)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Done>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches `urls` concurrently within the model's limits; the first failure ends
    /// the rest.
    async fn fetch(
        &self,
        model: &Model,
        urls: &[&str],
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Vec<(String, Fetched)>, UpstreamError> {
        let policy = &model.image_fetch;
        let count = |result: &str| {
            metrics
                .image_fetches
                .with_label_values(&[model.name.as_str(), result])
                .inc();
        };
        if urls.len() > policy.max_images {
            count("too_many_images");
            return Err(refused(
                "image_url_refused",
                format!(
                    "The request has {} image URLs to fetch; model `{}` fetches at most {} per call. Send the images as data URLs.",
                    urls.len(),
                    model.name,
                    policy.max_images
                ),
            ));
        }
        let limit = deadline.min(Instant::now() + policy.timeout);
        let mut waiting = urls.iter().copied().enumerate();
        let mut running = FuturesUnordered::new();
        for (index, url) in waiting.by_ref().take(CONCURRENCY) {
            running.push(fetch_one(self.fetcher, policy, limit, index, url));
        }
        let mut images: Vec<Option<Fetched>> = vec![None; urls.len()];
        let mut total = 0u64;
        while let Some((index, result)) = running.next().await {
            if let Some((index, url)) = waiting.next() {
                running.push(fetch_one(self.fetcher, policy, limit, index, url));
            }
            let url = urls.get(index).copied().unwrap_or_default();
            match result {
                Ok(image) => {
                    count("ok");
                    let size = image.bytes.len() as u64;
                    metrics
                        .image_fetch_bytes
                        .with_label_values(&[model.name.as_str()])
                        .inc_by(size);
                    total = total.saturating_add(size);
                    if total > MAX_CALL_BYTES {
                        return Err(refused(
                            "image_fetch_failed",
                            format!(
                                "The request's images add up to more than {MAX_CALL_BYTES} bytes, the most the sidecar fetches for one call."
                            ),
                        ));
                    }
                    if let Some(slot) = images.get_mut(index) {
                        *slot = Some(image);
                    }
                }
                Err(error) => {
                    count(error.label());
                    tracing::info!(model = %model.name, host = host(url), result = error.label(), "image URL not fetched");
                    return Err(failure(&error, index, url, policy));
                }
            }
        }
        Ok(urls
            .iter()
            .zip(images)
            .filter_map(|(url, image)| Some(((*url).to_owned(), image?)))
            .collect())
    }
}

/// Fetches image `index` by `limit`. Boxed: the fetches run in one
/// `FuturesUnordered`, and a future named here (rather than made by a closure over
/// borrowed data) keeps the call's future provably `Send`.
fn fetch_one<'f>(
    fetcher: &'f ImageFetcher,
    policy: &'f ImagePolicy,
    limit: Instant,
    index: usize,
    url: &'f str,
) -> BoxFuture<'f, (usize, Result<Fetched, FetchError>)> {
    Box::pin(async move {
        let result = tokio::time::timeout_at(limit, fetcher.fetch(url, &policy.fetch))
            .await
            .unwrap_or(Err(FetchError::Timeout));
        (index, result)
    })
}

/// The URL's host, for messages and logs (never its path or query, which may carry a
/// signature).
fn host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

fn refused(code: &'static str, message: String) -> UpstreamError {
    UpstreamError::answered(ErrorClass::Invalid, 400, message)
        .with_code(Some(code.to_owned()))
        .with_param(Some("messages".to_owned()))
}

/// The client's error for an image that was not fetched.
fn failure(error: &FetchError, index: usize, url: &str, policy: &ImagePolicy) -> UpstreamError {
    let why = match error {
        FetchError::Refused {
            refusal,
            redirected,
        } => {
            let led = if *redirected {
                "it was redirected to a URL that "
            } else {
                "it "
            };
            format!(
                "{led}{}. Send the image as a data URL, or allow it in the LLMModel's imageFetch",
                refusal.reason()
            )
        }
        FetchError::Redirects => format!(
            "it was redirected more than {} times",
            crate::upstream::fetch::MAX_REDIRECTS
        ),
        FetchError::Status(status) => format!("the server answered HTTP {status}"),
        FetchError::TooLarge => format!(
            "it is larger than the limit of {} bytes",
            policy.fetch.max_bytes
        ),
        FetchError::Type => {
            "it is not a PNG, JPEG, GIF or WebP image (by its Content-Type and its first bytes)"
                .to_owned()
        }
        FetchError::Timeout => format!(
            "the images were not fetched within the time limit ({} ms)",
            policy.timeout.as_millis()
        ),
        FetchError::Failed => "the connection to its server failed".to_owned(),
    };
    let code = if error.is_refusal() {
        "image_url_refused"
    } else {
        "image_fetch_failed"
    };
    let host = host(url);
    let at = if host.is_empty() {
        String::new()
    } else {
        format!(" (host {host})")
    };
    refused(
        code,
        format!("Image URL #{}{at} was not fetched: {why}.", index + 1),
    )
}

/// Whether `url` is an `http` or `https` URL (the scheme in any case).
fn is_http(url: &str) -> bool {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// The distinct http(s) image URLs of a body that `needs` says must be fetched, in
/// order.
fn wanted<'b>(
    endpoint: Endpoint,
    body: &'b Map<String, Value>,
    needs: impl Fn(&str) -> bool,
) -> Vec<&'b str> {
    let mut urls: Vec<&str> = Vec::new();
    let mut add = |url: Option<&'b str>| {
        if let Some(url) = url
            && is_http(url)
            && needs(url)
            && !urls.contains(&url)
        {
            urls.push(url);
        }
    };
    for part in parts(body) {
        match endpoint {
            Endpoint::Messages => {
                for block in std::iter::once(part).chain(tool_result_blocks(part)) {
                    add(url_source(block));
                }
            }
            _ => add(part
                .get("image_url")
                .filter(|_| part.get("type").and_then(Value::as_str) == Some("image_url"))
                .and_then(|i| i.get("url"))
                .and_then(Value::as_str)),
        }
    }
    urls
}

/// Every content part of every message.
fn parts(body: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
}

/// The blocks of a Messages `tool_result` block's content.
fn tool_result_blocks(block: &Value) -> impl Iterator<Item = &Value> {
    block
        .get("content")
        .filter(|_| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The URL of a Messages `image` block with a `url` source.
fn url_source(block: &Value) -> Option<&str> {
    if block.get("type").and_then(Value::as_str) != Some("image") {
        return None;
    }
    let source = block.get("source")?;
    if source.get("type").and_then(Value::as_str) != Some("url") {
        return None;
    }
    source.get("url").and_then(Value::as_str)
}

/// A copy of `body` with each fetched image inlined: a chat part's URL becomes a data
/// URL (its `detail` kept); a Messages block's source becomes a base64 source.
fn rewrite(
    endpoint: Endpoint,
    body: &Map<String, Value>,
    images: &[(String, Fetched)],
) -> Map<String, Value> {
    let find = |url: &str| images.iter().find(|(u, _)| u == url).map(|(_, i)| i);
    let mut body = body.clone();
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return body;
    };
    let parts = messages
        .iter_mut()
        .filter_map(|m| m.get_mut("content").and_then(Value::as_array_mut))
        .flatten();
    for part in parts {
        match endpoint {
            Endpoint::Messages => {
                inline_source(part, &find);
                if part.get("type").and_then(Value::as_str) == Some("tool_result")
                    && let Some(blocks) = part.get_mut("content").and_then(Value::as_array_mut)
                {
                    for block in blocks {
                        inline_source(block, &find);
                    }
                }
            }
            _ => {
                if part.get("type").and_then(Value::as_str) != Some("image_url") {
                    continue;
                }
                let Some(url) = part.pointer_mut("/image_url/url") else {
                    continue;
                };
                if let Some(image) = url.as_str().and_then(&find) {
                    *url = Value::String(data_url(image));
                }
            }
        }
    }
    body
}

/// Replaces a Messages `image` block's `url` source by a base64 one, if it was fetched.
fn inline_source<'i>(block: &mut Value, find: &impl Fn(&str) -> Option<&'i Fetched>) {
    let Some(image) = url_source(block).and_then(find) else {
        return;
    };
    if let Some(source) = block.get_mut("source") {
        *source = json!({
            "type": "base64",
            "media_type": image.media_type,
            "data": base64_encode(&image.bytes),
        });
    }
}

fn data_url(image: &Fetched) -> String {
    format!(
        "data:{};base64,{}",
        image.media_type,
        base64_encode(&image.bytes)
    )
}

#[cfg(test)]
#[path = "images_tests.rs"]
mod tests;
