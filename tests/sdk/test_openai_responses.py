"""The official OpenAI Python SDK's Responses API (`client.responses`) against the sidecar.

Run by `sidecar/tests/inbound_sdk.rs` (see `test_anthropic_sdk.py` for the environment):
LLMESH_BASE_URL is the sidecar's `/v1`, and every test runs against each model of
LLMESH_MODELS: `claude` (an Anthropic-format upstream, translated) and `gpt` (an
OpenAI-format upstream, native). Tests named `tool` need replies the Rust driver queues
on the upstreams first.
"""

import json
import os

import openai
import pytest

BASE_URL = os.environ["LLMESH_BASE_URL"]
KEY = os.environ["LLMESH_KEY"]
MODELS = os.environ["LLMESH_MODELS"].split(",")

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture()
def client():
    # max_retries=0: the SDK's own retries would hide which error came back.
    return openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=20)


@pytest.fixture(params=MODELS)
def model(request):
    return request.param


def test_create(client, model):
    resp = client.responses.create(model=model, input="hello there")
    assert resp.object == "response"
    assert resp.id
    assert resp.status == "completed"
    assert "hello there" in resp.output_text
    message = next(item for item in resp.output if item.type == "message")
    assert message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


def test_create_with_instructions_and_items(client, model):
    resp = client.responses.create(
        model=model,
        instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "item content"}]}],
    )
    assert "item content" in resp.output_text


def test_stream_events(client, model):
    events = list(client.responses.create(model=model, input="stream me please", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    for kind in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_item.done",
    ]:
        assert kind in kinds, kinds
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers)), numbers
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "stream me please" in text
    done = events[-1].response
    assert done.status == "completed"
    assert done.output_text == text
    assert done.usage is not None and done.usage.total_tokens > 0
    assert events[0].response.id == done.id


def test_stream_helper(client, model):
    with client.responses.stream(model=model, input="helper stream") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "helper stream" in "".join(deltas)
    assert final.output_text == "".join(deltas)
    assert final.usage.output_tokens > 0


def test_tool_loop(client, model):
    items = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=model, input=items, tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    assert json.loads(call.arguments) == {"city": "Paris"}
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24C"})
    second = client.responses.create(model=model, input=items, tools=[WEATHER])
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]


def test_tool_loop_streamed(client, model):
    items = [{"role": "user", "content": "And in Rome?"}]
    with client.responses.stream(model=model, input=items, tools=[WEATHER]) as stream:
        kinds = [e.type for e in stream]
        first = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "Rainy"})
    with client.responses.stream(model=model, input=items, tools=[WEATHER]) as stream:
        second = stream.get_final_response()
    assert second.output_text


def test_previous_response_retrieve_and_delete(client, model):
    first = client.responses.create(model=model, input="My name is Ada.", store=True)
    second = client.responses.create(model=model, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.id != first.id
    assert second.output_text

    got = client.responses.retrieve(first.id)
    assert got.id == first.id
    assert got.status == "completed"
    assert got.output_text == first.output_text

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    # The second response is kept on its own.
    assert client.responses.retrieve(second.id).id == second.id


def test_unknown_previous_response(client, model):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=model, input="hi", previous_response_id="resp_does_not_exist")
    assert err.value.param == "previous_response_id"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="no-such-model", input="hi")
    assert err.value.status_code == 404


def test_bad_key(model):
    bad = openai.OpenAI(base_url=BASE_URL, api_key="sk-llmesh-not-a-real-key-000", max_retries=0, timeout=20)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.create(model=model, input="hi")
