"""A local HTTP server that speaks enough Anthropic and OpenAI for their real SDK clients.

Point `AsyncAnthropic(base_url=harness.anthropic_base_url)` or
`AsyncOpenAI(base_url=harness.openai_base_url)` at it; it answers `POST /v1/messages` and
`POST /v1/chat/completions`, records every request, and injects faults on demand::

    with ProviderHarness() as harness:
        harness.fail_next("anthropic", "rate_limited", times=2)
        ...
        assert len(harness.requests_for("anthropic")) == 1

It runs a stdlib `ThreadingHTTPServer` on 127.0.0.1 on a free port in a daemon thread, so
async tests can await the SDKs in the main thread while it answers.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args

ProviderName = Literal["anthropic", "openai"]
FaultKind = Literal[
    "rate_limited",  # 429 with Retry-After
    "server_error",  # 500
    "overloaded",  # 529 with Anthropic's overloaded_error body
    "slow",  # sleeps `slow_seconds` before a normal answer: longer than the client timeout
    "malformed",  # 200, JSON content type, a body that is not JSON
    "wrong_shape",  # 200, valid JSON that is not a message/completion
    "invalid_request",  # 400
    "unauthorized",  # 401
    "refusal",  # 200, a content-policy refusal in the provider's success shape
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
_PATHS: dict[str, ProviderName] = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai"}
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "api-key"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the harness saw it; credentials are left out."""

    provider: ProviderName
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _State:
    reply_text: str = "Hello from the harness."
    input_tokens: int = 100
    output_tokens: int = 20
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    retry_after: float = 7.0
    slow_seconds: float = 2.0
    # Seconds between the pieces of a streamed answer (`"stream": true` requests).
    stream_delay: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: dict[str, deque[str]] = field(
        default_factory=lambda: {"anthropic": deque(), "openai": deque()}
    )
    # Scripted answers: queued texts first (one per successful answer), then `reply_fn`
    # (called with the request, outside the lock), then `reply_text`.
    replies: deque[str] = field(default_factory=deque)
    reply_fn: Callable[[RecordedRequest], str] | None = None
    # A provider that answers every request with one fault until told otherwise (`outage`).
    outages: dict[str, str] = field(default_factory=dict)


class ProviderHarness:
    """Fake Anthropic + OpenAI endpoints with recorded requests and a fault queue.

    Settable attributes (read when a request arrives): `reply_text`; `input_tokens` (the
    uncached input, reported as Anthropic's `input_tokens` and as OpenAI's
    `prompt_tokens - cached_tokens`); `output_tokens`; `cached_tokens` (Anthropic
    `cache_read_input_tokens`, OpenAI `prompt_tokens_details.cached_tokens`);
    `cache_write_tokens` (Anthropic `cache_creation_input_tokens`); `retry_after` (seconds,
    for `rate_limited`); `slow_seconds` (for `slow`); `stream_delay` (seconds between the
    pieces of a streamed answer: a request with `"stream": true` is answered as server-sent
    events in its provider's format); `reply_fn` (a callable taking the
    `RecordedRequest` and returning the answer text, for replies that depend on the prompt).
    `queue_replies(...)` scripts the next answers in order.
    """

    def __init__(self) -> None:
        """Create the harness; the server starts on `start()` or `with`."""
        self._lock = threading.Lock()
        self._state = _State()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Settings are forwarded to the state so handler threads read them under the lock.
    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and hasattr(_State, name):
            with self._lock:
                setattr(self._state, name, value)
            return
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            return getattr(self._state, name)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        if self._server is None:
            raise RuntimeError("the harness is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_base_url(self) -> str:
        """The `base_url` for `AsyncAnthropic` (it appends `/v1/messages`)."""
        return self.base_url

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `AsyncOpenAI` (it appends `/chat/completions`)."""
        return self.base_url + "/v1"

    def start(self) -> ProviderHarness:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        # A short poll interval: `shutdown()` waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="provider-harness",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes handlers sleeping in a `slow` fault."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ProviderHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail_next(self, provider: ProviderName, kind: FaultKind, *, times: int = 1) -> None:
        """Answer the next `times` requests to `provider` with fault `kind`, then normally."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._state.faults[provider].extend([kind] * times)

    def outage(self, provider: ProviderName, kind: FaultKind | None) -> None:
        """Answer every request to `provider` with fault `kind` (after any queued faults)
        until called again with None: a provider down for as long as the test says."""
        with self._lock:
            if kind is None:
                self._state.outages.pop(provider, None)
            else:
                self._state.outages[provider] = kind

    def queue_replies(self, *texts: str) -> None:
        """Answer the next successful requests (any provider) with `texts`, in order."""
        with self._lock:
            self._state.replies.extend(texts)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._state.requests)

    def requests_for(self, provider: ProviderName) -> list[RecordedRequest]:
        """The requests received for one provider, oldest first."""
        return [r for r in self.requests if r.provider == provider]

    def reset(self) -> None:
        """Forget recorded requests and pending faults; keep the server and settings."""
        with self._lock:
            self._state.requests.clear()
            for queue in self._state.faults.values():
                queue.clear()
            self._state.replies.clear()

    def _record(self, request: RecordedRequest) -> tuple[str | None, _State]:
        # Returns the fault to apply and a snapshot of the settings for this answer.
        with self._lock:
            self._state.requests.append(request)
            queue = self._state.faults[request.provider]
            fault = queue.popleft() if queue else self._state.outages.get(request.provider)
            scripted = None
            if fault is None and self._state.replies:
                scripted = self._state.replies.popleft()
            snapshot = replace(self._state)
        if fault is None and scripted is None and snapshot.reply_fn is not None:
            scripted = snapshot.reply_fn(request)  # outside the lock: it may read `requests`
        if scripted is not None:
            snapshot = replace(snapshot, reply_text=scripted)
        return fault, snapshot

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _anthropic_ok(body: dict[str, Any], s: _State, *, refusal: bool = False) -> dict[str, Any]:
    return {
        "id": "msg_harness",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-test"),
        "content": [{"type": "text", "text": "" if refusal else s.reply_text}],
        "stop_reason": "refusal" if refusal else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cache_read_input_tokens": s.cached_tokens,
            "cache_creation_input_tokens": s.cache_write_tokens,
        },
    }


def _openai_ok(body: dict[str, Any], s: _State, *, refusal: bool = False) -> dict[str, Any]:
    return {
        "id": "chatcmpl-harness",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model", "gpt-test"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None if refusal else s.reply_text,
                    "refusal": "I can't help with that." if refusal else None,
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": s.input_tokens + s.cached_tokens,
            "completion_tokens": s.output_tokens,
            "total_tokens": s.input_tokens + s.cached_tokens + s.output_tokens,
            "prompt_tokens_details": {"cached_tokens": s.cached_tokens},
        },
    }


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text) or [text]


def _sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _anthropic_events(body: dict[str, Any], s: _State) -> Iterator[str]:
    whole = _anthropic_ok(body, s)
    start = {**whole, "content": [], "stop_reason": None}
    start["usage"] = {**whole["usage"], "output_tokens": 1}
    yield _sse({"type": "message_start", "message": start}, "message_start")
    yield _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    for piece in _pieces(s.reply_text):
        delta = {"type": "content_block_delta", "index": 0}
        yield _sse({**delta, "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": s.output_tokens},
        },
        "message_delta",
    )
    yield _sse({"type": "message_stop"}, "message_stop")


def _openai_events(body: dict[str, Any], s: _State) -> Iterator[str]:
    whole = _openai_ok(body, s)
    base = {k: whole[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**base, "choices": [choice], "usage": None})

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(s.reply_text):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield _sse({**base, "choices": [], "usage": whole["usage"]})
    yield _sse("[DONE]")


_ERRORS: dict[str, tuple[int, str, str]] = {
    # kind: (status, Anthropic error type, OpenAI error code)
    "rate_limited": (429, "rate_limit_error", "rate_limit_exceeded"),
    "server_error": (500, "api_error", "server_error"),
    "overloaded": (529, "overloaded_error", "overloaded"),
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "unauthorized": (401, "authentication_error", "invalid_api_key"),
}


def _error_body(provider: ProviderName, kind: str) -> tuple[int, dict[str, Any]]:
    status, anthropic_type, openai_code = _ERRORS[kind]
    message = f"harness fault: {kind}"
    if provider == "anthropic":
        return status, {"type": "error", "error": {"type": anthropic_type, "message": message}}
    return status, {
        "error": {"message": message, "type": openai_code, "param": None, "code": openai_code}
    }


def _stream(
    handler: BaseHTTPRequestHandler,
    harness: ProviderHarness,
    provider: ProviderName,
    body: dict[str, Any],
    state: _State,
) -> None:
    """The answer as its provider streams it, a piece (a word) every `stream_delay`."""
    events = _anthropic_events if provider == "anthropic" else _openai_events
    try:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("request-id", "req_harness")
        handler.send_header("x-request-id", "req_harness")
        handler.end_headers()
        for n, event in enumerate(events(body, state)):
            if n and state.stream_delay:
                harness._sleep(state.stream_delay)
            handler.wfile.write(event.encode())
            handler.wfile.flush()
        handler.close_connection = True
    except (BrokenPipeError, ConnectionResetError):
        pass


def _make_handler(harness: ProviderHarness) -> type[BaseHTTPRequestHandler]:  # noqa: C901
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep pytest output clean

        def do_POST(self) -> None:  # noqa: N802
            provider = _PATHS.get(self.path.split("?", 1)[0])
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if provider is None:
                self._send(404, {"error": {"type": "not_found_error", "message": self.path}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparseable": raw.decode("utf-8", "replace")}
            headers = {
                k.lower(): v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS
            }
            fault, state = harness._record(RecordedRequest(provider, self.path, headers, body))
            self._answer(provider, fault, body, state)

        def _answer(
            self, provider: ProviderName, fault: str | None, body: dict[str, Any], state: _State
        ) -> None:
            ok = _anthropic_ok if provider == "anthropic" else _openai_ok
            if fault == "slow":
                harness._sleep(state.slow_seconds)
                fault = None  # then answers as usual
            if fault is None and body.get("stream"):
                _stream(self, harness, provider, body, state)
            elif fault is None:
                self._send(200, ok(body, state))
            elif fault == "refusal":
                self._send(200, ok(body, state, refusal=True))
            elif fault == "malformed":
                self._send_raw(200, b'{"id": "broken", "content": [', {})
            elif fault == "wrong_shape":
                self._send(200, {"unexpected": True})
            else:
                status, error = _error_body(provider, fault)
                extra = {"retry-after": f"{state.retry_after:g}"} if status == 429 else {}
                self._send(status, error, extra)

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send_raw(status, json.dumps(payload).encode(), headers or {})

        def _send_raw(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_harness")  # Anthropic's name
                self.send_header("x-request-id", "req_harness")  # OpenAI's name
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the `slow` fault); nothing left to tell it

    return Handler
