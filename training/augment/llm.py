"""A small client for OpenAI-compatible chat-completions APIs, with a JSONL answer cache.

``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature", "max_tokens"}``; the
answer is ``choices[0].message.content``. Every answer is appended to a JSONL cache keyed by a hash of
the request (model, messages, temperature, max_tokens): a rerun asks nothing it has asked before, so it is
free and reproducible. Transient failures (HTTP 408/409/429/500/502/503/504, timeouts, refused
connections) are retried with exponential back-off (honouring ``Retry-After``); requests are spaced to
respect ``requests_per_minute``. The API key comes from the environment variable the config names and is
sent only in the ``Authorization`` header: it is never logged, cached or put in an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.errors import EarshotError
from training.config import LLMConfig

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMError(EarshotError):
    """The language-model endpoint failed (after retries) or answered something unusable."""


def request_key(model: str, messages: Sequence[dict], temperature: float, max_tokens: int) -> str:
    """The cache key of one request: sha256 of its canonical JSON."""
    doc = {"model": model, "messages": list(messages), "temperature": temperature, "max_tokens": max_tokens}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LLMClient:
    """Chat completions with caching, retries and rate limiting. ``available`` is false without a URL."""

    def __init__(
        self,
        config: LLMConfig,
        cache_path: str | Path,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.cache_path = Path(cache_path)
        self._sleep = sleep
        self._clock = clock
        self._last_request = -1e18
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self.requests_sent = 0
        self.cache_hits = 0
        self._load_cache()

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    @property
    def available(self) -> bool:
        return bool(self.config.base_url)

    # -- cache ----------------------------------------------------------------------------------------

    def _load_cache(self) -> None:
        if not self.cache_path.is_file():
            return
        bad = 0
        for line in self.cache_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                self._cache[entry["key"]] = entry["answer"]
            except (ValueError, KeyError, TypeError):
                bad += 1
        if bad:
            log.warning("LLM cache %s: %d unreadable line(s) ignored", self.cache_path, bad)

    def _store(self, key: str, messages: Sequence[dict], answer: str) -> None:
        self._cache[key] = answer
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "model": self.config.model, "messages": list(messages), "answer": answer}
        with open(self.cache_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    # -- requests -------------------------------------------------------------------------------------

    def chat(self, messages: Sequence[dict], *, temperature: float | None = None) -> str:
        """The assistant's answer (stripped) to ``messages`` (``[{"role", "content"}, …]``).

        Raises :class:`LLMError` when no endpoint is configured, or when the endpoint keeps failing.
        """
        temp = self.config.temperature if temperature is None else float(temperature)
        key = request_key(self.config.model, messages, temp, self.config.max_tokens)
        with self._lock:
            if key in self._cache:
                self.cache_hits += 1
                return self._cache[key]
        if not self.available:
            raise LLMError("no language-model endpoint is configured (augment.llm.base_url is empty)")
        payload = {
            "model": self.config.model,
            "messages": list(messages),
            "temperature": temp,
            "max_tokens": self.config.max_tokens,
        }
        answer = self._post(payload).strip()
        if not answer:
            raise LLMError(f"the language model at {self.config.base_url} returned an empty answer")
        with self._lock:
            self._store(key, messages, answer)
        return answer

    def ask(self, prompt: str, *, system: str | None = None, temperature: float | None = None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return self.chat(messages, temperature=temperature)

    def _throttle(self) -> None:
        rpm = self.config.requests_per_minute
        if rpm > 0:
            wait = self._last_request + 60.0 / rpm - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _post(self, payload: dict) -> str:
        url = self.config.base_url.rstrip("/") + "/chat/completions"
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        attempts = max(0, self.config.retries) + 1
        problem = ""
        for attempt in range(attempts):
            self._throttle()
            retry_after: float | None = None
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    raw = response.read()
                return _answer_text(raw, url)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                problem = f"HTTP {exc.code} {exc.reason}: {detail}".strip()
                if exc.code not in RETRY_STATUSES:
                    raise LLMError(f"the language model at {url} refused the request ({problem})") from None
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except TimeoutError:
                problem = f"no answer within {self.config.timeout_s:g} s"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    problem = f"no answer within {self.config.timeout_s:g} s"
                else:
                    problem = f"cannot connect: {exc.reason}"
            except (ConnectionError, OSError) as exc:
                problem = f"connection failed: {exc}"
            if attempt + 1 < attempts:
                delay = retry_after if retry_after is not None else self.config.backoff_s * (2**attempt)
                log.info(
                    "LLM request failed (%s); retry %d/%d in %.2f s",
                    problem,
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise LLMError(f"the language model at {url} failed {attempts} time(s): {problem}")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _answer_text(raw: bytes, url: str) -> str:
    try:
        doc = json.loads(raw)
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"the language model at {url} sent an answer that is not a chat completion") from exc
    if not isinstance(content, str):
        raise LLMError(f"the language model at {url} sent a non-text answer")
    return content
