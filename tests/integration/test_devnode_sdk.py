"""The official clients, unchanged, against a devnode subprocess (design §11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import meilisearch
import pytest
from meilisearch.errors import MeilisearchApiError
from meilisearch_python_sdk import Client as PySdkClient
from meilisearch_python_sdk.errors import MeilisearchApiError as PySdkApiError
from meilisearch_python_sdk.models.settings import MeilisearchSettings

from tests.support.devnodes import start_devnodes

KEY = "sdk-master-key"
BOOKS = [
    {"id": 1, "title": "The Hobbit", "author": "Tolkien", "year": 1937, "genres": ["fantasy"]},
    {"id": 2, "title": "The Lord of the Rings", "author": "Tolkien", "year": 1954, "genres": ["fantasy", "epic"]},
    {"id": 3, "title": "Dune", "author": "Herbert", "year": 1965, "genres": ["scifi"]},
    {"id": 4, "title": "Hyperion", "author": "Simmons", "year": 1989, "genres": ["scifi"]},
]


@pytest.fixture(scope="module")
def node():
    with start_devnodes(1, master_key=KEY) as (n,):
        yield n


@pytest.fixture(scope="module")
def ms(node):
    return meilisearch.Client(node.url, KEY, timeout=10)


def wait(ms, task_info) -> None:
    task = ms.wait_for_task(task_info.task_uid, timeout_in_ms=10_000, interval_in_ms=20)
    assert task.status == "succeeded", task


def test_meilisearch_index_documents_search(ms):
    wait(ms, ms.create_index("sdk_books", {"primaryKey": "id"}))
    index = ms.index("sdk_books")
    assert index.fetch_info().primary_key == "id"
    wait(ms, index.update_filterable_attributes(["author", "genres", "year"]))
    wait(ms, index.update_sortable_attributes(["year"]))
    wait(ms, index.add_documents(BOOKS))
    res = index.search("", {"filter": "author = Tolkien", "sort": ["year:desc"], "facets": ["genres"]})
    assert [h["title"] for h in res["hits"]] == ["The Lord of the Rings", "The Hobbit"]
    assert res["facetDistribution"] == {"genres": {"epic": 1, "fantasy": 2}}
    assert index.search("dune")["hits"][0]["id"] == 3
    assert index.get_document(3).title == "Dune"
    docs = index.get_documents({"limit": 2, "offset": 1, "fields": ["id"]})
    assert [d.id for d in docs.results] == [2, 3] and docs.total == 4
    assert index.get_documents({"filter": "year < 1950"}).total == 1
    wait(ms, index.update_documents([{"id": 3, "year": 1966}]))
    assert index.get_document(3).year == 1966 and index.get_document(3).title == "Dune"
    wait(ms, index.delete_document(4))
    wait(ms, index.delete_documents(filter="year < 1950"))
    assert index.get_stats().number_of_documents == 2
    multi = ms.multi_search([{"indexUid": "sdk_books", "q": "lord"}])
    assert multi["results"][0]["hits"][0]["id"] == 2
    wait(ms, index.delete_all_documents())
    assert index.get_stats().number_of_documents == 0
    wait(ms, index.delete())
    with pytest.raises(MeilisearchApiError) as exc:
        index.fetch_info()
    assert exc.value.code == "index_not_found" and exc.value.status_code == 404


def test_meilisearch_settings(ms):
    index = ms.index("sdk_settings")
    wait(ms, index.update_settings({"searchableAttributes": ["title"], "stopWords": ["the"]}))
    wait(ms, index.update_typo_tolerance({"minWordSizeForTypos": {"oneTypo": 3}}))
    wait(ms, index.update_pagination_settings({"maxTotalHits": 10}))
    wait(ms, index.update_faceting_settings({"maxValuesPerFacet": 5}))
    wait(ms, index.update_ranking_rules(["words", "sort", "typo", "proximity", "attribute", "exactness"]))
    wait(ms, index.update_synonyms({"lotr": ["lord of the rings"]}))
    wait(ms, index.update_distinct_attribute("author"))
    settings = index.get_settings()
    assert settings["searchableAttributes"] == ["title"] and settings["stopWords"] == ["the"]
    assert index.get_typo_tolerance().min_word_size_for_typos.one_typo == 3
    assert index.get_pagination_settings().max_total_hits == 10
    assert index.get_faceting_settings().max_values_per_facet == 5
    assert index.get_ranking_rules()[1] == "sort"
    assert index.get_synonyms() == {"lotr": ["lord of the rings"]}
    assert index.get_distinct_attribute() == "author"
    wait(ms, index.reset_typo_tolerance())
    wait(ms, index.reset_synonyms())
    assert index.get_typo_tolerance().min_word_size_for_typos.one_typo == 5
    assert index.get_synonyms() == {}
    wait(ms, index.reset_settings())
    assert index.get_settings()["searchableAttributes"] == ["*"]


def test_meilisearch_tasks_and_errors(ms, node):
    info = ms.create_index("sdk_tasks")
    wait(ms, info)
    task = ms.get_task(info.task_uid)
    assert task.type == "indexCreation" and task.finished_at is not None
    tasks = ms.get_tasks({"indexUids": ["sdk_tasks"], "types": ["indexCreation"]})
    assert [t.uid for t in tasks.results] == [info.task_uid]
    failed = ms.create_index("sdk_tasks")
    with pytest.raises(AssertionError):  # wait() asserts the task succeeded
        wait(ms, failed)
    assert ms.get_task(failed.task_uid).error["code"] == "index_already_exists"
    deletion = ms.delete_tasks({"uids": [str(failed.task_uid)]})  # this SDK joins strings only
    wait(ms, deletion)
    with pytest.raises(MeilisearchApiError) as exc:
        ms.get_task(failed.task_uid)
    assert exc.value.code == "task_not_found"
    wrong = meilisearch.Client(node.url, "wrong-key")
    with pytest.raises(MeilisearchApiError) as exc:
        wrong.get_indexes()
    assert exc.value.code == "invalid_api_key" and exc.value.status_code == 403
    assert ms.health() == {"status": "available"}


def test_meilisearch_python_sdk_client(node):
    with PySdkClient(node.url, KEY) as client:
        index = client.create_index("pysdk_books", primary_key="id", settings=MeilisearchSettings(filterable_attributes=["author"]))
        task = index.add_documents(BOOKS)
        result = client.wait_for_task(task.task_uid, timeout_in_ms=10_000)
        assert result.status == "succeeded" and result.details["indexedDocuments"] == 4
        res = index.search("hobbit", filter="author = Tolkien")
        assert [h["id"] for h in res.hits] == [1] and res.estimated_total_hits == 1
        assert index.get_settings().filterable_attributes == ["author"]
        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)  # the SDK appends "Z"
        tasks = client.get_tasks(index_ids=["pysdk_books"], after_enqueued_at=since)
        assert task.task_uid in [t.uid for t in tasks.results]
        with pytest.raises(PySdkApiError) as exc:
            client.get_index("pysdk_missing")
        assert exc.value.code == "index_not_found"
