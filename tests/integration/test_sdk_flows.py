"""Today's official clients run a whole flow against `miroir dev` unchanged (issue 13).

`meilisearch-python-sdk` 8.0.1's `AsyncClient` and the JS client `meilisearch` 0.62 (from
npm, installed by this test into a cache dir like tests/integration/test_browser_instantsearch.py does;
skipped saying why where Node.js or npm is missing) each drive one real `miroir dev`
process through: an index fed documents in JSON, NDJSON and CSV; searches with the 1.50
parameters (showPerformanceDetails, the `Meili-Include-Metadata` header where the client
can send it, facets, sort, highlight and crop, page mode); multi-search; federated search in
page mode; facet search with the extra fields clients send; a settings round-trip (what GET
answers is PATCHed back and nothing changes); tasks and batches; rename (PATCH of the uid,
swap with `rename`); stats. Every answer is checked against the corpus the test wrote.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.integration.test_browser_instantsearch import _npm_packages
from tests.integration.test_devmode import Dev
from tests.support.paths import DATA

KEY = "sdk-flows-master-key-0123456789"
JS_CLIENT = "meilisearch@0.62.0"
UUID7 = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
GENRES = ("drama", "comedy", "horror")
pytestmark = pytest.mark.timeout(240)


def _movies(first: int, count: int) -> list[dict]:
    """Small deterministic corpus: every word and facet value is known to the assertions."""
    out = []
    for i in range(first, first + count):
        out.append({
            "id": i,
            "title": f"{'star' if i % 2 == 0 else 'moon'} voyage number {i}",
            "genre": GENRES[(i // 4) % len(GENRES)],
            "year": 1990 + (i * 7) % 30,
            "overview": " ".join(["a long story about the sea and a quiet town far away"] * 4),
        })
    return out


JSON_DOCS = _movies(1, 10)
NDJSON_DOCS = _movies(11, 10)
CSV_DOCS = _movies(21, 10)
ALL_DOCS = JSON_DOCS + NDJSON_DOCS + CSV_DOCS
STAR = [d for d in ALL_DOCS if d["title"].startswith("star")]
# A CSV column without a `:number` type holds strings, as in Meilisearch: the ids read back are "21".. "30".
STORED = JSON_DOCS + NDJSON_DOCS + [{**d, "id": str(d["id"])} for d in CSV_DOCS]


def _by_id(docs: list[dict]) -> list[dict]:
    return sorted(docs, key=lambda d: int(d["id"]))


def _ndjson(docs: list[dict]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def _csv(docs: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "title", "genre", "year:number", "overview"])
    for d in docs:
        writer.writerow([d["id"], d["title"], d["genre"], d["year"], d["overview"]])
    return buf.getvalue()


def _genre_counts(docs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in docs:
        counts[d["genre"]] = counts.get(d["genre"], 0) + 1
    return counts


SETTINGS = {"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"],
            "searchableAttributes": ["title", "overview"]}


@pytest.fixture(scope="module")
def miroir():
    with tempfile.TemporaryDirectory() as tmp:
        dev = Dev("--master-key", KEY, "--data-dir", str(Path(tmp) / "dev"))
        try:
            yield dev.wait_banner()["miroir"], Path(tmp)
        finally:
            dev.stop()


# ------------------------------------------------------------------ Python AsyncClient


def test_python_async_client_flow(miroir):
    url, tmp = miroir
    asyncio.run(_python_flow(url, tmp))


async def _python_flow(url: str, tmp: Path) -> None:
    from meilisearch_python_sdk import AsyncClient
    from meilisearch_python_sdk.models.search import Federation, SearchParams

    class PagedFederation(Federation):
        # 8.0.1's Federation model predates federated page mode; Meilisearch takes page over limit.
        page: int | None = None
        hits_per_page: int | None = None

    uid, renamed, other = "py_movies", "py_films", "py_other"
    (tmp / "py.ndjson").write_text(_ndjson(NDJSON_DOCS))
    (tmp / "py.csv").write_text(_csv(CSV_DOCS))
    async with AsyncClient(url, KEY, timeout=60) as client:
        async def done(task) -> None:
            result = await client.wait_for_task(task.task_uid, timeout_in_ms=60_000)
            assert result.status == "succeeded", result

        index = await client.create_index(uid, primary_key="id", wait=True, timeout_in_ms=60_000)
        await done(await index.update_settings(_sdk_settings(SETTINGS)))
        await done(await index.add_documents(JSON_DOCS, custom_metadata="json-batch"))
        await done(await index.add_documents_from_raw_file(tmp / "py.ndjson"))
        await done(await index.add_documents_from_raw_file(tmp / "py.csv"))
        got = await index.get_documents(limit=100)
        assert _by_id(got.results) == STORED

        # Search with the 1.50 parameters.
        res = await index.search(
            "star", facets=["genre"], sort=["year:desc"], attributes_to_highlight=["title"],
            attributes_to_crop=["overview"], crop_length=5, hits_per_page=4, page=2,
            show_performance_details=True,
        )
        assert res.total_hits == len(STAR) and res.total_pages == -(-len(STAR) // 4) and res.page == 2
        assert res.facet_distribution == {"genre": _genre_counts(STAR)}
        expected = [d["id"] for d in sorted(STAR, key=lambda d: (-d["year"]))][4:8]
        years = [h["year"] for h in res.hits]
        assert years == sorted(years, reverse=True) and len(res.hits) == 4
        assert {int(h["id"]) for h in res.hits} <= {d["id"] for d in STAR} and years == [
            next(d["year"] for d in ALL_DOCS if d["id"] == i) for i in expected]
        for hit in res.hits:
            assert "<em>star</em>" in hit["_formatted"]["title"], hit
            assert len(hit["_formatted"]["overview"].split()) <= 7 and "..." in hit["_formatted"]["overview"], hit  # the SDK sends cropMarker "..."
        assert isinstance(res.performance_details, dict) and res.performance_details, res

        # Multi-search, then federated search in page mode (totals exact over both queries).
        multi = await client.multi_search([
            SearchParams(index_uid=uid, query="star", limit=3),
            SearchParams(index_uid=uid, query="moon", filter="genre = drama"),
        ])
        assert [len(m.hits) for m in multi] == [3, len([d for d in ALL_DOCS if d["title"].startswith("moon") and d["genre"] == "drama"])]
        assert multi[0].estimated_total_hits == len(STAR) and all(m.index_uid == uid for m in multi)
        fed = await client.multi_search(
            [SearchParams(index_uid=uid, query="star"), SearchParams(index_uid=uid, query="moon", filter="genre = comedy")],
            federation=PagedFederation(page=2, hits_per_page=5),
        )
        moon_comedy = [d for d in ALL_DOCS if d["title"].startswith("moon") and d["genre"] == "comedy"]
        assert fed.total_hits == len(STAR) + len(moon_comedy) and fed.page == 2 and fed.hits_per_page == 5
        assert fed.total_pages == -(-fed.total_hits // 5) and len(fed.hits) == 5
        assert all(h["_federation"]["indexUid"] == uid for h in fed.hits)

        # Facet search: the SDK sends every search field (offset, limit, crop, ...) along.
        facets = await index.facet_search("star", facet_name="genre", facet_query="dra", filter="year > 1000")
        assert [(h.value, h.count) for h in facets.facet_hits] == [("drama", _genre_counts(STAR)["drama"])]

        # Settings round-trip: what GET answers, PATCHed back, changes nothing.
        before = await index.get_settings()
        await done(await index.update_settings(before))
        assert await index.get_settings() == before

        # Tasks and batches.
        tasks = await client.get_tasks(index_ids=[uid])
        assert tasks.results and all(t.status == "succeeded" and t.batch_uid is not None for t in tasks.results)
        assert any(t.custom_metadata == "json-batch" for t in tasks.results if t.task_type == "documentAdditionOrUpdate")
        batches = await client.get_batches(index_uids=[uid])
        assert {t.batch_uid for t in tasks.results} <= {b.uid for b in batches.results}
        one = await client.get_batch(tasks.results[0].batch_uid)
        assert one is not None and one.uid == tasks.results[0].batch_uid

        # Stats before renaming.
        stats = await index.get_stats()
        assert stats.number_of_documents == len(ALL_DOCS) and stats.field_distribution["genre"] == len(ALL_DOCS)
        all_stats = await client.get_all_stats()
        assert all_stats.indexes[uid].number_of_documents == len(ALL_DOCS)

        # Rename by swap with `rename: true` (the SDK's update() only sets the primary key).
        await done(await client.swap_indexes([(uid, renamed)], rename=True))
        assert await client.get_raw_index(uid) is None
        moved = await client.get_index(renamed)
        assert (await moved.get_stats()).number_of_documents == len(ALL_DOCS)
        # A plain swap between two existing indexes still works beside it.
        await client.create_index(other, primary_key="id", wait=True, timeout_in_ms=60_000)
        await done(await client.swap_indexes([(renamed, other)]))
        assert (await (await client.get_index(other)).get_stats()).number_of_documents == len(ALL_DOCS)
        assert (await (await client.get_index(renamed)).get_stats()).number_of_documents == 0


def _sdk_settings(raw: dict):
    from meilisearch_python_sdk.models.settings import MeilisearchSettings

    return MeilisearchSettings(**raw)


# ------------------------------------------------------------------ JS client (Node.js)


JS_FLOW = DATA / "sdk_flow.mjs"


def test_js_client_flow(miroir):
    url, tmp = miroir
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the JS client `meilisearch` 0.62 runs under node")
    npm = _npm_packages((JS_CLIENT,), "meilisearch/dist/index.js", "meilisearch-js",
                        "the JS client `meilisearch` 0.62 comes from npm")
    work = tmp / "js"
    work.mkdir()
    (work / "node_modules").symlink_to(npm / "node_modules")
    shutil.copy(JS_FLOW, work / "flow.mjs")
    corpus = {"json": JSON_DOCS, "ndjson": _ndjson(NDJSON_DOCS), "csv": _csv(CSV_DOCS), "settings": SETTINGS}
    (work / "corpus.json").write_text(json.dumps(corpus))
    proc = subprocess.run(["node", str(work / "flow.mjs"), url, KEY, str(work / "corpus.json")],
                          check=False, capture_output=True, text=True, timeout=180, cwd=work)
    assert proc.returncode == 0, f"node flow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])

    assert _by_id(seen["documents"]) == STORED
    s = seen["search"]
    assert s["totalHits"] == len(STAR) and s["page"] == 2 and s["hitsPerPage"] == 4 and len(s["hits"]) == 4
    assert s["facetDistribution"] == {"genre": _genre_counts(STAR)}
    years = [h["year"] for h in s["hits"]]
    assert years == sorted(years, reverse=True)
    assert all("<em>star</em>" in h["_formatted"]["title"] and "…" in h["_formatted"]["overview"] for h in s["hits"])
    assert s["performanceDetails"] and isinstance(s["performanceDetails"], dict)
    meta = s["metadata"]
    assert meta["indexUid"] == "js_movies" and meta["primaryKey"] == "id" and meta["query"] == "star", meta
    assert re.fullmatch(UUID7, meta["queryUid"]) and re.fullmatch(UUID7, s["requestUid"]), s

    moon_drama = [d for d in ALL_DOCS if d["title"].startswith("moon") and d["genre"] == "drama"]
    assert [len(r["hits"]) for r in seen["multi"]["results"]] == [3, len(moon_drama)]
    fed = seen["federated"]
    moon_comedy = [d for d in ALL_DOCS if d["title"].startswith("moon") and d["genre"] == "comedy"]
    assert fed["totalHits"] == len(STAR) + len(moon_comedy) and fed["page"] == 2 and fed["hitsPerPage"] == 5
    assert fed["totalPages"] == -(-fed["totalHits"] // 5) and len(fed["hits"]) == 5

    assert [(h["value"], h["count"]) for h in seen["facetSearch"]["facetHits"]] == [("drama", _genre_counts(STAR)["drama"])]
    assert seen["settingsAfter"] == seen["settingsBefore"]
    assert seen["settingsBefore"]["filterableAttributes"] == ["genre", "year"]

    tasks, batches = seen["tasks"]["results"], seen["batches"]["results"]
    assert tasks and all(t["status"] == "succeeded" and t["batchUid"] is not None for t in tasks)
    assert {t["batchUid"] for t in tasks} <= {b["uid"] for b in batches}
    assert seen["batch"]["uid"] == tasks[0]["batchUid"]

    assert seen["stats"]["numberOfDocuments"] == len(ALL_DOCS)
    assert seen["globalStats"]["indexes"]["js_movies"]["numberOfDocuments"] == len(ALL_DOCS)
    assert seen["renamed"]["uid"] == "js_films" and seen["oldGone"] == "index_not_found"
    assert seen["renamedStats"]["numberOfDocuments"] == len(ALL_DOCS)
    assert seen["swapRenamed"]["uid"] == "js_final" and seen["swapRenamedStats"]["numberOfDocuments"] == len(ALL_DOCS)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as h:
        assert h.get("/indexes/js_films").status_code == 404
