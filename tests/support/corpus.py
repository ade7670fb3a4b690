"""The Debian corpus shared by the tests: where it is and how to read a slice of it.

`../shared/datasets/debian-packages.ndjson.gz` next to the repository (as laid out for
developers and CI); `MIROIR_CORPUS` overrides the path.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
from pathlib import Path

from tests.support.paths import SHARED

CORPUS = Path(
    os.environ.get("MIROIR_CORPUS")
    or SHARED / "datasets" / "debian-packages.ndjson.gz"
)


def read_docs(n: int, *, stride: int = 1) -> list[dict]:
    """The first `n` records (every `stride`-th one when stride > 1)."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        lines = itertools.islice(f, 0, None, stride)
        return [json.loads(line) for line in itertools.islice(lines, n)]
