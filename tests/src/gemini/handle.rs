//! Request handling: which endpoint a path names, then authentication, the strict
//! checks and the scripted or healthy answer, turned into a response.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::auth::authenticate;
use super::render::{healthy, stream};
use super::server::{Body, drip, full, lock};
use super::validate::{self, Shape};
use super::{EVENT_STREAM, JSON, Kind, Recorded, Reply, Shared, Spec, status_code, wire};

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

/// A response worked out for one request.
pub(super) struct Resolved {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) frames: Vec<Bytes>,
    /// Cut the connection after this many frames.
    pub(super) cut_after: Option<usize>,
    pub(super) delay: Duration,
}

impl Resolved {
    pub(super) fn json(status: u16, body: Bytes) -> Resolved {
        Resolved {
            status: status_code(status),
            content_type: JSON,
            frames: vec![body],
            cut_after: None,
            delay: Duration::ZERO,
        }
    }

    pub(super) fn error(status: u16, message: &str, details: Vec<Value>) -> Resolved {
        Resolved::json(status, wire::error(status, message, details))
    }
}

pub(super) async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    shared.count.fetch_add(1, Ordering::SeqCst);
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    lock(&shared.requests).push(Recorded {
        method: parts.method.clone(),
        path: parts
            .uri
            .path_and_query()
            .map_or(path.clone(), |pq| pq.as_str().to_owned()),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let (resolved, spec) = match route(&path) {
        Route::Token => {
            let (status, json) = shared
                .issuer
                .exchange(&parts.headers, &body, &shared.token_url);
            (Some(Resolved::json(status, wire::pretty(&json))), None)
        }
        Route::Unknown => (not_found_page(&path), None),
        Route::Model { .. } if parts.method != Method::POST => (not_found_page(&path), None),
        Route::Model { api, model, op } => {
            match model_request(&shared, api, model, op, &query, &parts.headers, &body) {
                Ok((resolved, spec)) => (resolved, Some(spec)),
                Err(resolved) => (resolved, None),
            }
        }
    };
    let Some(resolved) = resolved else {
        return std::future::pending().await;
    };
    let spec = spec.unwrap_or_else(|| Reply::ok().0);
    let delay = spec.delay + resolved.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(respond(&spec, resolved))
}

/// Google's front end answers unknown URLs with an HTML page, not JSON.
fn not_found_page(path: &str) -> Option<Resolved> {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  \
         <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on this server.  \
         <ins>That’s all we know.</ins>\n"
    );
    Some(Resolved {
        status: StatusCode::NOT_FOUND,
        content_type: "text/html; charset=UTF-8",
        frames: vec![Bytes::from(page)],
        cut_after: None,
        delay: Duration::ZERO,
    })
}

/// Authentication, validation, then the scripted or healthy answer. `Err` is an
/// answer given before a reply was taken from the script; `Ok(None, _)` hangs.
#[allow(clippy::type_complexity)]
fn model_request(
    shared: &Shared,
    api: Api<'_>,
    model: &str,
    op: Op,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Option<Resolved>, Arc<Spec>), Option<Resolved>> {
    authenticate(shared, api, model, query, headers).map_err(Some)?;
    let vertex = matches!(api, Api::Vertex { .. });
    let shape = match (op, vertex) {
        (Op::Generate | Op::Stream, _) => Shape::Generate,
        (Op::Embed, _) => Shape::Embed,
        (Op::BatchEmbed, false) => Shape::BatchEmbed,
        (Op::Predict, true) => Shape::Predict,
        (Op::BatchEmbed | Op::Predict, _) => {
            let message = format!("Method not found for models/{model}.");
            return Err(Some(Resolved::error(404, &message, Vec::new())));
        }
    };
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Err(Some(Resolved::error(
            400,
            "Invalid JSON payload received. Unexpected token.",
            Vec::new(),
        )));
    };
    if shared.strict.load(Ordering::SeqCst) {
        let which = if vertex {
            validate::Api::Vertex
        } else {
            validate::Api::AiStudio
        };
        if let Some(error) = validate::check(which, shape, model, &json) {
            return Err(Some(Resolved::json(400, error)));
        }
    }
    let reply = {
        let mut script = lock(&shared.script);
        script
            .queue
            .pop_front()
            .unwrap_or_else(|| script.default.clone())
    };
    let sse = query.split('&').any(|p| p == "alt=sse");
    let streaming = op == Op::Stream;
    let response_id = format!(
        "mock-response-{:06}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let resolved = match &reply.0.kind {
        Kind::Hang => None,
        Kind::Json(status, body) => Some(Resolved::json(status.as_u16(), body.clone())),
        Kind::Stream(chunks) => Some(stream(chunks, sse)),
        Kind::Raw(frames) => Some(Resolved {
            status: StatusCode::OK,
            content_type: EVENT_STREAM,
            frames: frames.to_vec(),
            cut_after: None,
            delay: Duration::ZERO,
        }),
        Kind::Ok => Some(healthy(
            model,
            op,
            vertex,
            streaming && sse,
            streaming,
            &json,
            body,
            &response_id,
        )),
    };
    Ok((resolved, Arc::clone(&reply.0)))
}

fn respond(spec: &Spec, resolved: Resolved) -> Response<Body> {
    let status = spec.status.unwrap_or(resolved.status);
    let cut_after = spec.disconnect_after.or(resolved.cut_after);
    let whole = spec.chunk_delay.is_zero() && cut_after.is_none() && resolved.frames.len() == 1;
    let body = if whole {
        full(resolved.frames.concat())
    } else {
        drip(resolved.frames, spec.chunk_delay, cut_after)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let overridden = |name: &HeaderName| spec.headers.iter().any(|(n, _)| n == name);
    if !overridden(&CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(resolved.content_type),
        );
    }
    for (name, value) in &spec.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}
