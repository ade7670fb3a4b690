"""A stdlib HTTP server (`socketserver` style) answering on a thread for a test's lifetime."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(server: Any, name: str = "http-server") -> Iterator[str]:
    """Serve `server` (bound to 127.0.0.1) on a daemon thread; yields its base URL; shuts
    it down, closes its socket and joins the thread on exit."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
