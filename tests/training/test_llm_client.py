"""The LLM client against a small fake OpenAI-compatible server on 127.0.0.1 (real HTTP, no mocks of the
client): caching, retries on 429/500, timeouts, refusals, rate limiting, the key never leaking, and the
offline fallback that says so."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from training.augment.llm import LLMClient, LLMError
from training.augment.rewrite import CaptionRewriter
from training.config import LLMConfig

KEY = "sk-test-0123456789-secret"


class FakeServer:
    """Answers ``POST /v1/chat/completions``. ``script`` holds responses to send first, in order:
    ``{"status": int, "delay": s, "headers": {...}}``; afterwards every request gets 200 with
    ``"echo: <last user message>"``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                step = server.script.pop(0) if server.script else {"status": 200}
                time.sleep(step.get("delay", 0.0))
                status = step["status"]
                if status == 200:
                    content = "echo: " + body["messages"][-1]["content"]
                    payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                else:
                    payload = {"error": {"message": f"scripted {status}"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in step.get("headers", {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


def _client(server: FakeServer, cache: Path, sleeps: list[float] | None = None, **kw: object) -> LLMClient:
    cfg = LLMConfig(
        base_url=server.url,
        model="fake-model",
        api_key_env="EARSHOT_TEST_LLM_KEY",
        timeout_s=float(kw.pop("timeout_s", 5.0)),  # type: ignore[arg-type]
        retries=int(kw.pop("retries", 3)),  # type: ignore[call-overload]
        backoff_s=0.01,
        requests_per_minute=0,
        **kw,  # type: ignore[arg-type]
    )
    record = sleeps if sleeps is not None else []
    return LLMClient(cfg, cache, sleep=record.append)


def test_answers_are_cached_by_prompt_and_the_key_never_leaks(server, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("EARSHOT_TEST_LLM_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "cache.jsonl"
    client = _client(server, cache)
    assert client.ask("hello there") == "echo: hello there"
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["body"]["model"] == "fake-model" and req["body"]["messages"][-1]["content"] == "hello there"
    # Same prompt again, and from a fresh client reading the cache file: no request.
    assert client.ask("hello there") == "echo: hello there"
    assert _client(server, cache).ask("hello there") == "echo: hello there"
    assert len(server.requests) == 1 and client.cache_hits == 1
    # A different prompt is a new request.
    client.ask("something else")
    assert len(server.requests) == 2
    assert KEY not in cache.read_text(encoding="utf-8")
    assert KEY not in caplog.text and KEY not in repr(client)


def test_retries_on_429_and_500_and_honours_retry_after(server, tmp_path) -> None:
    server.script = [{"status": 429, "headers": {"Retry-After": "0.25"}}, {"status": 500}, {"status": 503}]
    sleeps: list[float] = []
    client = _client(server, tmp_path / "c.jsonl", sleeps, retries=3)
    assert client.ask("retry me") == "echo: retry me"
    assert len(server.requests) == 4
    assert sleeps == [0.25, pytest.approx(0.02), pytest.approx(0.04)]  # Retry-After, then back-off 0.01·2^n


def test_gives_up_after_the_retries_with_a_clear_error(server, tmp_path) -> None:
    server.script = [{"status": 500}] * 3
    with pytest.raises(LLMError, match="failed 3 time"):
        _client(server, tmp_path / "c.jsonl", retries=2).ask("never")
    assert len(server.requests) == 3


def test_a_refused_request_is_not_retried(server, tmp_path) -> None:
    server.script = [{"status": 400}]
    with pytest.raises(LLMError, match="refused the request.*400"):
        _client(server, tmp_path / "c.jsonl").ask("bad")
    assert len(server.requests) == 1


def test_timeout_is_retried_then_reported(server, tmp_path) -> None:
    server.script = [{"status": 200, "delay": 0.6}]
    client = _client(server, tmp_path / "c.jsonl", timeout_s=0.2, retries=1)
    assert client.ask("slow") == "echo: slow"  # the first attempt timed out, the retry answered
    assert len(server.requests) == 2
    server.script = [{"status": 200, "delay": 0.6}]
    with pytest.raises(LLMError, match="no answer within 0.2 s"):
        _client(server, tmp_path / "d.jsonl", timeout_s=0.2, retries=0).ask("slower")


def test_requests_are_spaced_by_the_rate_limit(server, tmp_path) -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    cfg = LLMConfig(base_url=server.url, model="m", requests_per_minute=120, api_key_env="")
    client = LLMClient(cfg, tmp_path / "c.jsonl", sleep=sleep, clock=lambda: now[0])
    client.ask("one")
    client.ask("two")
    now[0] += 0.1
    client.ask("three")
    assert sleeps == [pytest.approx(0.5), pytest.approx(0.4)]  # 120/min → 0.5 s apart


def test_back_translation_and_merging_go_through_the_model(server, tmp_path) -> None:
    rewriter = CaptionRewriter(_client(server, tmp_path / "c.jsonl"))
    assert rewriter.generator == "llm:fake-model"
    out = rewriter.back_translate("a dog barks", "German", np.random.default_rng(0))
    assert len(server.requests) == 2  # there and back
    assert "German" in server.requests[0]["body"]["messages"][-1]["content"]
    assert out.startswith("echo: Translate this text into English")
    merged = rewriter.merge("a dog barks", "rain falls", -9.0)
    assert "quieter than" in server.requests[2]["body"]["messages"][-1]["content"] and merged.startswith(
        "echo:"
    )


def test_without_an_endpoint_the_offline_fallback_is_used_and_announced(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    client = LLMClient(LLMConfig(), tmp_path / "c.jsonl")
    with pytest.raises(LLMError, match="no language-model endpoint"):
        client.ask("hi")
    rewriter = CaptionRewriter(client)
    assert rewriter.generator == "rules"
    assert "offline rule-based fallback" in caplog.text
    assert (
        rewriter.merge("a dog barks", "rain falls", -9.0) == "a dog barks with rain falls in the background"
    )
    assert rewriter.merge("a dog barks", "rain falls", 0.0) == "a dog barks and rain falls"
    para = rewriter.back_translate("a dog barking loudly", "French", np.random.default_rng(1))
    assert para != "a dog barking loudly" and ("dog" in para or "hound" in para or "canine" in para)
