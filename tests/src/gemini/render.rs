//! Turning answers into bodies: scripted streams as SSE or a JSON array, and the
//! healthy model's plans, whole, streamed or deliberately broken.

use bytes::Bytes;
use serde_json::Value;

use super::behave::{self, Answer, GenerateRequest, Planned};
use super::handle::{self, Op};
use super::{EVENT_STREAM, JSON, embed, thought, wire};
use crate::mock::Resolved;

/// A scripted stream: SSE events (`data: …\r\n\r\n`) or a JSON array.
pub(super) fn stream(chunks: &[Value], sse: bool) -> Resolved {
    let frames = if sse {
        chunks.iter().map(sse_event).collect()
    } else {
        json_array(chunks)
    };
    Resolved::frames(if sse { EVENT_STREAM } else { JSON }, frames)
}

/// One SSE event as Gemini frames it: compact JSON, CRLF line ends.
fn sse_event(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\r\n\r\n"))
}

/// Without `alt=sse` Google streams one pretty-printed JSON array, element by element.
fn json_array(chunks: &[Value]) -> Vec<Bytes> {
    let mut frames: Vec<Bytes> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let lead = if i == 0 { "[" } else { ",\r\n" };
            let text = serde_json::to_string_pretty(c).unwrap_or_default();
            Bytes::from(format!("{lead}{text}"))
        })
        .collect();
    if frames.is_empty() {
        frames.push(Bytes::from_static(b"["));
    }
    frames.push(Bytes::from_static(b"]"));
    frames
}

#[allow(clippy::too_many_arguments)]
pub(super) fn healthy(
    model: &str,
    op: Op,
    vertex: bool,
    sse: bool,
    streaming: bool,
    json: &Value,
    body: &[u8],
    response_id: &str,
) -> Resolved {
    if let Some(code) = model
        .strip_prefix("mock-error-")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return handle::json(code, behave::scripted_error(code, model));
    }
    match op {
        Op::Embed => return handle::json(200, wire::pretty(&embed::single(model, json))),
        Op::BatchEmbed => return handle::json(200, wire::pretty(&embed::batch(model, json))),
        Op::Predict => return handle::json(200, wire::pretty(&embed::predict(json))),
        Op::Generate | Op::Stream => {}
    }
    let req = GenerateRequest::parse(body);
    let render = |planned: &Planned| -> Resolved {
        if streaming {
            stream(&planned.chunks(vertex, response_id), sse)
        } else {
            handle::json(200, wire::pretty(&planned.whole(vertex, response_id)))
        }
    };
    let answer = thought::sign(
        model,
        behave::answer(thought::behaviour(model), &req),
        response_id,
    );
    match &answer {
        Answer::Planned(planned) => render(planned),
        Answer::Error(code, body) => handle::json(*code, body.clone()),
        Answer::Slow(planned, delay) => render(planned).with_delay(*delay),
        Answer::Malformed(planned) | Answer::GarbledLater(planned) if streaming => {
            let keep = usize::from(matches!(answer, Answer::GarbledLater(_)));
            let mut resolved = render(planned);
            resolved.frames.truncate(keep);
            resolved.frames.push(Bytes::from_static(
                b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\r\n\r\n",
            ));
            resolved
        }
        Answer::Malformed(planned) | Answer::GarbledLater(planned) => {
            let mut resolved = render(planned);
            let whole = resolved.frames.concat();
            resolved.frames = vec![Bytes::copy_from_slice(&whole[..whole.len() / 2])];
            resolved
        }
        Answer::Cut(planned) => {
            let mut resolved = render(planned);
            if !streaming {
                let whole = resolved.frames.concat();
                let half = whole.len() / 2;
                resolved.frames = vec![
                    Bytes::copy_from_slice(&whole[..half]),
                    Bytes::copy_from_slice(&whole[half..]),
                ];
            }
            resolved.cut_after = Some(if streaming {
                2.min(resolved.frames.len().saturating_sub(1))
            } else {
                1
            });
            resolved
        }
        Answer::StreamError(planned) => {
            if !streaming {
                return handle::json(503, behave::scripted_error(503, model));
            }
            let mut resolved = render(planned);
            resolved.frames.truncate(1);
            let error = wire::error_value(
                503,
                "The model is overloaded. Please try again later.",
                Vec::new(),
            );
            resolved.frames.push(if sse {
                sse_event(&error)
            } else {
                Bytes::from(format!(
                    ",\r\n{}]",
                    serde_json::to_string_pretty(&error).unwrap_or_default()
                ))
            });
            resolved
        }
    }
}
