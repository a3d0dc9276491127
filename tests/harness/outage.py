"""Loopback HTTP servers for tests: any handler on 127.0.0.1, and one that answers 503 until a moment the test sets."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Outage(SimpleHTTPRequestHandler):
    """Serves the folder, answering 503 while time.monotonic() < server.up_at (and counting those)."""

    def do_GET(self):
        if time.monotonic() < self.server.up_at:
            self.server.refused += 1
            self.send_error(503)
            return
        super().do_GET()

    do_HEAD = do_GET  # noqa: N815 - http.server dispatches on the method's name, do_<METHOD>

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler) -> Iterator[tuple[ThreadingHTTPServer, str]]:
    """(server, base URL) of a threading HTTP server of `handler` on 127.0.0.1, stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def outage_server(root: Path) -> Iterator[tuple[ThreadingHTTPServer, str]]:
    """(server, base URL) serving `root`; down (503) until the caller sets `server.up_at` (0: up now)."""
    with serving(functools.partial(_Outage, directory=str(root))) as (server, base):
        server.up_at, server.refused = math.inf, 0
        yield server, base
