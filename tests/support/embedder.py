"""The local embedding service (`miroir embedder`) on loopback for a test's lifetime."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from miroir.embedder import make_server


@contextlib.contextmanager
def local_embedder(**options: int) -> Iterator[str]:
    """Serve `miroir.embedder` on a free loopback port; yields its base URL."""
    server = make_server(0, **options)
    thread = threading.Thread(target=server.serve_forever, name="embedder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
