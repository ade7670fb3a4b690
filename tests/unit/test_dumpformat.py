"""The dump format's pure parts (core/dumpformat.py): uids, task lines, settings."""

from __future__ import annotations

import pytest

from miroir.core import dumpformat as fmt
from miroir.core.keys import ApiKey
from miroir.core.settings import DEFAULTS, client_view, node_patch


def test_dump_uid_is_meilisearchs_millisecond_stamp():
    # 2023-07-06T07:10:27.219580Z -> the uid Meilisearch gave that dump's file
    assert fmt.dump_uid(1688627427.219580) == "20230706-071027219"


def test_settings_lose_the_shard_field_only():
    s = {"filterableAttributes": ["_miroir_shard", "genre", {"attributePatterns": ["_miroir_shard", "x"]},
                                  {"attributePatterns": ["_miroir_shard"]}], "rankingRules": ["words"]}
    assert fmt.dump_settings(s) == {"filterableAttributes": ["genre", {"attributePatterns": ["x"]}],
                                    "rankingRules": ["words"]}
    assert fmt.dump_document({"id": 1, "_miroir_shard": 3, "a": None}) == {"id": 1, "a": None}


def test_only_settings_that_differ_from_the_defaults_are_sent():
    dumped = {**DEFAULTS, "rankingRules": ["words", "typo"], "embedders": {}, "somethingNewer": 1}
    assert fmt.settings_to_apply(dumped, DEFAULTS) == {"rankingRules": ["words", "typo"], "somethingNewer": 1}


def test_covers_allows_newer_keys_and_set_order_but_not_rule_order():
    current = {"faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
               "filterableAttributes": ["b", "a"], "rankingRules": ["typo", "words"]}
    assert fmt.covers(current, {"faceting": {"maxValuesPerFacet": 100}, "filterableAttributes": ["a", "b"]})
    assert not fmt.covers(current, {"rankingRules": ["words", "typo"]})
    assert not fmt.covers(current, {"faceting": {"maxValuesPerFacet": 10}})


def test_key_lines_round_trip_to_a_create_body_with_the_uid():
    key = ApiKey(uid="6a350146-4a84-4713-8f1c-53ae9997c74b", name="n", description=None, actions=["search"],
                 indexes=["*"], expires_at=None, created_at="2023-07-06T07:05:24.14557Z",
                 updated_at="2023-07-06T07:05:24.14557Z")
    line = fmt.key_line(key)
    assert list(line) == ["name", "uid", "actions", "indexes", "expires_at", "created_at", "updated_at"]
    assert fmt.key_create_body(line) == {"uid": key.uid, "actions": ["search"], "indexes": ["*"],
                                         "expiresAt": None, "name": "n"}


VIEW = {"uid": 4, "batchUid": None, "indexUid": "movies", "status": "succeeded", "canceledBy": None,
        "error": None, "enqueuedAt": "2023-12-06T13:41:46.942601Z", "startedAt": "2023-12-06T13:41:46.942989Z",
        "finishedAt": "2023-12-06T13:41:46.956038Z"}


@pytest.mark.parametrize(
    ("type_", "details", "kind", "dumped_details"),
    [
        ("documentAdditionOrUpdate", {"receivedDocuments": 3, "indexedDocuments": 3},
         {"documentImport": {"primary_key": None, "method": "UpdateDocuments", "documents_count": 3,
                             "allow_index_creation": True}},
         {"DocumentAdditionOrUpdate": {"received_documents": 3, "indexed_documents": 3}}),
        ("settingsUpdate", {"rankingRules": ["words"]},
         {"settings": {"settings": {"rankingRules": ["words"]}, "is_deletion": False, "allow_index_creation": True}},
         {"SettingsUpdate": {"settings": {"rankingRules": ["words"]}}}),
        ("indexCreation", {"primaryKey": "id"}, {"indexCreation": {"primary_key": "id"}},
         {"IndexInfo": {"primary_key": "id"}}),
        ("indexDeletion", {"deletedDocuments": 7}, "indexDeletion", {"ClearAll": {"deleted_documents": 7}}),
        ("documentDeletion", {"providedIds": 2, "deletedDocuments": 1}, {"documentDeletion": {"documents_ids": []}},
         {"DocumentDeletion": {"provided_ids": 2, "deleted_documents": 1}}),
        ("documentDeletion", {"originalFilter": '"genre = x"', "deletedDocuments": 4},
         {"documentDeletionByFilter": {"filter": "genre = x"}},
         {"DocumentDeletionByFilter": {"original_filter": '"genre = x"', "deleted_documents": 4}}),
        ("documentDeletion", {"originalFilter": ["a = 1", "b = 2"], "deletedDocuments": 0},
         {"documentDeletionByFilter": {"filter": ["a = 1", "b = 2"]}},
         {"DocumentDeletionByFilter": {"original_filter": '["a = 1","b = 2"]', "deleted_documents": 0}}),
        ("dumpCreation", {"dumpUid": "20230706-071027219"}, {"dumpCreation": {"keys": [], "instance_uid": None}},
         {"Dump": {"dump_uid": "20230706-071027219"}}),
    ],
)
def test_task_lines_have_the_index_schedulers_shape(type_, details, kind, dumped_details):
    line = fmt.task_line({**VIEW, "type": type_, "details": details})
    assert line == {"uid": 4, "batchUid": None, "indexUid": "movies", "status": "succeeded", "type": kind,
                    "details": dumped_details, "enqueuedAt": VIEW["enqueuedAt"], "startedAt": VIEW["startedAt"],
                    "finishedAt": VIEW["finishedAt"]}


def test_unfinished_and_uncarried_tasks_are_left_out():
    assert fmt.task_line({**VIEW, "status": "enqueued", "type": "indexCreation", "details": {}}) is None
    assert fmt.task_line({**VIEW, "type": "indexSwap", "details": {"swaps": []}}) is None


def test_versions():
    assert fmt.check_version({"dumpVersion": "V6"}) == "V6"
    assert fmt.check_version({"dumpVersion": "V5"}) == "V5"
    with pytest.raises(fmt.DumpRefused, match=r"dump format V3 .*Meilisearch 0\.24\.0.* not supported"):
        fmt.check_version({"dumpVersion": "V3", "dbVersion": "0.24.0"})


def test_documents_lose_every_miroir_field():
    doc = {"id": 1, "t": "x", "_miroir_shard": 3, "_miroir_seq": 7, "_miroir_useq": 9}
    assert fmt.dump_document(doc) == {"id": 1, "t": "x"}


def test_displayed_attributes_name_the_sequence_on_nodes_only():
    patch = {"displayedAttributes": ["id", "title"]}
    node = node_patch(patch)
    assert node["displayedAttributes"] == ["id", "title", "_miroir_seq", "_miroir_useq"]
    assert patch["displayedAttributes"] == ["id", "title"]
    assert client_view({**DEFAULTS, **node}, 100)["displayedAttributes"] == ["id", "title"]
    assert node_patch({"displayedAttributes": ["*"]})["displayedAttributes"] == ["*"]
    assert node_patch({"displayedAttributes": None})["displayedAttributes"] is None
