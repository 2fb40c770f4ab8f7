//! The response cache at the API's edge (the cache itself is [`crate::cache`]): whether
//! a call to a model with a cache is answered from it ([`lookup`]), the answer a hit
//! gets, and keeping what the upstream answered: a whole answer at once
//! ([`Pending::keep`]), a stream as it reaches the client, folded into the whole answer
//! once it completed ([`Storing`]).
//!
//! Only answers of the model asked for are kept: an answer from a fallback (or a budget's
//! downgrade) stands in for a model that failed, and is not kept for its ttl. Errors
//! and streams that fail or are cut short are never kept.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::body::ProxyBody;
use crate::cache::replay::{Collector, replay};
use crate::cache::{Entry, Key, Outcome, Store, control, key};
use crate::config::snapshot::Pricing;
use crate::domain::{Call, Endpoint, Reply, Usage};
use crate::metrics::Metrics;
use crate::router::relay::{Relay, StreamEnd};
use crate::router::routes::Model;

/// The response header saying what the cache did: `hit`, `miss` or `bypass`.
pub const HEADER: &str = "x-llmesh-cache";

/// What the cache does for one call.
pub enum Lookup {
    /// The model has no cache.
    Off,
    /// Answered from the cache.
    Hit(Hit),
    /// Not answered from the cache: what it did (miss, refresh or bypass) and, unless
    /// bypassed, where the answer is to be kept.
    Routed(Outcome, Option<Pending>),
}

/// An answer from the cache, ready to send.
pub struct Hit {
    /// The body: the whole answer, or its stream replayed.
    body: Bytes,
    /// Whether `body` is an event stream.
    stream: bool,
    /// How long ago the answer was kept.
    age: Duration,
    /// The usage it carries was estimated (`x-llmesh-token-count: estimated`).
    usage_estimated: bool,
    /// What the call that kept it cost, micro-dollars.
    pub saved_micros: u64,
}

/// Where a call's answer is to be kept.
pub struct Pending {
    store: Arc<Store>,
    key: Key,
    endpoint: Endpoint,
}

/// Looks `call` up in `model`'s cache, for the virtual key `scope`. `stateful` says the
/// call continues a conversation the sidecar keeps (it is never cached).
pub fn lookup(
    model: &Model,
    call: &Call,
    scope: Option<&str>,
    headers: &HeaderMap,
    stateful: bool,
) -> Lookup {
    let Some(store) = &model.cache else {
        return Lookup::Off;
    };
    let asked = control::directives(headers);
    if asked.no_store || stateful || key::cacheable(call.endpoint, &call.body).is_err() {
        return Lookup::Routed(Outcome::Bypass, None);
    }
    let key = key::key(
        call.endpoint,
        scope,
        call.anthropic_beta.as_deref(),
        &call.body,
    );
    let pending = Pending {
        store: store.clone(),
        key,
        endpoint: call.endpoint,
    };
    if asked.no_cache {
        return Lookup::Routed(Outcome::Refresh, Some(pending));
    }
    let now = Instant::now();
    let Some(entry) = store.get(&key, now, asked.max_age) else {
        return Lookup::Routed(Outcome::Miss, Some(pending));
    };
    let body = if call.stream {
        let include_usage = call
            .body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        match replay(call.endpoint, &entry.body, include_usage) {
            Ok(events) => events,
            Err(why) => {
                // Kept answers were read when kept; one that cannot be replayed is
                // forgotten and the call routed.
                tracing::warn!(why = why.0, "a cached answer could not be replayed");
                store.remove(&key);
                return Lookup::Routed(Outcome::Miss, Some(pending));
            }
        }
    } else {
        entry.body.clone()
    };
    Lookup::Hit(Hit {
        body,
        stream: call.stream,
        age: now.saturating_duration_since(entry.stored),
        usage_estimated: entry.usage_estimated,
        saved_micros: entry.cost_micros,
    })
}

/// Counts an admitted call to a model with a cache.
pub fn count(metrics: &Metrics, model: &Model, outcome: Outcome) {
    metrics
        .cache_requests
        .with_label_values(&[model.name.as_str(), outcome.as_str()])
        .inc();
}

/// The answer to a hit: the body, its type, `x-llmesh-cache: hit` and `Age`.
pub fn hit_response(hit: Hit) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(hit.body));
    let headers = response.headers_mut();
    if hit.stream {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if hit.usage_estimated {
        headers.insert(
            "x-llmesh-token-count",
            HeaderValue::from_static("estimated"),
        );
    }
    headers.insert(HEADER, HeaderValue::from_static(Outcome::Hit.header()));
    headers.insert(header::AGE, HeaderValue::from(hit.age.as_secs()));
    response
}

impl Pending {
    /// Keeps a whole answer that cost `pricing`'s price of its usage.
    pub fn keep(&self, reply: &Reply, pricing: &Pricing) {
        self.put(
            reply.body.clone(),
            reply.usage,
            reply.usage_estimated,
            pricing,
        );
    }

    fn put(&self, body: Bytes, usage: Option<Usage>, usage_estimated: bool, pricing: &Pricing) {
        // An answer a stream could not be replayed from is not kept (it would have to be
        // refused later); embeddings never stream.
        if self.endpoint.streams() && replay(self.endpoint, &body, false).is_err() {
            tracing::debug!("an answer that cannot be replayed as a stream is not cached");
            return;
        }
        let kept = self.store.put(
            self.key,
            Entry {
                body,
                usage,
                usage_estimated,
                cost_micros: usage.map_or(0, |u| u.cost_micros(pricing)),
                stored: Instant::now(),
            },
        );
        if !kept {
            tracing::debug!("an answer larger than the cache's maxEntryBytes is not cached");
        }
    }
}

/// A relayed stream whose answer is kept once it completed: what the client is sent is
/// folded into the whole answer as it goes (at most the cache's `maxEntryBytes`).
pub struct Storing {
    relay: Box<Relay>,
    collector: Option<Collector>,
    pending: Pending,
    pricing: Pricing,
}

/// `body` (a relayed stream) kept in the cache once it completes; other bodies as they
/// are.
pub fn storing(body: ProxyBody, pending: Pending, pricing: Pricing) -> ProxyBody {
    match body {
        ProxyBody::Stream(relay) => {
            let limit = pending.store.max_entry_bytes();
            let collector = Collector::new(pending.endpoint, limit);
            ProxyBody::Storing(Box::new(Storing {
                relay,
                collector,
                pending,
                pricing,
            }))
        }
        other => other,
    }
}

impl Storing {
    /// The stream ended (or its last frame is out): keep its answer if it completed.
    fn ended(&mut self) {
        let Some(collector) = self.collector.take() else {
            return;
        };
        if self.relay.ended() != Some(StreamEnd::Complete) {
            return;
        }
        let usage = self.relay.usage();
        if let Some(body) = collector.finish(usage) {
            self.pending.put(body, usage, false, &self.pricing);
        }
    }
}

impl Body for Storing {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(this.relay.as_mut()).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let (Some(data), Some(collector)) = (frame.data_ref(), this.collector.as_mut())
        {
            collector.feed(data);
            if !collector.alive() {
                this.collector = None;
            }
        }
        // The relay knows how it ended before it hands out its last frame.
        if matches!(polled, Poll::Ready(None)) || this.relay.ended().is_some() {
            this.ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.relay.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.relay.size_hint()
    }
}
