"""The official OpenAI Python SDK against a running llmesh sidecar.

Run by `sidecar/tests/openai_sdk.rs`, which starts a mock upstream and a sidecar and
passes the sidecar's base URL in LLMESH_BASE_URL. The sidecar serves these models:

- chat, embed, text: healthy, through the mock upstream;
- limited: the upstream always answers 429, no retries, no fallbacks;
- broken: the upstream always answers 500, no retries, no fallbacks;
- small: the upstream always reports the context window exceeded;
- cut: the Rust driver queues a stream that the upstream cuts mid-way.
"""

import os

import openai
import pytest

BASE_URL = os.environ["LLMESH_BASE_URL"]


@pytest.fixture()
def client():
    # max_retries=0: the SDK's own retries would hide which error came back.
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-llmesh-test", max_retries=0, timeout=20)


def user(text):
    return [{"role": "user", "content": text}]


def test_chat(client):
    resp = client.chat.completions.create(model="chat", messages=user("hello there"))
    assert resp.object == "chat.completion"
    assert "hello there" in resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens > 0


def test_chat_stream(client):
    stream = client.chat.completions.create(model="chat", messages=user("stream me please"), stream=True)
    text = ""
    finish = None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert "stream me please" in text
    assert finish == "stop"


def test_chat_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="chat", messages=user("count"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert chunks[-1].choices == []


def test_completions(client):
    resp = client.completions.create(model="text", prompt="Say hi")
    assert resp.object == "text_completion"
    assert resp.choices[0].text


def test_embeddings(client):
    resp = client.embeddings.create(model="embed", input=["one", "two", "three"])
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert all(len(d.embedding) > 0 and isinstance(d.embedding[0], float) for d in resp.data)


def test_models(client):
    ids = {m.id for m in client.models.list()}
    assert {"chat", "embed", "limited", "broken", "small"} <= ids
    assert client.models.retrieve("chat").id == "chat"


def test_llmesh_headers(client):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=user("hi"))
    assert raw.headers["x-llmesh-deployment"] == "primary"
    assert raw.headers["x-llmesh-attempts"] == "1"
    assert float(raw.headers["x-llmesh-overhead-ms"]) >= 0
    assert raw.parse().choices[0].message.content


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-nope", messages=user("hi"))
    assert err.value.code == "model_not_found"
    assert err.value.status_code == 404


def test_rate_limit(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="limited", messages=user("hi"))
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after") is not None


def test_server_error(client):
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="broken", messages=user("hi"))
    assert err.value.status_code == 500


def test_context_window(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="small", messages=user("a very long prompt"))
    assert err.value.code == "context_length_exceeded"


def test_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="chat", messages="not a list")
    assert err.value.param == "messages"


def test_mid_stream_failure(client):
    stream = client.chat.completions.create(model="cut", messages=user("hi"), stream=True)
    seen = 0
    with pytest.raises(openai.APIError) as err:
        for _ in stream:
            seen += 1
    assert seen >= 1
    assert "upstream" in str(err.value.message).lower()
