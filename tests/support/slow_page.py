"""A local web page whose first fetch hangs until the test releases it; later fetches answer
at once. An agent's `http_get` of it holds the run at a known point (a tool call, which
heartbeats) for as long as a test needs, e.g. to kill the worker running it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"Refunds are accepted within 30 days of purchase."


@dataclass
class SlowPage:
    """Where the page is (`host:port`), how often it was fetched, and its two events."""

    address: str = ""
    hits: int = 0
    first_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def slow_page() -> Iterator[SlowPage]:
    """Serve a `SlowPage` on 127.0.0.1 for the block; its hold ends when the block does."""
    page = SlowPage()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            page.hits += 1
            if page.hits == 1:
                page.first_arrived.set()
                page.release.wait(60)
            try:
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker that asked is dead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    page.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield page
    finally:
        page.release.set()
        server.shutdown()
        server.server_close()
