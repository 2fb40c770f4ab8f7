//! The Responses API's kept responses at the API's edge: `GET` and `DELETE
//! /v1/responses/{id}`, continuing a conversation from `previous_response_id`, and
//! keeping each answer that asks to be kept (`store`, true unless set false). The store
//! itself is [`super::store`].

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::api::{Proxy, json_response};
use super::body::ProxyBody;
use super::error::ApiError;
use super::store::{Missing, Turn};
use crate::domain::Call;

/// Serves `GET` or `DELETE /v1/responses/{id}` for the key `owner`.
pub fn serve(
    proxy: &Proxy,
    method: &Method,
    id: &str,
    owner: Option<&str>,
) -> Result<Response<ProxyBody>, ApiError> {
    if id.is_empty() || id.contains('/') {
        return Err(not_found(id));
    }
    if method == Method::DELETE {
        return match proxy.responses.delete(id, owner) {
            true => Ok(json_response(
                StatusCode::OK,
                &json!({"id": id, "object": "response.deleted", "deleted": true}),
            )),
            false => Err(not_found(id)),
        };
    }
    let body = proxy
        .responses
        .get(id, owner)
        .ok_or_else(|| not_found(id))?;
    let mut response = Response::new(ProxyBody::full(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        crate::domain::ErrorKind::NotFound,
        format!(
            "Response with id '{id}' not found. This sidecar keeps its own pod's responses in memory for a limited time; they do not survive a restart."
        ),
    )
    .with_code("response_not_found")
}

/// Prepares a Responses call: a call continuing a response this sidecar kept gets that
/// conversation's items ahead of its own input (and no `previous_response_id`, so every
/// provider sees the whole conversation); returns the turn to keep with the answer,
/// unless the call asked not to be kept.
///
/// A `previous_response_id` this sidecar does not know is left for the upstream: OpenAI
/// keeps its own responses. Providers reached through chat refuse it.
pub fn prepare(proxy: &Proxy, call: &mut Call, owner: Option<&str>) -> Result<Prepared, ApiError> {
    let body = &mut call.body;
    let input = match body.remove("input") {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let previous = match body.get("previous_response_id") {
        Some(Value::String(id)) => Some(id.clone()),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "Invalid 'previous_response_id': expected a string.",
            )
            .with_param("previous_response_id"));
        }
    };
    let keep = body.get("store").and_then(Value::as_bool) != Some(false);
    let turn_input = if keep {
        Bytes::from(serde_json::to_vec(&input).unwrap_or_default())
    } else {
        Bytes::new()
    };
    let mut items = Vec::new();
    let mut added = 0;
    let mut continued = None;
    if let Some(id) = &previous {
        match proxy.responses.history(id, owner) {
            Ok((history, bytes)) => {
                items = history;
                added = bytes;
                body.remove("previous_response_id");
                continued = Some(id.clone());
            }
            Err(Missing::Response(_)) => {}
            Err(Missing::Earlier(earlier)) => {
                return Err(ApiError::invalid_request(format!(
                    "Previous response with id '{id}' continues response '{earlier}', which this sidecar no longer keeps."
                ))
                .with_param("previous_response_id")
                .with_code("previous_response_not_found"));
            }
        }
    }
    call.estimated_tokens = call
        .estimated_tokens
        .saturating_add((added as u64).div_ceil(4));
    items.extend(input);
    body.insert("input".into(), Value::Array(items));
    Ok(Prepared {
        keep: keep.then_some(Turn {
            owner: owner.map(str::to_owned),
            previous,
            input: turn_input,
        }),
        continued,
    })
}

/// What [`prepare`] made of a Responses call.
pub struct Prepared {
    /// The turn to keep with the answer, unless the call asked not to be kept.
    pub keep: Option<Turn>,
    /// The response the call continued from this sidecar's store.
    pub continued: Option<String>,
}

/// Keeps a whole answer, for a turn that asked to be kept.
pub fn keep(proxy: &Proxy, turn: Turn, answer: Bytes) {
    proxy.responses.put(turn, answer);
}

/// A whole answer to a call that continued response `previous` here: the upstream got
/// the conversation instead of the id, so its answer names no previous response; the
/// client's SDK expects the one it named.
pub fn name_previous(answer: Bytes, previous: &str) -> Bytes {
    let Ok(Value::Object(mut response)) = serde_json::from_slice::<Value>(&answer) else {
        return answer;
    };
    if response
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return answer;
    }
    response.insert("previous_response_id".into(), previous.into());
    serde_json::to_vec(&response).map_or(answer, Bytes::from)
}
