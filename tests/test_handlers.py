"""End to end through the real app, the upstream an httpx.MockTransport fake serving HF bytes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import FAKE, MODELS, app_client, make_config
from tests.fake_hf import FakeHF, Reply, sse, tgi_stream_events

Client = AsyncTestClient[Litestar]
USER = [{"role": "user", "content": "Hi"}]


def events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def stream_text(chunks: list[Any], key: str = "content") -> str:
    text = ""
    for chunk in chunks:
        if chunk == "[DONE]" or not chunk.get("choices"):
            continue
        choice = chunk["choices"][0]
        text += (choice.get("delta") or {}).get(key) or choice.get("text") or ""
    return text


# --- chat, every protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["tgi", "pipe", "t5", "router", "vllm"])
async def test_chat_non_stream(client: Client, model: str) -> None:
    r = await client.post("/v1/chat/completions", json={"model": model, "messages": USER})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == model
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello from TGI!",
        "refusal": None,
    } or (body["choices"][0]["message"]["content"] == "Hello from TGI!")
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@pytest.mark.parametrize("model", ["tgi", "pipe", "t5", "router", "vllm"])
async def test_chat_stream(client: Client, model: str) -> None:
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert stream_text(chunks) == "Hello from TGI!"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    assert len({c["id"] for c in chunks[:-1]}) == 1
    assert len({c["created"] for c in chunks[:-1]}) == 1


async def test_stream_without_include_usage_has_no_usage_chunk(client: Client) -> None:
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    chunks = events(r.text)
    assert all(c == "[DONE]" or c["choices"] for c in chunks)


@pytest.mark.parametrize("model", ["tgi", "pipe", "t5", "router", "vllm", "raw"])
async def test_completions(client: Client, fake: FakeHF, model: str) -> None:
    r = await client.post("/v1/completions", json={"model": model, "prompt": "Once"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Hello from TGI!"
    assert body["model"] == model


async def test_completions_stream(client: Client) -> None:
    r = await client.post(
        "/v1/completions", json={"model": "tgi", "prompt": "Once", "stream": True}
    )
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "text_completion" for c in chunks[:-1])
    assert stream_text(chunks) == "Hello from TGI!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


# --- translation details ------------------------------------------------------------------------


async def test_tgi_receives_rendered_prompt_and_template_stop(client: Client, fake: FakeHF) -> None:
    await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "max_tokens": 5}
    )
    body = fake.requests("/tgi/generate")[-1].json()
    assert body["inputs"] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert body["parameters"]["stop"] == ["<|im_end|>"]
    assert body["parameters"]["max_new_tokens"] == 5
    assert body["parameters"]["return_full_text"] is False


async def test_upstream_token_and_exact_headers(client: Client, fake: FakeHF) -> None:
    await client.post("/v1/chat/completions", json={"model": "pipe", "messages": USER})
    seen = fake.requests("/pipe")[-1]
    assert seen.headers["authorization"] == "Bearer hf_sekrit_default_token"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["accept"] in ("application/json", "*/*")
    await client.post("/v1/chat/completions", json={"model": "vllm", "messages": USER})
    assert (
        fake.requests("/vllm/v1/chat/completions")[-1].headers["authorization"]
        == "Bearer hf_endpoint_token_xyz"
    )


async def test_stop_text_removed_tgi(client: Client, fake: FakeHF) -> None:
    fake.tokens = ["The answer", " is 4", ". END", " ignored"]
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stop": "END"}
    )
    assert r.json()["choices"][0]["message"]["content"] == "The answer is 4. "
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "tgi", "messages": USER, "stop": ["END"], "stream": True},
    )
    assert stream_text(events(r.text)) == "The answer is 4. "


async def test_stop_emulated_on_pipeline(client: Client, fake: FakeHF) -> None:
    fake.tokens = ["one two", " three"]
    r = await client.post(
        "/v1/completions", json={"model": "pipe", "prompt": "x", "stop": [" two"]}
    )
    assert r.json()["choices"][0]["text"] == "one"
    assert "stop" not in fake.requests("/pipe")[-1].json()["parameters"]


async def test_template_end_marker_never_leaks(client: Client, fake: FakeHF) -> None:
    fake.tokens = ["Hi", "<|im_end|>", "\n<|im_start|>user"]
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert stream_text(events(r.text)) == "Hi"


async def test_length_finish_reason(client: Client, fake: FakeHF) -> None:
    fake.script(
        "/tgi/generate_stream",
        Reply(chunks=sse(*tgi_stream_events(["a", "b"], finish="length"), space=False)),
    )
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert [c for c in events(r.text) if c != "[DONE]"][-1]["choices"][0][
        "finish_reason"
    ] == "length"


async def test_tgi_stream_with_space_and_keepalive_comments(client: Client, fake: FakeHF) -> None:
    chunks = [b": keep-alive\n\n", *sse(*tgi_stream_events(["x", "y"]), space=True)]
    fake.script("/tgi/generate_stream", Reply(chunks=chunks))
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert stream_text(events(r.text)) == "xy"


async def test_n_choices_make_parallel_calls(client: Client, fake: FakeHF) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER, "n": 3})
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len(fake.requests("/tgi/generate")) == 3
    assert body["usage"]["prompt_tokens"] == 7  # the prompt counted once


async def test_logprobs_from_tgi_details(client: Client) -> None:
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "tgi", "messages": USER, "logprobs": True, "top_logprobs": 1},
    )
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == ["Hello", " from", " TGI", "!"]
    assert content[0]["logprob"] == -0.5 and content[0]["bytes"] == list(b"Hello")
    assert content[0]["top_logprobs"][0]["token"] == "Hello"


async def test_completion_echo_and_multiple_prompts(client: Client, fake: FakeHF) -> None:
    r = await client.post(
        "/v1/completions", json={"model": "tgi", "prompt": ["A", "B"], "echo": True}
    )
    texts = [c["text"] for c in r.json()["choices"]]
    assert texts == ["AHello from TGI!", "BHello from TGI!"]


async def test_router_completions_go_through_chat(client: Client, fake: FakeHF) -> None:
    r = await client.post(
        "/v1/completions", json={"model": "router", "prompt": "Say hi", "max_tokens": 3}
    )
    assert r.status_code == 200
    sent = fake.requests("/v1/chat/completions")[-1].json()
    assert sent["messages"] == [{"role": "user", "content": "Say hi"}]
    assert sent["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert r.json()["choices"][0]["text"] == "Hello from TGI!"


async def test_openai_passthrough_normalises_request(client: Client, fake: FakeHF) -> None:
    await client.post(
        "/v1/chat/completions",
        json={
            "model": "vllm",
            "messages": USER,
            "stop": "x",
            "stream_options": {"include_usage": True},
            "top_k": 3,
        },
    )
    sent = fake.requests("/vllm/v1/chat/completions")[-1].json()
    assert sent["stop"] == ["x"] and "stream_options" not in sent and sent["top_k"] == 3
    assert sent["model"] == "served-name"


async def test_openai_passthrough_repairs_tgi_quirks(client: Client, fake: FakeHF) -> None:
    tool_call = {
        "id": 0,
        "type": "function",
        "function": {"name": "f", "arguments": {"a": 1}, "description": None},
    }
    fake.script(
        "/vllm/v1/chat/completions",
        Reply(json={"id": "", "object": "chat.completion", "created": 1, "model": "x",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    )  # fmt: skip
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": "vllm",
            "messages": USER,
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
    )
    choice = r.json()["choices"][0]
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "call_0" and call["function"]["arguments"] == '{"a":1}'
    assert choice["finish_reason"] == "tool_calls"
    assert r.json()["id"].startswith("chatcmpl-") and r.json()["model"] == "vllm"


async def test_chat_without_template_is_400_but_completions_work(client: Client) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "raw", "messages": USER})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "chat_template_missing"
    assert "chat_template" in r.json()["error"]["message"]


async def test_hub_template_fetched_at_startup_and_cached(fake: FakeHF, tmp_path: Any) -> None:
    fake.script(
        "/hub/org/model/resolve/main/tokenizer_config.json",
        Reply(
            json={
                "chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>",
                "eos_token": "</s>",
            }
        ),
    )
    models = f"""
[huggingface]
token = "hf_hubtoken_123456"
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"
cache_dir = "{tmp_path}"
[models.hubbed]
task = "text-generation"
url = "{FAKE}/tgi"
hf_model = "org/model"
"""
    for _ in range(2):  # the second app start reads the disk cache
        async with app_client(fake, make_config(models)) as client:
            r = await client.post(
                "/v1/chat/completions", json={"model": "hubbed", "messages": USER}
            )
            assert r.status_code == 200, r.text
    assert fake.requests("/tgi/generate")[-1].json()["inputs"] == "<user>Hi<assistant>"
    hub = fake.requests("/hub/org/model/resolve/main/tokenizer_config.json")
    assert len(hub) == 1
    assert hub[0].headers["authorization"] == "Bearer hf_hubtoken_123456"


# --- errors -------------------------------------------------------------------------------------


async def test_unknown_model_404(client: Client) -> None:
    r = await client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "message": "The model `nope` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


BAD_BODIES = [
    pytest.param(b"{not json", 400, None, id="malformed"),
    pytest.param(b"", 400, None, id="empty"),
    pytest.param(b"[]", 400, None, id="array"),
    pytest.param(b'{"model": "tgi"}', 400, "messages", id="missing-messages"),
    pytest.param(b'{"messages": [{"role":"user","content":"x"}]}', 400, "model", id="missing-model"),
    pytest.param(b'{"model": 5, "messages": []}', 400, "model", id="model-int"),
    pytest.param(b'{"model":"tgi","messages":"hi"}', 400, "messages", id="messages-string"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"temperature":"hot"}', 400, "temperature", id="temperature-str"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"temperature":9}', 400, "temperature", id="temperature-range"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"max_tokens":-1}', 400, "max_tokens", id="negative-max-tokens"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"max_tokens":1e400}', 400, None, id="huge-number"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"n":1000}', 400, "n", id="n-too-big"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}', 400, "stop", id="five-stops"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}', 400, "messages[0].content", id="image-part"),
    pytest.param(b'{"model":"tgi","messages":[{"role":"user","content":"\xff\xfe"}]}', 400, None, id="invalid-utf8"),
    pytest.param(b"[" * 5000 + b"]" * 5000, 400, None, id="deeply-nested"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "param"), BAD_BODIES)
async def test_bad_bodies_get_clean_envelopes(
    client: Client, body: bytes, status: int, param: str | None
) -> None:
    r = await client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in r.text


async def test_huge_string_is_accepted_and_oversize_body_413(fake: FakeHF) -> None:
    async with app_client(fake, make_config(server="max_body_bytes = 2097152")) as client:
        big = "x" * 1_000_000
        r = await client.post("/v1/completions", json={"model": "tgi", "prompt": big})
        assert r.status_code == 200
        r = await client.post("/v1/completions", json={"model": "tgi", "prompt": big * 3})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"


async def test_wrong_content_type_415(client: Client) -> None:
    r = await client.post(
        "/v1/chat/completions",
        content=b"model=tgi",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_framework_errors_are_envelopes(client: Client) -> None:
    r = await client.get("/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = await client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


async def test_task_mismatch_is_400(fake: FakeHF) -> None:
    models = MODELS + f'\n[models.emb]\ntask = "feature-extraction"\nurl = "{FAKE}/tei"\n'
    async with app_client(fake, make_config(models)) as client:
        r = await client.post("/v1/chat/completions", json={"model": "emb", "messages": USER})
        assert r.status_code == 400 and "feature-extraction" in r.json()["error"]["message"]
        r = await client.post("/v1/embeddings", json={"model": "tgi", "input": "x"})
        assert r.status_code == 400 and "text-generation" in r.json()["error"]["message"]


UPSTREAM_FAILURES = [
    pytest.param(Reply(422, json={"error": "Input validation error: `inputs` must be <= 10 tokens", "error_type": "validation"}), 400, "context_length_exceeded", id="422"),
    pytest.param(Reply(424, json={"error": "Request failed during generation", "error_type": "generation"}), 502, "upstream_error", id="424"),
    pytest.param(Reply(429, json={"error": "Model is overloaded", "error_type": "overloaded"}), 429, "upstream_overloaded", id="429"),
    pytest.param(Reply(500, body=b"oops"), 502, "upstream_error", id="500"),
    pytest.param(Reply(200, body=b"<html>"), 502, "upstream_invalid_response", id="garbage-200"),
    pytest.param(Reply(200, json={"unexpected": True}), 502, "upstream_invalid_response", id="no-generated-text"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "status", "code"), UPSTREAM_FAILURES)
async def test_upstream_failures_map(
    client: Client, fake: FakeHF, reply: Reply, status: int, code: str | None
) -> None:
    fake.script("/tgi/generate", reply)
    r = await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
    assert r.status_code == status, r.text
    if code is not None:
        assert r.json()["error"]["code"] == code


async def test_stream_error_event_before_first_token_is_http_error(
    client: Client, fake: FakeHF
) -> None:
    fake.script(
        "/tgi/generate_stream",
        Reply(
            chunks=sse(
                {"error": "Input validation error: too long", "error_type": "validation"},
                space=False,
            )
        ),
    )
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert r.status_code == 400
    assert "too long" in r.json()["error"]["message"]


async def test_stream_error_after_first_token_is_one_error_event(
    client: Client, fake: FakeHF
) -> None:
    first = tgi_stream_events(["a"])[0]
    fake.script(
        "/tgi/generate_stream",
        Reply(chunks=sse(first, {"error": "CUDA OOM", "error_type": "generation"}, space=False)),
    )
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert r.status_code == 200
    chunks = events(r.text)
    errors = [c for c in chunks if c != "[DONE]" and "error" in c]
    assert len(errors) == 1 and "CUDA OOM" in errors[0]["error"]["message"]
    assert chunks[-1] == "[DONE]"


async def test_truncated_stream_is_an_error_not_a_short_answer(
    client: Client, fake: FakeHF
) -> None:
    fake.script(
        "/tgi/generate_stream", Reply(chunks=sse(*tgi_stream_events(["a", "b"])[:2], space=False))
    )
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    chunks = events(r.text)
    assert any(c != "[DONE]" and "error" in c for c in chunks)


async def test_connection_refused_is_502_with_clear_message(fake: FakeHF) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    from prometheus_client import CollectorRegistry

    from shim.app import create_app

    app = create_app(
        make_config(), transport=httpx.MockTransport(refuse), registry=CollectorRegistry()
    )
    async with AsyncTestClient(app=app) as client:
        r = await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "Could not connect to the upstream http://fake-hf.test/tgi/generate" in error["message"]
    assert "hf_sekrit" not in r.text


# --- models, health, headers --------------------------------------------------------------------


async def test_models(client: Client) -> None:
    r = await client.get("/v1/models")
    data = r.json()
    assert data["object"] == "list"
    ids = [m["id"] for m in data["data"]]
    assert ids == ["tgi", "pipe", "t5", "router", "vllm", "raw"]
    t5 = next(m for m in data["data"] if m["id"] == "t5")
    assert t5 == {"id": "t5", "object": "model", "created": t5["created"], "owned_by": "google"}
    r = await client.get("/v1/models/t5")
    assert r.json()["id"] == "t5"
    r = await client.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_model_ids_with_slashes(fake: FakeHF) -> None:
    models = f'[models."org/name"]\ntask = "text-generation"\nurl = "{FAKE}/tgi"\nchat_template = "chatml"\n'
    async with app_client(fake, make_config(models)) as client:
        r = await client.get("/v1/models/org/name")
        assert r.status_code == 200 and r.json()["id"] == "org/name"


async def test_health_ready_and_headers(client: Client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "tgi", "messages": USER},
        headers={"x-request-id": "abc-123"},
    )
    assert r.headers["x-request-id"] == "abc-123"
    assert float(r.headers["x-shim-overhead-ms"]) >= 0
    r = await client.get("/v1/models")
    assert len(r.headers["x-request-id"]) == 32


async def test_compressed_upstream_answers_are_decoded(client: Client, fake: FakeHF) -> None:
    import gzip

    body = json.dumps({"generated_text": "zipped", "details": None}).encode()
    fake.script(
        "/tgi/generate",
        Reply(
            body=gzip.compress(body),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        ),
    )
    r = await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
    assert r.json()["choices"][0]["message"]["content"] == "zipped"
    events_ = b"".join(sse(*tgi_stream_events(["z", "ip"]), space=False))
    fake.script(
        "/tgi/generate_stream",
        Reply(
            body=gzip.compress(events_),
            headers={"content-encoding": "gzip", "content-type": "text/event-stream"},
        ),
    )
    r = await client.post(
        "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
    )
    assert stream_text(events(r.text)) == "zip"
