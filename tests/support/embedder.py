"""The local embedding service (`miroir embedder`) on loopback for a test's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from miroir.embedder import make_server
from tests.support.serving import serving


@contextlib.contextmanager
def local_embedder(**options: int) -> Iterator[str]:
    """Serve `miroir.embedder` on a free loopback port; yields its base URL."""
    with serving(make_server(0, **options), name="embedder") as url:
        yield url
