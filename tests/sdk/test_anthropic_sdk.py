"""The official Anthropic Python SDK against the sidecar's Messages API.

Run by `sidecar/tests/inbound_sdk.rs`, which starts two mock upstreams and a sidecar
and passes in, through the environment:

- LLMESH_ORIGIN: the sidecar's origin (the SDK appends /v1/messages);
- LLMESH_KEY, LLMESH_TIGHT_KEY: a virtual key, and one limited to 1 request a minute;
- LLMESH_MODELS: the models every test runs against, comma-separated: `claude` (an
  Anthropic-format upstream, native) and `gpt` (an OpenAI-format upstream, translated);
  each has an `<model>-overloaded` twin whose upstream is overloaded (Anthropic's 529, or
  OpenAI's 503), without retries.

Tests named `tool` need replies the Rust driver queues on the upstreams first.
"""

import os

import anthropic
import pytest

ORIGIN = os.environ["LLMESH_ORIGIN"]
KEY = os.environ["LLMESH_KEY"]
TIGHT_KEY = os.environ["LLMESH_TIGHT_KEY"]
MODELS = os.environ["LLMESH_MODELS"].split(",")

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def make(**kwargs):
    # max_retries=0: the SDK's own retries would hide which error came back.
    return anthropic.Anthropic(base_url=ORIGIN, max_retries=0, timeout=20, **kwargs)


@pytest.fixture()
def client():
    return make(api_key=KEY)


@pytest.fixture(params=MODELS)
def model(request):
    return request.param


def user(text):
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("auth", ["x-api-key", "bearer"])
def test_create(model, auth):
    # The SDK's default credential header is x-api-key; auth_token= sends a bearer token.
    client = make(api_key=KEY) if auth == "x-api-key" else make(api_key=None, auth_token=KEY)
    msg = client.messages.create(model=model, max_tokens=64, messages=user("hello there"))
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model
    assert msg.id
    assert msg.stop_reason == "end_turn"
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert "hello there" in text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_create_with_system_and_blocks(client, model):
    msg = client.messages.create(
        model=model,
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "block content"}]}],
    )
    assert "block content" in "".join(b.text for b in msg.content if b.type == "text")


def test_stream_helpers(client, model):
    with client.messages.stream(model=model, max_tokens=64, messages=user("stream me please")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "stream me please" in text
    assert final.stop_reason == "end_turn"
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.usage.output_tokens > 0


def test_stream_events(client, model):
    with client.messages.stream(model=model, max_tokens=64, messages=user("events")) as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert "message_delta" in kinds
    # The helper's own text events come with the raw deltas.
    assert "content_block_delta" in kinds and "text" in kinds


def test_raw_stream(client, model):
    events = list(client.messages.create(model=model, max_tokens=64, messages=user("raw"), stream=True))
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    deltas = [e for e in events if e.type == "message_delta"]
    assert len(deltas) == 1 and deltas[0].delta.stop_reason == "end_turn"


def test_tool_loop(client, model):
    messages = user("What is the weather in Paris?")
    first = client.messages.create(model=model, max_tokens=256, tools=[WEATHER], messages=messages)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].input == {"city": "Paris"}
    assert calls[0].id
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "Sunny, 24C"}]},
    ]
    second = client.messages.create(model=model, max_tokens=256, tools=[WEATHER], messages=messages)
    assert second.stop_reason == "end_turn"
    assert any(b.type == "text" and b.text for b in second.content)


def test_tool_loop_streamed(client, model):
    messages = user("And in Rome?")
    with client.messages.stream(model=model, max_tokens=256, tools=[WEATHER], messages=messages) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Rome"}
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Rainy"}]},
    ]
    with client.messages.stream(model=model, max_tokens=256, tools=[WEATHER], messages=messages) as stream:
        text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert text


def test_count_tokens(client, model):
    small = client.messages.count_tokens(model=model, messages=user("hi"))
    large = client.messages.count_tokens(model=model, messages=user("hi " * 200), tools=[WEATHER])
    assert small.input_tokens > 0
    assert large.input_tokens > small.input_tokens


def test_bad_key_is_authentication_error(model):
    with pytest.raises(anthropic.AuthenticationError) as err:
        make(api_key="sk-llmesh-not-a-real-key-000").messages.create(model=model, max_tokens=8, messages=user("hi"))
    assert err.value.status_code == 401
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "authentication_error"


def test_bad_key_as_bearer_is_authentication_error(model):
    client = make(api_key=None, auth_token="sk-llmesh-not-a-real-key-000")
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=model, max_tokens=8, messages=user("hi"))


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="no-such-model", max_tokens=8, messages=user("hi"))
    assert err.value.status_code == 404
    assert err.value.body["error"]["type"] == "not_found_error"


def test_bad_request(client, model):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=model, max_tokens=8, messages="not a list")
    assert err.value.status_code == 400
    assert err.value.body["error"]["type"] == "invalid_request_error"


def test_key_rate_limit(model):
    client = make(api_key=TIGHT_KEY)
    with pytest.raises(anthropic.RateLimitError) as err:
        # The key allows one request a minute, shared by every model's run.
        for _ in range(2):
            client.messages.create(model=model, max_tokens=8, messages=user("hi"))
    assert err.value.status_code == 429
    assert err.value.body["error"]["type"] == "rate_limit_error"


def test_overloaded_upstream(client, model):
    with pytest.raises(anthropic.InternalServerError) as err:
        client.messages.create(model=f"{model}-overloaded", max_tokens=8, messages=user("hi"))
    if model == "claude":
        # The Anthropic upstream said 529: the client sees Anthropic's overloaded error.
        assert err.value.status_code == 529
        assert isinstance(err.value, getattr(anthropic, "OverloadedError", anthropic.InternalServerError))
        assert err.value.body["error"]["type"] == "overloaded_error"
    else:
        assert err.value.status_code >= 500
