//! Request handling: which endpoint a path names, then authentication, the strict
//! checks and the scripted or healthy answer.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use super::auth::authenticate;
use super::render::{healthy, stream};
use super::validate::{self, Shape};
use super::{Gemini, JSON, wire};
use crate::mock::{Failure, Kind, Provider, Recorded, Reply, Resolved, status_code};

/// Which API a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Api<'a> {
    AiStudio,
    Vertex { project: &'a str, location: &'a str },
}

/// The model methods the mock serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Generate,
    Stream,
    Embed,
    BatchEmbed,
    Predict,
}

enum Route<'a> {
    Model {
        api: Api<'a>,
        model: &'a str,
        op: Op,
    },
    Token,
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    if path == "/token" {
        return Route::Token;
    }
    let Some((resource, method)) = path.rsplit_once(':') else {
        return Route::Unknown;
    };
    let op = match method {
        "generateContent" => Op::Generate,
        "streamGenerateContent" => Op::Stream,
        "embedContent" => Op::Embed,
        "batchEmbedContents" => Op::BatchEmbed,
        "predict" => Op::Predict,
        _ => return Route::Unknown,
    };
    for version in ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"] {
        if let Some(model) = resource.strip_prefix(version).filter(|m| !m.contains('/')) {
            return Route::Model {
                api: Api::AiStudio,
                model,
                op,
            };
        }
    }
    let segments: Vec<&str> = resource.split('/').collect();
    match segments.as_slice() {
        [
            "",
            "v1" | "v1beta1",
            "projects",
            project,
            "locations",
            location,
            "publishers",
            "google",
            "models",
            model,
        ] => Route::Model {
            api: Api::Vertex { project, location },
            model,
            op,
        },
        _ => Route::Unknown,
    }
}

/// A whole JSON answer.
pub(super) fn json(status: u16, body: Bytes) -> Resolved {
    Resolved::whole(status_code(status), JSON, body)
}

/// Google's error body.
pub(super) fn error(status: u16, message: &str, details: Vec<Value>) -> Resolved {
    json(status, wire::error(status, message, details))
}

impl Provider for Gemini {
    const JSON: &'static str = JSON;

    /// Google pretty-prints its JSON.
    fn json_body(&self, body: &Value) -> Bytes {
        wire::pretty(body)
    }

    /// The token endpoint, unknown URLs, authentication, and the strict checks answer
    /// before the script.
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        let path = req.path_only();
        match route(path) {
            Route::Token => {
                // Assertions name the endpoint as audience; the host is how it knows itself.
                let url = format!("http://{}/token", req.header("host").unwrap_or_default());
                let (status, body) = self.issuer.exchange(&req.headers, &req.body, &url);
                Some(json(status, wire::pretty(&body)))
            }
            Route::Unknown => Some(not_found_page(path)),
            Route::Model { .. } if req.method != Method::POST => Some(not_found_page(path)),
            Route::Model { api, model, op } => self.check(req, api, model, op).err(),
        }
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        let Route::Model { api, model, op } = route(req.path_only()) else {
            return Resolved::unsupported("Gemini", reply);
        };
        let sse = req.query().split('&').any(|p| p == "alt=sse");
        match reply.kind() {
            Kind::Ok => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let streaming = op == Op::Stream;
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                let response_id = format!("mock-response-{n:06}");
                let vertex = matches!(api, Api::Vertex { .. });
                let sse = streaming && sse;
                healthy(
                    model,
                    op,
                    vertex,
                    sse,
                    streaming,
                    &body,
                    &req.body,
                    &response_id,
                )
            }
            Kind::Chunks(chunks) => stream(chunks, sse),
            Kind::Malformed => json(
                200,
                Bytes::from_static(b"{\n  \"candidates\": [\n    {\n      \"content\": {"),
            ),
            _ => Resolved::unsupported("Gemini", reply),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        error(failure.status.as_u16(), &failure.message, Vec::new())
    }
}

impl Gemini {
    /// Authentication, the method's shape, then (when strict) Google's checks.
    fn check(&self, req: &Recorded, api: Api<'_>, model: &str, op: Op) -> Result<(), Resolved> {
        authenticate(self, api, model, req.query(), &req.headers)?;
        let vertex = matches!(api, Api::Vertex { .. });
        let shape = match (op, vertex) {
            (Op::Generate | Op::Stream, _) => Shape::Generate,
            (Op::Embed, _) => Shape::Embed,
            (Op::BatchEmbed, false) => Shape::BatchEmbed,
            (Op::Predict, true) => Shape::Predict,
            (Op::BatchEmbed | Op::Predict, _) => {
                let message = format!("Method not found for models/{model}.");
                return Err(error(404, &message, Vec::new()));
            }
        };
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            let message = "Invalid JSON payload received. Unexpected token.";
            return Err(error(400, message, Vec::new()));
        };
        if self.strict.load(Ordering::SeqCst) {
            let which = if vertex {
                validate::Api::Vertex
            } else {
                validate::Api::AiStudio
            };
            if let Some(refusal) = validate::check(which, shape, model, &body) {
                return Err(json(400, refusal));
            }
        }
        Ok(())
    }
}

/// Google's front end answers unknown URLs with an HTML page, not JSON.
fn not_found_page(path: &str) -> Resolved {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  \
         <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on this server.  \
         <ins>That’s all we know.</ins>\n"
    );
    Resolved::whole(
        StatusCode::NOT_FOUND,
        "text/html; charset=UTF-8",
        Bytes::from(page),
    )
}
