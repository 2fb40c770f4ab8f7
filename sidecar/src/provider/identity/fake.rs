//! An in-process HTTP endpoint for the identity flows' unit tests: answers from a
//! script and keeps every request. (The flows end to end, against mocks speaking each
//! service's wire format over real HTTP, are in `sidecar/tests/identity.rs`.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::upstream::{ResponseFuture, Transport, UpstreamRequest};

/// A request as sent.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Seen {
    /// The form fields of the body.
    pub fn form(&self) -> HashMap<String, String> {
        self.body
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// Answers `(status, headers, body)` in order, then the last one again.
#[derive(Default)]
pub struct Fake {
    answers: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        Arc::new(Fake::default())
    }

    pub fn answer(&self, status: u16, body: impl Into<String>) {
        self.answer_with(status, vec![], body);
    }

    pub fn answer_with(
        &self,
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: impl Into<String>,
    ) {
        self.answers
            .lock()
            .unwrap()
            .push_back((status, headers, body.into()));
    }

    /// Forgets the queued answers: from now on, this one.
    pub fn set(&self, status: u16, body: impl Into<String>) {
        self.answers.lock().unwrap().clear();
        self.answer(status, body);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Transport for Fake {
    fn send(&self, request: UpstreamRequest) -> ResponseFuture {
        let (status, headers, body) = {
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers
                    .front()
                    .cloned()
                    .unwrap_or((500, vec![], String::new()))
            }
        };
        let (parts, body_in) = request.into_parts();
        let recorded = async move {
            let bytes = body_in.collect().await.unwrap().to_bytes();
            Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        };
        let seen = futures_util::FutureExt::now_or_never(recorded).unwrap();
        self.seen.lock().unwrap().push(seen);
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        let response = response
            .body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .unwrap();
        Box::pin(std::future::ready(Ok(response)))
    }
}
