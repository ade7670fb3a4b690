"""milli's semantic score: the cosine similarity in f32, and the embedder's `distribution`
shift of the score shown.

The devnode ranks with these (devnode/vectors.py); Miroir needs them where the shown
score cannot order hits: a `distribution` clamps the shifted scores to ]0, 1] (f32
epsilon at the bottom, 1 at the top), and one node keeps the hits it clamps together in
similarity order (its buckets are distances) where a merge by score could not. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
# numpy is imported by the functions that compute: Miroir's search path reads only
# `distribution_of` here, and numpy costs ~11 MiB of RSS at start-up.

# milli's defaults when the setting gives no `distribution`: (mean, sigma) of a model's
# native similarities (openAi's default model is text-embedding-3-small)
_MODEL_DISTRIBUTIONS = {
    ("openAi", "text-embedding-ada-002"): (0.90, 0.08),
    ("openAi", "text-embedding-3-small"): (0.75, 0.1),
    ("openAi", "text-embedding-3-large"): (0.70, 0.1),
    ("huggingFace", "BAAI/bge-base-en-v1.5"): (0.85, 0.1),
}
_DEFAULT_MODEL = {"openAi": "text-embedding-3-small"}


def distribution_of(conf: Mapping[str, Any]) -> tuple[float, float] | None:
    """(mean, sigma) of an embedder's DistributionShift, or None (sigma <= 0 too)."""
    given = conf.get("distribution")
    if isinstance(given, Mapping) and "mean" in given and "sigma" in given:
        got: tuple[float, float] | None = (float(given["mean"]), float(given["sigma"]))
    elif conf.get("source") == "composite":  # the search embedder's, else the indexing one's
        got = None
        for part in ("searchEmbedder", "indexingEmbedder"):
            sub = conf.get(part)
            got = distribution_of(sub) if isinstance(sub, Mapping) else None
            if got is not None:
                break
    else:
        source = str(conf.get("source"))
        got = _MODEL_DISTRIBUTIONS.get((source, str(conf.get("model") or _DEFAULT_MODEL.get(source))))
    return got if got is not None and got[1] > 0 else None


def shift(scores: np.ndarray, distribution: tuple[float, float]) -> np.ndarray:
    """milli's shift, in f32: the native distribution retargeted to mean 0.5, sigma 0.4,
    clamped to ]0, 1] (f32 epsilon at the bottom)."""
    import numpy as np

    f32 = np.float32
    mean, sigma = distribution
    factor = f32(0.4) / f32(sigma)
    offset = f32(0.5) - factor * f32(mean)
    out = (factor * scores.astype(f32) + offset).astype(f32)
    out[out <= 0] = np.finfo(f32).eps
    return np.minimum(out, f32(1))


def similarities(rows: np.ndarray, norms: np.ndarray, query: Sequence[float]) -> np.ndarray:
    """Each row's similarity to `query`, as milli computes it (every step in f32):
    1 - (1 - dot / (|row| |query|)) / 2, 0.5 when a norm is zero."""
    import numpy as np

    q = np.asarray(query, dtype=np.float32)
    pnqn = norms * np.sqrt(np.float32(q @ q))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(pnqn > 0, np.clip((rows @ q) / pnqn, np.float32(-1), np.float32(1)), np.float32(0))
    one, two = np.float32(1), np.float32(2)
    return (one - (one - cos.astype(np.float32)) / two).astype(np.float32)


def best_similarity(query: Sequence[float], embeddings: Sequence[Sequence[float]]) -> float | None:
    """The best similarity of a document's embeddings to `query` (None: none, or of
    another dimension)."""
    import numpy as np

    if not embeddings:
        return None
    rows = np.asarray(embeddings, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != len(query):
        return None
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return float(similarities(rows, norms, query).max())
