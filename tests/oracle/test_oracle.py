"""Oracle: Miroir over several devnodes answers every search like one devnode holding all.

The same 20,000 Debian packages are loaded into ONE devnode (the oracle) and into Miroir
(3 devnodes, RF 1; then 2 groups with RF 2 on 4 devnodes). Generated queries
(tests/support/oracle_queries.py, fixed seed) run against both; the answers must be equal up to
the differences listed in `ALLOWED DIFFERENCES` below, and nowhere else.

Two phases per configuration: the base settings, then a settings change (a custom
ranking rule, an index-wide distinctAttribute, a small maxValuesPerFacet with count
ordering) and more queries. The oracle's answers are computed once per module.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import miroir_proc, oracle_queries as oq
from tests.support.corpus import CORPUS, read_docs
from tests.support.devnodes import start_devnodes, wait_task

N_DOCS = 20_000
SEED = 20_240_611
N_BASE = 300
N_CUSTOM = 60
UID = "packages"
TASK_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 60.0
READABLE_TIMEOUT_S = 60.0
LOAD_BATCH = 1_000

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"corpus not found: {CORPUS}")


# ------------------------------------------------------------------- ALLOWED DIFFERENCES
#
# The only ways Miroir's answer may differ from the oracle's:
#
# 1. `processingTimeMs` (timing) and `requestUid` (a fresh UUID v7 per answer).
#
# Tied hits (equal `_rankingScoreDetails`) are compared in order too: one node orders them
# by internal document ids, which follow insertion order, and Miroir breaks ties by the
# insertion sequence it keeps with each document (README, "Tied hits"); this index is
# only ever added to, where the README says the orders are equal. With distinct, which
# member of a tie group represents a value follows from the same order.
# (`compare(..., ties_as_sets=True)` is for an index loaded in another order than the
# oracle's, e.g. from a dump, which lists documents shard by shard: one node orders tied
# hits by internal ids Miroir cannot know there, so a tie group is compared as a set of
# hit identities (by distinct value with distinct); a group cut by the page, the first
# when offset > 0 or the last of a full page, by size only.)
#
# Everything else must be equal: hit ids and order outside ties, every field of a hit
# (`_formatted`, `_rankingScore`, projections), facet values *and their order*, facet
# stats, totals, pagination fields, errors (status and body).


def _without_timing(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k not in ("processingTimeMs", "requestUid")}


def _tie_groups(hits: list[dict]) -> list[list[int]]:
    groups: list[list[int]] = []
    last = None
    for i, h in enumerate(hits):
        k = json.dumps(h.get("_rankingScoreDetails"), sort_keys=True)
        if groups and k == last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = k
    return groups


def compare(
    query: dict, distinct: str | None, oracle: tuple[int, dict], got: tuple[int, dict], *, ties_as_sets: bool = False
) -> list[str]:
    """Differences between the oracle's answer and Miroir's, per ALLOWED DIFFERENCES."""
    (o_status, o_body), (m_status, m_body) = oracle, got
    if o_status != m_status or o_status != 200:
        return [] if (o_status, o_body) == (m_status, m_body) else [f"status/body {o_status} {o_body} != {m_status} {m_body}"]
    problems = []
    o, m = _without_timing(o_body), _without_timing(m_body)
    for key in sorted(set(o) | set(m)):
        if key == "hits":
            continue
        if key == "facetDistribution":
            o_items = {f: list(v.items()) for f, v in (o.get(key) or {}).items()}
            m_items = {f: list(v.items()) for f, v in (m.get(key) or {}).items()}
            if o_items != m_items or list(o.get(key) or {}) != list(m.get(key) or {}):
                problems.append(f"facetDistribution {o_items} != {m_items}")
        elif o.get(key) != m.get(key):
            problems.append(f"{key}: {o.get(key)!r} != {m.get(key)!r}")

    # The oracle was asked with ranking details; strip what the client
    # did not ask for before comparing hit contents.
    o_hits, m_hits = o.get("hits", []), m.get("hits", [])
    if len(o_hits) != len(m_hits):
        return [*problems, f"hit count {len(o_hits)} != {len(m_hits)}"]
    strip = [k for k, asked in (("_rankingScore", query.get("showRankingScore")),
                                ("_rankingScoreDetails", query.get("showRankingScoreDetails"))) if not asked]
    clean = [{k: v for k, v in h.items() if k not in strip} for h in o_hits]
    if not ties_as_sets:
        for i, (oh, mh) in enumerate(zip(clean, m_hits)):
            if oh != mh:
                problems.append(f"hit {i}: {oh} != {mh}")
        return problems
    window = (query.get("offset", 0) > 0) or (query.get("page", 1) or 1) > 1
    full = len(o_hits) == (query.get("hitsPerPage") if "hitsPerPage" in query else query.get("limit", 20))
    groups = _tie_groups(o_hits)

    def ident(h: dict) -> object:
        if distinct and distinct in h:
            return json.dumps(h[distinct], sort_keys=True)
        return h.get("id")

    for gi, idx in enumerate(groups):
        cut = (gi == 0 and window) or (gi == len(groups) - 1 and full)
        o_set = sorted(map(str, (ident(clean[i]) for i in idx)))
        m_set = sorted(map(str, (ident(m_hits[i]) for i in idx)))
        if not cut and o_set != m_set:
            problems.append(f"tie group at {idx[0]}..{idx[-1]}: {o_set} != {m_set}")
            continue
        by_id = {clean[i].get("id"): clean[i] for i in idx}
        for i in idx:
            mh = m_hits[i]
            oh = by_id.get(mh.get("id"))
            if oh is not None and oh != mh:  # else another member of a cut group, or representative
                problems.append(f"hit {mh.get('id')}: {oh} != {mh}")
    return problems


# ------------------------------------------------------------------- fixtures


def load_docs() -> list[dict]:
    docs = read_docs(N_DOCS)
    assert len({d["id"] for d in docs}) == len(docs), "the corpus ids must be unique"
    return docs


def _task(client: httpx.Client, resp: httpx.Response) -> None:
    assert resp.status_code == 202, resp.text
    task = wait_task(str(client.base_url), resp.json()["taskUid"], timeout=TASK_TIMEOUT_S)
    assert task["status"] == "succeeded", task


@contextlib.contextmanager
def setup_index(url: str, docs: list[dict]) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)
    with client:
        _load(client, docs)
        yield client


def _load(client: httpx.Client, docs: list[dict]) -> None:
    _task(client, client.post("/indexes", json={"uid": UID, "primaryKey": oq.PRIMARY_KEY}))
    _task(client, client.patch(f"/indexes/{UID}/settings", json=oq.BASE_SETTINGS))
    # Batches of a realistic size (an SDK's default is 1,000): one huge request keeps a
    # devnode busy long enough to miss its health probes.
    for start in range(0, len(docs), LOAD_BATCH):
        _task(client, client.post(f"/indexes/{UID}/documents", json=docs[start : start + LOAD_BATCH]))


def oracle_body(query: dict) -> dict:
    return {**query, "showRankingScoreDetails": True}


def ask(client: httpx.Client, body: dict) -> tuple[int, dict]:
    r = client.post(f"/indexes/{UID}/search", json=body)
    assert "X-Miroir-Degraded" not in r.headers, f"degraded answer: {r.headers['X-Miroir-Degraded']}"
    return r.status_code, r.json()


def wait_readable(client: httpx.Client, n_docs: int) -> None:
    """Wait (bounded) until every shard answers: nodes busy indexing may have missed
    health probes and be held back from reads for a moment after the load."""
    deadline = time.monotonic() + READABLE_TIMEOUT_S
    while True:
        r = client.get(f"/indexes/{UID}/documents", params={"limit": 0})
        if r.status_code == 200 and "X-Miroir-Degraded" not in r.headers and r.json().get("total") == n_docs:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Miroir not fully readable after {READABLE_TIMEOUT_S}s: {r.headers} {r.text[:300]}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return load_docs()


@pytest.fixture(scope="module")
def queries(corpus) -> dict[str, list[dict]]:
    base = oq.generate(corpus, N_BASE, SEED)
    custom = oq.generate(corpus, N_CUSTOM, SEED + 1, distinct_setting=oq.CUSTOM_SETTINGS["distinctAttribute"])
    return {"base": base, "custom": custom}


@pytest.fixture(scope="module")
def oracle(corpus, queries) -> dict[str, list[tuple[int, dict]]]:
    """The single devnode's answers to every query of both phases."""
    with start_devnodes(1) as (node,), setup_index(node.url, corpus) as client:
        base = [ask(client, oracle_body(q)) for q in queries["base"]]
        _task(client, client.patch(f"/indexes/{UID}/settings", json=oq.CUSTOM_SETTINGS))
        custom = [ask(client, oracle_body(q)) for q in queries["custom"]]
    return {"base": base, "custom": custom}


def run_phase(client: httpx.Client, qs: list[dict], answers: list, distinct_setting: str | None) -> list[str]:
    failures = []
    for i, (q, expected) in enumerate(zip(qs, answers)):
        got = ask(client, q)
        problems = compare(q, q.get("distinct") or distinct_setting, expected, got)
        if problems:
            failures.append(f"query #{i} {json.dumps(q)}:\n    " + "\n    ".join(p[:600] for p in problems[:4]))
    return failures


def check_cluster(corpus, queries, oracle, **shape) -> None:
    with miroir_proc.start_cluster(**shape) as c, setup_index(c.url, corpus) as client:
        wait_readable(client, len(corpus))
        failures = run_phase(client, queries["base"], oracle["base"], None)
        _task(client, client.patch(f"/indexes/{UID}/settings", json=oq.CUSTOM_SETTINGS))
        wait_readable(client, len(corpus))
        failures += run_phase(
            client, queries["custom"], oracle["custom"], oq.CUSTOM_SETTINGS["distinctAttribute"]
        )
    total = len(queries["base"]) + len(queries["custom"])
    assert not failures, f"{len(failures)} of {total} queries differ:\n" + "\n".join(failures[:10])


def test_generated_queries_cover_every_feature(queries):
    qs = queries["base"] + queries["custom"]
    assert len(queries["base"]) >= 300
    seen = {
        "empty q": any(not q["q"] for q in qs),
        "multi-word q": any(len(q["q"].split()) >= 3 for q in qs),
        "filter": any("filter" in q for q in qs),
        "array filter": any(isinstance(q.get("filter"), list) for q in qs),
        "pinned id": any("id IN" in str(q.get("filter")) or "id =" in str(q.get("filter")) for q in qs),
        "facets": any("facets" in q for q in qs),
        "two-field sort": any(len(q.get("sort", [])) == 2 for q in qs),
        "distinct": any("distinct" in q for q in qs),
        "deep offset": any(q.get("offset", 0) >= 100 for q in qs),
        "page mode": any("page" in q for q in qs),
        "attributesToRetrieve": any("attributesToRetrieve" in q for q in qs),
        "highlight": any("attributesToHighlight" in q for q in qs),
        "crop": any("attributesToCrop" in q for q in qs),
    }
    assert all(seen.values()), [k for k, v in seen.items() if not v]


def test_oracle_three_nodes(corpus, queries, oracle):
    check_cluster(corpus, queries, oracle, nodes=3, groups=1, rf=1, shards=16)


def test_oracle_two_groups_rf2(corpus, queries, oracle):
    check_cluster(corpus, queries, oracle, nodes=4, groups=2, rf=2, shards=16)
