"""Meilisearch 1.50's error answers, route by route (issue 16, error fidelity).

Each case is a request and the exact error body Meilisearch 1.50 answers, taken from the
inline snapshots of its `crates/meilisearch/tests/{index,tasks,settings,documents,search}/errors.rs`
(the facts; the code here is ours). Every case runs against one devnode and against Miroir
over 3 devnodes, and must give the same status, `code`, `type`, `link` and `message`.

The precedence matters as much as the texts: Meilisearch reads the body and the query
string (deserr) before the handler looks the index up, so a bad parameter on a missing
index answers `invalid_search_q`, not `index_not_found`; most cases here run on an index
that does not exist (`MISSING`) for that reason, as Meilisearch's own tests do.

A case's index is created by its setup (documents, then settings) once per setup, on both
sides; `[uuid]` in a message stands for that index's uid, as in Meilisearch's redactions.
Left out of those files: the cases that need a server option (a personalization key) or
an experimental feature turned on (`foreignKeys`, `editDocumentsByFunction`), one that
checks only the code (`search_unexisting_parameter`) and one answer that is not an error.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from tests.support.pairs import devnode_and_miroir, task_of

LINK = "https://docs.meilisearch.com/errors#"

DOCUMENTS = [
    {"title": "Shazam!", "id": "287947", "color": ["green", "blue"]},
    {"title": "Captain Marvel", "id": "299537", "color": ["yellow", "blue"]},
    {"title": "Escape Room", "id": "522681", "color": ["yellow", "red"]},
    {"title": "How to Train Your Dragon: The Hidden World", "id": "166428", "color": ["green", "red"]},
    {"title": "Glass", "id": "450465", "color": ["blue", "red"]},
]

NESTED_DOCUMENTS = [
    {"id": 852, "father": "jean", "mother": "michelle", "doggos": [{"name": "bobby", "age": 2}, {"name": "buddy", "age": 4}],
     "cattos": "pésti"},
    {"id": 654, "father": "pierre", "mother": "sabine", "doggos": [{"name": "gros bill", "age": 8}],
     "cattos": ["simba", "pestiféré"]},
    {"id": 750, "father": "romain", "mother": "michelle", "cattos": ["enigma"]},
    {"id": 951, "father": "jean-baptiste", "mother": "sophie", "doggos": [{"name": "turbo", "age": 5}, {"name": "fast", "age": 6}],
     "cattos": ["moumoute", "gomez"]},
]

MIXED_RULES = (
    "Mixed usage of the attribute, attributeRank, and wordPosition ranking rules. You must either use the attribute "
    "ranking rule alone or the attributeRank and wordPosition ranking rules."
)

# What a case's index holds: None for an index that does not exist, else (documents,
# settings) applied to a new index (primary key inferred, as Meilisearch's tests do).
Setup = tuple[list[dict] | None, dict | None] | None

MISSING: Setup = None
EMPTY: Setup = (None, None)
DOCS_ID_TITLE: Setup = (DOCUMENTS, {'filterableAttributes': ['id', 'title'], 'sortableAttributes': ['id', 'title']})
DOCS_COLOR: Setup = (DOCUMENTS, {'filterableAttributes': ['color']})
FILTER_TITLE_GENRES: Setup = (None, {'filterableAttributes': ['title', 'genres']})
DOCS_FILTER_TITLE: Setup = (DOCUMENTS, {'filterableAttributes': ['title']})
PATTERNS_COMPARISON: Setup = (NESTED_DOCUMENTS, {'filterableAttributes': [{'attributePatterns': ['cattos', 'doggos.age'], 'features': {'facetSearch': False, 'filter': {'equality': False, 'comparison': True}}}]})
PATTERNS_PLAIN: Setup = (NESTED_DOCUMENTS, {'filterableAttributes': [{'attributePatterns': ['cattos', 'doggos.age']}]})
PATTERNS_EQUALITY: Setup = (NESTED_DOCUMENTS, {'filterableAttributes': [{'attributePatterns': ['cattos', 'doggos.age'], 'features': {'facetSearch': False, 'filter': {'equality': True, 'comparison': False}}}]})
SORT_ID: Setup = (None, {'sortableAttributes': ['id']})
SORT_TITLE_RULES: Setup = (None, {'sortableAttributes': ['title'], 'rankingRules': ['proximity', 'exactness']})
SEARCH_ID_TITLE: Setup = (DOCUMENTS, {'searchableAttributes': ['id', 'title']})
DOGGO: Setup = ([{'id': 1, 'color': 'Doggo', 'machin': 'Action'}], None)
DOGGO_FILTER: Setup = ([{'id': 1, 'color': 'Doggo', 'machin': 'Action'}], {'filterableAttributes': ['color', 'machin']})
DOGGO_FILTER_DISPLAY: Setup = ([{'id': 1, 'color': 'Doggo', 'machin': 'Action'}], {'filterableAttributes': ['color', 'machin'], 'displayedAttributes': ['color']})

# Each setup's index uid, the same on both sides.
SETUPS: dict[str, Setup] = {"missing": MISSING, "empty": EMPTY, "docs_id_title": DOCS_ID_TITLE, "docs_color": DOCS_COLOR, "filter_title_genres": FILTER_TITLE_GENRES, "docs_filter_title": DOCS_FILTER_TITLE, "patterns_comparison": PATTERNS_COMPARISON, "patterns_plain": PATTERNS_PLAIN, "patterns_equality": PATTERNS_EQUALITY, "sort_id": SORT_ID, "sort_title_rules": SORT_TITLE_RULES, "search_id_title": SEARCH_ID_TITLE, "doggo": DOGGO, "doggo_filter": DOGGO_FILTER, "doggo_filter_display": DOGGO_FILTER_DISPLAY}


class C(typing.NamedTuple):
    """One request and Meilisearch's answer to it. `status` "task" means a 202 whose task
    fails with that error."""

    name: str
    setup: Setup
    method: str
    path: str
    body: typing.Any = None
    raw: tuple[str, dict[str, str]] | None = None
    status: int | str = 400
    code: str = ""
    type: str = ""
    message: str = ""


CASES: dict[str, list[C]] = {
    "index": [
        C('get_indexes_bad_offset', MISSING, 'GET', '/indexes?offset=doggo', status=400, code='invalid_index_offset', type='invalid_request',
          message='Invalid value in parameter `offset`: could not parse `doggo` as a positive integer'),
        C('get_indexes_bad_limit', MISSING, 'GET', '/indexes?limit=doggo', status=400, code='invalid_index_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `doggo` as a positive integer'),
        C('get_indexes_unknown_field', MISSING, 'GET', '/indexes?doggo=nolimit', status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `doggo`: expected one of `offset`, `limit`'),
        C('create_index_missing_uid', MISSING, 'POST', '/indexes', body={'primaryKey': 'doggo'}, status=400, code='missing_index_uid', type='invalid_request',
          message='Missing field `uid`'),
        C('create_index_bad_uid', MISSING, 'POST', '/indexes', body={'uid': 'the best doggo'}, status=400, code='invalid_index_uid', type='invalid_request',
          message='Invalid value at `.uid`: `the best doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('create_index_bad_uid', MISSING, 'POST', '/indexes', body={'uid': True}, status=400, code='invalid_index_uid', type='invalid_request',
          message='Invalid value type at `.uid`: expected a string, but found a boolean: `true`'),
        C('create_index_bad_primary_key', MISSING, 'POST', '/indexes', body={'uid': 'doggo', 'primaryKey': ['the', 'best', 'doggo']}, status=400, code='invalid_index_primary_key', type='invalid_request',
          message='Invalid value type at `.primaryKey`: expected a string, but found an array: `["the","best","doggo"]`'),
        C('create_index_unknown_field', MISSING, 'POST', '/indexes', body={'uid': 'doggo', 'doggo': 'bernese'}, status=400, code='bad_request', type='invalid_request',
          message='Unknown field `doggo`: expected one of `uid`, `primaryKey`'),
        C('get_index_bad_uid', MISSING, 'GET', '/indexes/the%20good%20doggo', status=400, code='invalid_index_uid', type='invalid_request',
          message='`the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('update_index_bad_primary_key', MISSING, 'PATCH', '/indexes/{uid}', body={'primaryKey': ['doggo']}, status=400, code='invalid_index_primary_key', type='invalid_request',
          message='Invalid value type at `.primaryKey`: expected a string, but found an array: `["doggo"]`'),
        C('update_index_immutable_created_at', MISSING, 'PATCH', '/indexes/{uid}', body={'createdAt': 'doggo'}, status=400, code='immutable_index_created_at', type='invalid_request',
          message='Immutable field `createdAt`: expected one of `primaryKey`, `uid`'),
        C('update_index_immutable_updated_at', MISSING, 'PATCH', '/indexes/{uid}', body={'updatedAt': 'doggo'}, status=400, code='immutable_index_updated_at', type='invalid_request',
          message='Immutable field `updatedAt`: expected one of `primaryKey`, `uid`'),
        C('update_index_unknown_field', MISSING, 'PATCH', '/indexes/{uid}', body={'doggo': 'bork'}, status=400, code='bad_request', type='invalid_request',
          message='Unknown field `doggo`: expected one of `primaryKey`, `uid`'),
        C('update_index_bad_uid', MISSING, 'PATCH', '/indexes/the%20good%20doggo', body={'primaryKey': 'doggo'}, status=400, code='invalid_index_uid', type='invalid_request',
          message='`the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('delete_index_bad_uid', MISSING, 'DELETE', '/indexes/the%20good%20doggo', status=400, code='invalid_index_uid', type='invalid_request',
          message='`the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
    ],
    "tasks": [
        C('task_bad_uids', MISSING, 'GET', '/tasks?uids=doggo', status=400, code='invalid_task_uids', type='invalid_request',
          message='Invalid value in parameter `uids`: could not parse `doggo` as a positive integer'),
        C('task_bad_uids', MISSING, 'POST', '/tasks/cancel?uids=doggo', body=None, status=400, code='invalid_task_uids', type='invalid_request',
          message='Invalid value in parameter `uids`: could not parse `doggo` as a positive integer'),
        C('task_bad_uids', MISSING, 'DELETE', '/tasks?uids=doggo', status=400, code='invalid_task_uids', type='invalid_request',
          message='Invalid value in parameter `uids`: could not parse `doggo` as a positive integer'),
        C('task_bad_uids', MISSING, 'DELETE', '/tasks?uids=1,dogo', status=400, code='invalid_task_uids', type='invalid_request',
          message='Invalid value in parameter `uids[1]`: could not parse `dogo` as a positive integer'),
        C('task_bad_canceled_by', MISSING, 'GET', '/tasks?canceledBy=doggo', status=400, code='invalid_task_canceled_by', type='invalid_request',
          message='Invalid value in parameter `canceledBy`: could not parse `doggo` as a positive integer'),
        C('task_bad_canceled_by', MISSING, 'POST', '/tasks/cancel?canceledBy=doggo', body=None, status=400, code='invalid_task_canceled_by', type='invalid_request',
          message='Invalid value in parameter `canceledBy`: could not parse `doggo` as a positive integer'),
        C('task_bad_canceled_by', MISSING, 'DELETE', '/tasks?canceledBy=doggo', status=400, code='invalid_task_canceled_by', type='invalid_request',
          message='Invalid value in parameter `canceledBy`: could not parse `doggo` as a positive integer'),
        C('task_bad_types', MISSING, 'GET', '/tasks?types=doggo', status=400, code='invalid_task_types', type='invalid_request',
          message='Invalid value in parameter `types`: `doggo` is not a valid task type. Available types are `documentAdditionOrUpdate`, `documentEdition`, `documentDeletion`, `settingsUpdate`, `indexCreation`, `indexDeletion`, `indexUpdate`, `indexSwap`, `taskCancelation`, `taskDeletion`, `dumpCreation`, `snapshotCreation`, `export`, `upgradeDatabase`, `indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`.'),
        C('task_bad_types', MISSING, 'POST', '/tasks/cancel?types=doggo', body=None, status=400, code='invalid_task_types', type='invalid_request',
          message='Invalid value in parameter `types`: `doggo` is not a valid task type. Available types are `documentAdditionOrUpdate`, `documentEdition`, `documentDeletion`, `settingsUpdate`, `indexCreation`, `indexDeletion`, `indexUpdate`, `indexSwap`, `taskCancelation`, `taskDeletion`, `dumpCreation`, `snapshotCreation`, `export`, `upgradeDatabase`, `indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`.'),
        C('task_bad_types', MISSING, 'DELETE', '/tasks?types=doggo', status=400, code='invalid_task_types', type='invalid_request',
          message='Invalid value in parameter `types`: `doggo` is not a valid task type. Available types are `documentAdditionOrUpdate`, `documentEdition`, `documentDeletion`, `settingsUpdate`, `indexCreation`, `indexDeletion`, `indexUpdate`, `indexSwap`, `taskCancelation`, `taskDeletion`, `dumpCreation`, `snapshotCreation`, `export`, `upgradeDatabase`, `indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`.'),
        C('task_bad_statuses', MISSING, 'GET', '/tasks?statuses=doggo', status=400, code='invalid_task_statuses', type='invalid_request',
          message='Invalid value in parameter `statuses`: `doggo` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.'),
        C('task_bad_statuses', MISSING, 'POST', '/tasks/cancel?statuses=doggo', body=None, status=400, code='invalid_task_statuses', type='invalid_request',
          message='Invalid value in parameter `statuses`: `doggo` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.'),
        C('task_bad_statuses', MISSING, 'DELETE', '/tasks?statuses=doggo', status=400, code='invalid_task_statuses', type='invalid_request',
          message='Invalid value in parameter `statuses`: `doggo` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.'),
        C('task_bad_index_uids', MISSING, 'GET', '/tasks?indexUids=the%20good%20doggo', status=400, code='invalid_index_uid', type='invalid_request',
          message='Invalid value in parameter `indexUids`: `the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('task_bad_index_uids', MISSING, 'POST', '/tasks/cancel?indexUids=the%20good%20doggo', body=None, status=400, code='invalid_index_uid', type='invalid_request',
          message='Invalid value in parameter `indexUids`: `the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('task_bad_index_uids', MISSING, 'DELETE', '/tasks?indexUids=the%20good%20doggo', status=400, code='invalid_index_uid', type='invalid_request',
          message='Invalid value in parameter `indexUids`: `the good doggo` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.'),
        C('task_bad_limit', MISSING, 'GET', '/tasks?limit=doggo', status=400, code='invalid_task_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `doggo` as a positive integer'),
        C('task_bad_limit', MISSING, 'POST', '/tasks/cancel?limit=doggo', body=None, status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `limit`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_limit', MISSING, 'DELETE', '/tasks?limit=doggo', status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `limit`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_from', MISSING, 'GET', '/tasks?from=doggo', status=400, code='invalid_task_from', type='invalid_request',
          message='Invalid value in parameter `from`: could not parse `doggo` as a positive integer'),
        C('task_bad_from', MISSING, 'POST', '/tasks/cancel?from=doggo', body=None, status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `from`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_from', MISSING, 'DELETE', '/tasks?from=doggo', status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `from`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_reverse', MISSING, 'GET', '/tasks?reverse=doggo', status=400, code='invalid_task_reverse', type='invalid_request',
          message='Invalid value in parameter `reverse`: could not parse `doggo` as a boolean, expected either `true` or `false`'),
        C('task_bad_reverse', MISSING, 'GET', '/tasks?reverse=*', status=400, code='invalid_task_reverse', type='invalid_request',
          message='Invalid value in parameter `reverse`: could not parse `*` as a boolean, expected either `true` or `false`'),
        C('task_bad_reverse', MISSING, 'POST', '/tasks/cancel?reverse=doggo', body=None, status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `reverse`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_reverse', MISSING, 'DELETE', '/tasks?reverse=doggo', status=400, code='bad_request', type='invalid_request',
          message='Unknown parameter `reverse`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`'),
        C('task_bad_after_enqueued_at', MISSING, 'GET', '/tasks?afterEnqueuedAt=doggo', status=400, code='invalid_task_after_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `afterEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_enqueued_at', MISSING, 'POST', '/tasks/cancel?afterEnqueuedAt=doggo', body=None, status=400, code='invalid_task_after_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `afterEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_enqueued_at', MISSING, 'DELETE', '/tasks?afterEnqueuedAt=doggo', status=400, code='invalid_task_after_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `afterEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_enqueued_at', MISSING, 'GET', '/tasks?beforeEnqueuedAt=doggo', status=400, code='invalid_task_before_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `beforeEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_enqueued_at', MISSING, 'POST', '/tasks/cancel?beforeEnqueuedAt=doggo', body=None, status=400, code='invalid_task_before_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `beforeEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_enqueued_at', MISSING, 'DELETE', '/tasks?beforeEnqueuedAt=doggo', status=400, code='invalid_task_before_enqueued_at', type='invalid_request',
          message='Invalid value in parameter `beforeEnqueuedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_started_at', MISSING, 'GET', '/tasks?afterStartedAt=doggo', status=400, code='invalid_task_after_started_at', type='invalid_request',
          message='Invalid value in parameter `afterStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_started_at', MISSING, 'POST', '/tasks/cancel?afterStartedAt=doggo', body=None, status=400, code='invalid_task_after_started_at', type='invalid_request',
          message='Invalid value in parameter `afterStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_started_at', MISSING, 'DELETE', '/tasks?afterStartedAt=doggo', status=400, code='invalid_task_after_started_at', type='invalid_request',
          message='Invalid value in parameter `afterStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_started_at', MISSING, 'GET', '/tasks?beforeStartedAt=doggo', status=400, code='invalid_task_before_started_at', type='invalid_request',
          message='Invalid value in parameter `beforeStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_started_at', MISSING, 'POST', '/tasks/cancel?beforeStartedAt=doggo', body=None, status=400, code='invalid_task_before_started_at', type='invalid_request',
          message='Invalid value in parameter `beforeStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_started_at', MISSING, 'DELETE', '/tasks?beforeStartedAt=doggo', status=400, code='invalid_task_before_started_at', type='invalid_request',
          message='Invalid value in parameter `beforeStartedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_finished_at', MISSING, 'GET', '/tasks?afterFinishedAt=doggo', status=400, code='invalid_task_after_finished_at', type='invalid_request',
          message='Invalid value in parameter `afterFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_finished_at', MISSING, 'POST', '/tasks/cancel?afterFinishedAt=doggo', body=None, status=400, code='invalid_task_after_finished_at', type='invalid_request',
          message='Invalid value in parameter `afterFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_after_finished_at', MISSING, 'DELETE', '/tasks?afterFinishedAt=doggo', status=400, code='invalid_task_after_finished_at', type='invalid_request',
          message='Invalid value in parameter `afterFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_finished_at', MISSING, 'GET', '/tasks?beforeFinishedAt=doggo', status=400, code='invalid_task_before_finished_at', type='invalid_request',
          message='Invalid value in parameter `beforeFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_finished_at', MISSING, 'POST', '/tasks/cancel?beforeFinishedAt=doggo', body=None, status=400, code='invalid_task_before_finished_at', type='invalid_request',
          message='Invalid value in parameter `beforeFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
        C('task_bad_before_finished_at', MISSING, 'DELETE', '/tasks?beforeFinishedAt=doggo', status=400, code='invalid_task_before_finished_at', type='invalid_request',
          message='Invalid value in parameter `beforeFinishedAt`: `doggo` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.'),
    ],
    "settings": [
        C('settings_bad_displayed_attributes', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'displayedAttributes': 'doggo'}, status=400, code='invalid_settings_displayed_attributes', type='invalid_request',
          message='Invalid value type at `.displayedAttributes`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_displayed_attributes', MISSING, 'PUT', '/indexes/{uid}/settings/displayed-attributes', body='doggo', status=400, code='invalid_settings_displayed_attributes', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_searchable_attributes', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'searchableAttributes': 'doggo'}, status=400, code='invalid_settings_searchable_attributes', type='invalid_request',
          message='Invalid value type at `.searchableAttributes`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_searchable_attributes', MISSING, 'PUT', '/indexes/{uid}/settings/searchable-attributes', body='doggo', status=400, code='invalid_settings_searchable_attributes', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_filterable_attributes', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'filterableAttributes': 'doggo'}, status=400, code='invalid_settings_filterable_attributes', type='invalid_request',
          message='Invalid value type at `.filterableAttributes`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_filterable_attributes', MISSING, 'PUT', '/indexes/{uid}/settings/filterable-attributes', body='doggo', status=400, code='invalid_settings_filterable_attributes', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_sortable_attributes', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'sortableAttributes': 'doggo'}, status=400, code='invalid_settings_sortable_attributes', type='invalid_request',
          message='Invalid value type at `.sortableAttributes`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_sortable_attributes', MISSING, 'PUT', '/indexes/{uid}/settings/sortable-attributes', body='doggo', status=400, code='invalid_settings_sortable_attributes', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_ranking_rules', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'rankingRules': 'doggo'}, status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message='Invalid value type at `.rankingRules`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_ranking_rules', MISSING, 'PUT', '/indexes/{uid}/settings/ranking-rules', body='doggo', status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_stop_words', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'stopWords': 'doggo'}, status=400, code='invalid_settings_stop_words', type='invalid_request',
          message='Invalid value type at `.stopWords`: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_stop_words', MISSING, 'PUT', '/indexes/{uid}/settings/stop-words', body='doggo', status=400, code='invalid_settings_stop_words', type='invalid_request',
          message='Invalid value type: expected an array, but found a string: `"doggo"`'),
        C('settings_bad_synonyms', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'synonyms': 'doggo'}, status=400, code='invalid_settings_synonyms', type='invalid_request',
          message='Invalid value type at `.synonyms`: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_synonyms', MISSING, 'PUT', '/indexes/{uid}/settings/synonyms', body='doggo', status=400, code='invalid_settings_synonyms', type='invalid_request',
          message='Invalid value type: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_distinct_attribute', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'distinctAttribute': ['doggo']}, status=400, code='invalid_settings_distinct_attribute', type='invalid_request',
          message='Invalid value type at `.distinctAttribute`: expected a string, but found an array: `["doggo"]`'),
        C('settings_bad_distinct_attribute', MISSING, 'PUT', '/indexes/{uid}/settings/distinct-attribute', body=['doggo'], status=400, code='invalid_settings_distinct_attribute', type='invalid_request',
          message='Invalid value type: expected a string, but found an array: `["doggo"]`'),
        C('settings_bad_typo_tolerance', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'typoTolerance': 'doggo'}, status=400, code='invalid_settings_typo_tolerance', type='invalid_request',
          message='Invalid value type at `.typoTolerance`: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_typo_tolerance', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'typoTolerance': {'minWordSizeForTypos': 'doggo'}}, status=400, code='invalid_settings_typo_tolerance', type='invalid_request',
          message='Invalid value type at `.typoTolerance.minWordSizeForTypos`: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_typo_tolerance', MISSING, 'PATCH', '/indexes/{uid}/settings/typo-tolerance', body='doggo', status=400, code='invalid_settings_typo_tolerance', type='invalid_request',
          message='Invalid value type: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_typo_tolerance', MISSING, 'PATCH', '/indexes/{uid}/settings/typo-tolerance', body={'typoTolerance': {'minWordSizeForTypos': 'doggo'}}, status=400, code='invalid_settings_typo_tolerance', type='invalid_request',
          message='Unknown field `typoTolerance`: expected one of `enabled`, `minWordSizeForTypos`, `disableOnWords`, `disableOnAttributes`, `disableOnNumbers`'),
        C('settings_bad_faceting', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'faceting': 'doggo'}, status=400, code='invalid_settings_faceting', type='invalid_request',
          message='Invalid value type at `.faceting`: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_faceting', MISSING, 'PATCH', '/indexes/{uid}/settings/faceting', body='doggo', status=400, code='invalid_settings_faceting', type='invalid_request',
          message='Invalid value type: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_pagination', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'pagination': 'doggo'}, status=400, code='invalid_settings_pagination', type='invalid_request',
          message='Invalid value type at `.pagination`: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_pagination', MISSING, 'PATCH', '/indexes/{uid}/settings/pagination', body='doggo', status=400, code='invalid_settings_pagination', type='invalid_request',
          message='Invalid value type: expected an object, but found a string: `"doggo"`'),
        C('settings_bad_max_total_hits', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'pagination': {'maxTotalHits': 'doggo'}}, status=400, code='invalid_settings_pagination', type='invalid_request',
          message='Invalid value type at `.pagination.maxTotalHits`: expected a positive integer, but found a string: `"doggo"`'),
        C('settings_bad_max_total_hits', MISSING, 'PATCH', '/indexes/{uid}/settings/pagination', body={'maxTotalHits': 'doggo'}, status=400, code='invalid_settings_pagination', type='invalid_request',
          message='Invalid value type at `.maxTotalHits`: expected a positive integer, but found a string: `"doggo"`'),
        C('settings_bad_max_total_hits', MISSING, 'PATCH', '/indexes/{uid}/settings/pagination', body={'maxTotalHits': 0}, status=400, code='invalid_settings_pagination', type='invalid_request',
          message='Invalid value at `.maxTotalHits`: a non-zero integer value lower than `18446744073709551615` was expected, but found a zero'),
        C('settings_bad_search_cutoff_ms', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'searchCutoffMs': 'doggo'}, status=400, code='invalid_settings_search_cutoff_ms', type='invalid_request',
          message='Invalid value type at `.searchCutoffMs`: expected a positive integer, but found a string: `"doggo"`'),
        C('settings_bad_search_cutoff_ms', MISSING, 'PUT', '/indexes/{uid}/settings/search-cutoff-ms', body='doggo', status=400, code='invalid_settings_search_cutoff_ms', type='invalid_request',
          message='Invalid value type: expected a positive integer, but found a string: `"doggo"`'),
        C('settings_mixed_attribute_ranking_rules', MISSING, 'PUT', '/indexes/{uid}/settings/ranking-rules', body=['attribute', 'attributeRank'], status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message='Mixed usage of the attribute, attributeRank, and wordPosition ranking rules. You must either use the attribute ranking rule alone or the attributeRank and wordPosition ranking rules.'),
        C('settings_mixed_attribute_ranking_rules', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'rankingRules': ['words', 'attribute', 'attributeRank']}, status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message=MIXED_RULES),
        C('settings_mixed_attribute_ranking_rules', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'rankingRules': ['attribute', 'wordPosition']}, status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message=MIXED_RULES),
        C('settings_mixed_attribute_ranking_rules', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'rankingRules': ['attribute', 'attributeRank', 'wordPosition']}, status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message=MIXED_RULES),
        C('settings_mixed_attribute_ranking_rules', MISSING, 'PATCH', '/indexes/{uid}/settings', body={'rankingRules': ['typo', 'attribute', 'wordPosition', 'exactness']}, status=400, code='invalid_settings_ranking_rules', type='invalid_request',
          message=MIXED_RULES),
    ],
    "documents": [
        C('get_all_documents_bad_offset', MISSING, 'GET', '/indexes/{uid}/documents?offset', status=400, code='invalid_document_offset', type='invalid_request',
          message='Invalid value in parameter `offset`: could not parse `` as a positive integer'),
        C('get_all_documents_bad_offset', MISSING, 'GET', '/indexes/{uid}/documents?offset=doggo', status=400, code='invalid_document_offset', type='invalid_request',
          message='Invalid value in parameter `offset`: could not parse `doggo` as a positive integer'),
        C('get_all_documents_bad_offset', MISSING, 'GET', '/indexes/{uid}/documents?offset=-1', status=400, code='invalid_document_offset', type='invalid_request',
          message='Invalid value in parameter `offset`: could not parse `-1` as a positive integer'),
        C('get_all_documents_bad_limit', MISSING, 'GET', '/indexes/{uid}/documents?limit', status=400, code='invalid_document_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `` as a positive integer'),
        C('get_all_documents_bad_limit', MISSING, 'GET', '/indexes/{uid}/documents?limit=doggo', status=400, code='invalid_document_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `doggo` as a positive integer'),
        C('get_all_documents_bad_limit', MISSING, 'GET', '/indexes/{uid}/documents?limit=-1', status=400, code='invalid_document_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `-1` as a positive integer'),
        C('get_all_documents_bad_filter', MISSING, 'GET', '/indexes/{uid}/documents?filter', status=404, code='index_not_found', type='invalid_request',
          message='Index `[uuid]` not found.'),
        C('get_all_documents_bad_filter', MISSING, 'GET', '/indexes/{uid}/documents?filter=doggo', status=404, code='index_not_found', type='invalid_request',
          message='Index `[uuid]` not found.'),
        C('get_all_documents_bad_filter', MISSING, 'GET', '/indexes/{uid}/documents?filter=doggo=bernese', status=404, code='index_not_found', type='invalid_request',
          message='Index `[uuid]` not found.'),
        C('get_all_documents_bad_filter', EMPTY, 'GET', '/indexes/{uid}/documents?filter=doggo', status=400, code='invalid_document_filter', type='invalid_request',
          message='Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `doggo`.\n1:6 doggo'),
        C('get_all_documents_bad_filter', EMPTY, 'GET', '/indexes/{uid}/documents?filter=doggo=bernese', status=400, code='invalid_document_filter', type='invalid_request',
          message='Attribute `doggo` is not filterable. This index does not have configured filterable attributes.\n1:6 doggo=bernese'),
        C('delete_documents_batch', MISSING, 'POST', '/indexes/{uid}/documents/delete-batch', body='doggo', status=400, code='bad_request', type='invalid_request',
          message='Json deserialize error: invalid type: string "doggo", expected a sequence at line 1 column 7'),
        C('replace_documents_missing_payload', MISSING, 'POST', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'application/json'}), status=400, code='missing_payload', type='invalid_request',
          message='A json payload is missing.'),
        C('replace_documents_missing_payload', MISSING, 'POST', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'application/x-ndjson'}), status=400, code='missing_payload', type='invalid_request',
          message='A ndjson payload is missing.'),
        C('replace_documents_missing_payload', MISSING, 'POST', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'text/csv'}), status=400, code='missing_payload', type='invalid_request',
          message='A csv payload is missing.'),
        C('update_documents_missing_payload', MISSING, 'PUT', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'application/json'}), status=400, code='missing_payload', type='invalid_request',
          message='A json payload is missing.'),
        C('update_documents_missing_payload', MISSING, 'PUT', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'application/x-ndjson'}), status=400, code='missing_payload', type='invalid_request',
          message='A ndjson payload is missing.'),
        C('update_documents_missing_payload', MISSING, 'PUT', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'text/csv'}), status=400, code='missing_payload', type='invalid_request',
          message='A csv payload is missing.'),
        C('replace_documents_missing_content_type', MISSING, 'POST', '/indexes/{uid}/documents', raw=('', {}), status=415, code='missing_content_type', type='invalid_request',
          message='A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('replace_documents_missing_content_type', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter=;', raw=('', {}), status=415, code='missing_content_type', type='invalid_request',
          message='A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('update_documents_missing_content_type', MISSING, 'PUT', '/indexes/{uid}/documents', raw=('', {}), status=415, code='missing_content_type', type='invalid_request',
          message='A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('update_documents_missing_content_type', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter=;', raw=('', {}), status=415, code='missing_content_type', type='invalid_request',
          message='A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('replace_documents_bad_content_type', MISSING, 'POST', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'doggo'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `doggo` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('update_documents_bad_content_type', MISSING, 'PUT', '/indexes/{uid}/documents', raw=('', {'Content-Type': 'doggo'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `doggo` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`'),
        C('replace_documents_bad_csv_delimiter', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='Invalid value in parameter `csvDelimiter`: expected a string of one character, but found an empty string'),
        C('replace_documents_bad_csv_delimiter', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter=doggo', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 5 characters: `doggo`'),
        C('update_documents_bad_csv_delimiter', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='Invalid value in parameter `csvDelimiter`: expected a string of one character, but found an empty string'),
        C('update_documents_bad_csv_delimiter', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter=doggo', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 5 characters: `doggo`'),
        C('replace_documents_csv_delimiter_with_bad_content_type', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter=a', raw=('', {'Content-Type': 'application/json'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `application/json` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.'),
        C('replace_documents_csv_delimiter_with_bad_content_type', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter=a', raw=('', {'Content-Type': 'application/x-ndjson'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `application/x-ndjson` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.'),
        C('update_documents_csv_delimiter_with_bad_content_type', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter=a', raw=('', {'Content-Type': 'application/json'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `application/json` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.'),
        C('update_documents_csv_delimiter_with_bad_content_type', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter=a', raw=('', {'Content-Type': 'application/x-ndjson'}), status=415, code='invalid_content_type', type='invalid_request',
          message='The Content-Type `application/x-ndjson` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body='hello', status=400, code='bad_request', type='invalid_request',
          message='Invalid value type: expected an object, but found a string: `"hello"`'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={'filter': True}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Invalid syntax for the filter parameter: `expected String, Array, found: true`.'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={'filter': 'hello'}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `hello`.\n1:6 hello'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={'filter': ''}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Sending an empty filter is forbidden.'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={}, status=400, code='missing_document_filter', type='invalid_request',
          message='Missing field `filter`'),
        C('delete_document_by_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={'filter': 'doggo = bernese'}, status='task', code='index_not_found', type='invalid_request',
          message='Index `[uuid]` not found.'),
        C('delete_document_by_filter', EMPTY, 'POST', '/indexes/{uid}/documents/delete', body={'filter': 'doggo = bernese'}, status='task', code='invalid_document_filter', type='invalid_request',
          message='Index `[uuid]`: Attribute `doggo` is not filterable. This index does not have configured filterable attributes.\n1:6 doggo = bernese'),
        C('delete_document_by_filter', DOCS_ID_TITLE, 'POST', '/indexes/{uid}/documents/delete', body={'filter': 'catto = jorts'}, status='task', code='invalid_document_filter', type='invalid_request',
          message='Index `[uuid]`: Attribute `catto` is not filterable. Available filterable attribute patterns are: `id`, `title`.\n1:6 catto = jorts'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body=None, status=400, code='bad_request', type='invalid_request',
          message='Invalid value type: expected an object, but found null'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'offset': 'doggo'}, status=400, code='invalid_document_offset', type='invalid_request',
          message='Invalid value type at `.offset`: expected a positive integer, but found a string: `"doggo"`'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'limit': 'doggo'}, status=400, code='invalid_document_limit', type='invalid_request',
          message='Invalid value type at `.limit`: expected a positive integer, but found a string: `"doggo"`'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'fields': 'doggo'}, status=400, code='invalid_document_fields', type='invalid_request',
          message='Invalid value type at `.fields`: expected an array, but found a string: `"doggo"`'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'filter': True}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Invalid syntax for the filter parameter: `expected String, Array, found: true`.'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'filter': 'cool doggo'}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `cool doggo`.\n1:11 cool doggo'),
        C('fetch_document_by_filter', DOCS_COLOR, 'POST', '/indexes/{uid}/documents/fetch', body={'filter': 'doggo = bernese'}, status=400, code='invalid_document_filter', type='invalid_request',
          message='Attribute `doggo` is not filterable. Available filterable attribute patterns are: `color`.\n1:6 doggo = bernese'),
        C('retrieve_vectors', EMPTY, 'GET', '/indexes/{uid}/documents?retrieveVectors=tamo', status=400, code='invalid_document_retrieve_vectors', type='invalid_request',
          message='Invalid value in parameter `retrieveVectors`: could not parse `tamo` as a boolean, expected either `true` or `false`'),
        C('retrieve_vectors', EMPTY, 'POST', '/indexes/{uid}/documents/fetch', body={'retrieveVectors': 'tamo'}, status=400, code='invalid_document_retrieve_vectors', type='invalid_request',
          message='Invalid value type at `.retrieveVectors`: expected a boolean, but found a string: `"tamo"`'),
        C('retrieve_vectors', EMPTY, 'GET', '/indexes/{uid}/documents/0?retrieveVectors=tamo', status=400, code='invalid_document_retrieve_vectors', type='invalid_request',
          message='Invalid value in parameter `retrieveVectors`: could not parse `tamo` as a boolean, expected either `true` or `false`'),
        C('replace_documents_bad_csv_delimiter', MISSING, 'POST', '/indexes/{uid}/documents?csvDelimiter=%F0%9F%8D%B0', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='csv delimiter must be an ascii character. Found: `\U0001f370`'),
        C('update_documents_bad_csv_delimiter', MISSING, 'PUT', '/indexes/{uid}/documents?csvDelimiter=%F0%9F%8D%B0', raw=('', {'Content-Type': 'application/json'}), status=400, code='invalid_document_csv_delimiter', type='invalid_request',
          message='csv delimiter must be an ascii character. Found: `\U0001f370`'),
        C('delete_documents_by_filter_foreign_filter', MISSING, 'POST', '/indexes/{uid}/documents/delete', body={'filter': '_foreign(author, id = a1)'}, status=400, code='feature_not_enabled', type='invalid_request',
          message='using a foreign filter requires enabling the `foreign_keys` experimental feature. See https://github.com/orgs/meilisearch/discussions/873\n10:16 _foreign(author, id = a1)'),
    ],
    "search": [
        C('search_unexisting_index', MISSING, 'POST', '/indexes/{uid}/search', body={'q': 'hello'}, status=404, code='index_not_found', type='invalid_request',
          message='Index `[uuid]` not found.'),
        C('search_bad_q', MISSING, 'POST', '/indexes/{uid}/search', body={'q': ['doggo']}, status=400, code='invalid_search_q', type='invalid_request',
          message='Invalid value type at `.q`: expected a string, but found an array: `["doggo"]`'),
        C('search_bad_offset', MISSING, 'POST', '/indexes/{uid}/search', body={'offset': 'doggo'}, status=400, code='invalid_search_offset', type='invalid_request',
          message='Invalid value type at `.offset`: expected a positive integer, but found a string: `"doggo"`'),
        C('search_bad_offset', MISSING, 'GET', '/indexes/{uid}/search?offset=doggo', status=400, code='invalid_search_offset', type='invalid_request',
          message='Invalid value in parameter `offset`: could not parse `doggo` as a positive integer'),
        C('search_bad_limit', MISSING, 'POST', '/indexes/{uid}/search', body={'limit': 'doggo'}, status=400, code='invalid_search_limit', type='invalid_request',
          message='Invalid value type at `.limit`: expected a positive integer, but found a string: `"doggo"`'),
        C('search_bad_limit', MISSING, 'GET', '/indexes/{uid}/search?limit=doggo', status=400, code='invalid_search_limit', type='invalid_request',
          message='Invalid value in parameter `limit`: could not parse `doggo` as a positive integer'),
        C('search_bad_page', MISSING, 'POST', '/indexes/{uid}/search', body={'page': 'doggo'}, status=400, code='invalid_search_page', type='invalid_request',
          message='Invalid value type at `.page`: expected a positive integer, but found a string: `"doggo"`'),
        C('search_bad_page', MISSING, 'GET', '/indexes/{uid}/search?page=doggo', status=400, code='invalid_search_page', type='invalid_request',
          message='Invalid value in parameter `page`: could not parse `doggo` as a positive integer'),
        C('search_bad_hits_per_page', MISSING, 'POST', '/indexes/{uid}/search', body={'hitsPerPage': 'doggo'}, status=400, code='invalid_search_hits_per_page', type='invalid_request',
          message='Invalid value type at `.hitsPerPage`: expected a positive integer, but found a string: `"doggo"`'),
        C('search_bad_hits_per_page', MISSING, 'GET', '/indexes/{uid}/search?hitsPerPage=doggo', status=400, code='invalid_search_hits_per_page', type='invalid_request',
          message='Invalid value in parameter `hitsPerPage`: could not parse `doggo` as a positive integer'),
        C('search_bad_attributes_to_retrieve', MISSING, 'POST', '/indexes/{uid}/search', body={'attributesToRetrieve': 'doggo'}, status=400, code='invalid_search_attributes_to_retrieve', type='invalid_request',
          message='Invalid value type at `.attributesToRetrieve`: expected an array, but found a string: `"doggo"`'),
        C('search_bad_retrieve_vectors', MISSING, 'POST', '/indexes/{uid}/search', body={'retrieveVectors': 'doggo'}, status=400, code='invalid_search_retrieve_vectors', type='invalid_request',
          message='Invalid value type at `.retrieveVectors`: expected a boolean, but found a string: `"doggo"`'),
        C('search_bad_retrieve_vectors', MISSING, 'POST', '/indexes/{uid}/search', body={'retrieveVectors': [True]}, status=400, code='invalid_search_retrieve_vectors', type='invalid_request',
          message='Invalid value type at `.retrieveVectors`: expected a boolean, but found an array: `[true]`'),
        C('search_bad_retrieve_vectors', MISSING, 'GET', '/indexes/{uid}/search?retrieveVectors=', status=400, code='invalid_search_retrieve_vectors', type='invalid_request',
          message='Invalid value in parameter `retrieveVectors`: could not parse `` as a boolean, expected either `true` or `false`'),
        C('search_bad_retrieve_vectors', MISSING, 'GET', '/indexes/{uid}/search?retrieveVectors=doggo', status=400, code='invalid_search_retrieve_vectors', type='invalid_request',
          message='Invalid value in parameter `retrieveVectors`: could not parse `doggo` as a boolean, expected either `true` or `false`'),
        C('search_bad_attributes_to_crop', MISSING, 'POST', '/indexes/{uid}/search', body={'attributesToCrop': 'doggo'}, status=400, code='invalid_search_attributes_to_crop', type='invalid_request',
          message='Invalid value type at `.attributesToCrop`: expected an array, but found a string: `"doggo"`'),
        C('search_bad_crop_length', MISSING, 'POST', '/indexes/{uid}/search', body={'cropLength': 'doggo'}, status=400, code='invalid_search_crop_length', type='invalid_request',
          message='Invalid value type at `.cropLength`: expected a positive integer, but found a string: `"doggo"`'),
        C('search_bad_crop_length', MISSING, 'GET', '/indexes/{uid}/search?cropLength=doggo', status=400, code='invalid_search_crop_length', type='invalid_request',
          message='Invalid value in parameter `cropLength`: could not parse `doggo` as a positive integer'),
        C('search_bad_attributes_to_highlight', MISSING, 'POST', '/indexes/{uid}/search', body={'attributesToHighlight': 'doggo'}, status=400, code='invalid_search_attributes_to_highlight', type='invalid_request',
          message='Invalid value type at `.attributesToHighlight`: expected an array, but found a string: `"doggo"`'),
        C('search_bad_filter', EMPTY, 'POST', '/indexes/{uid}/search', body={'filter': True}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Invalid syntax for the filter parameter: `expected String, Array, found: true`.'),
        C('search_bad_sort', MISSING, 'POST', '/indexes/{uid}/search', body={'sort': 'doggo'}, status=400, code='invalid_search_sort', type='invalid_request',
          message='Invalid value type at `.sort`: expected an array, but found a string: `"doggo"`'),
        C('search_bad_show_matches_position', MISSING, 'POST', '/indexes/{uid}/search', body={'showMatchesPosition': 'doggo'}, status=400, code='invalid_search_show_matches_position', type='invalid_request',
          message='Invalid value type at `.showMatchesPosition`: expected a boolean, but found a string: `"doggo"`'),
        C('search_bad_show_matches_position', MISSING, 'GET', '/indexes/{uid}/search?showMatchesPosition=doggo', status=400, code='invalid_search_show_matches_position', type='invalid_request',
          message='Invalid value in parameter `showMatchesPosition`: could not parse `doggo` as a boolean, expected either `true` or `false`'),
        C('search_bad_facets', MISSING, 'POST', '/indexes/{uid}/search', body={'facets': 'doggo'}, status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid value type at `.facets`: expected an array, but found a string: `"doggo"`'),
        C('search_bad_threshold', MISSING, 'POST', '/indexes/{uid}/search', body={'rankingScoreThreshold': 'doggo'}, status=400, code='invalid_search_ranking_score_threshold', type='invalid_request',
          message='Invalid value type at `.rankingScoreThreshold`: expected a number, but found a string: `"doggo"`'),
        C('search_invalid_threshold', MISSING, 'POST', '/indexes/{uid}/search', body={'rankingScoreThreshold': 42}, status=400, code='invalid_search_ranking_score_threshold', type='invalid_request',
          message='Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.'),
        C('search_non_filterable_facets', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'facets': ['doggo']}, status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `title`.'),
        C('search_non_filterable_facets', DOCS_FILTER_TITLE, 'GET', '/indexes/{uid}/search?facets=doggo', status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `title`.'),
        C('search_non_filterable_facets_multiple_filterable', FILTER_TITLE_GENRES, 'POST', '/indexes/{uid}/search', body={'facets': ['doggo']}, status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `genres, title`.'),
        C('search_non_filterable_facets_multiple_filterable', FILTER_TITLE_GENRES, 'GET', '/indexes/{uid}/search?facets=doggo', status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `genres, title`.'),
        C('search_non_filterable_facets_no_filterable', EMPTY, 'POST', '/indexes/{uid}/search', body={'facets': ['doggo']}, status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. This index does not have configured filterable attributes.'),
        C('search_non_filterable_facets_no_filterable', EMPTY, 'GET', '/indexes/{uid}/search?facets=doggo', status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. This index does not have configured filterable attributes.'),
        C('search_non_filterable_facets_multiple_facets', FILTER_TITLE_GENRES, 'POST', '/indexes/{uid}/search', body={'facets': ['doggo', 'neko']}, status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `genres, title`.'),
        C('search_non_filterable_facets_multiple_facets', FILTER_TITLE_GENRES, 'GET', '/indexes/{uid}/search?facets=doggo,neko', status=400, code='invalid_search_facets', type='invalid_request',
          message='Invalid facet distribution: Pattern `doggo` is not filterable. Available filterable attributes patterns are: `genres, title`.'),
        C('search_bad_highlight_pre_tag', MISSING, 'POST', '/indexes/{uid}/search', body={'highlightPreTag': ['doggo']}, status=400, code='invalid_search_highlight_pre_tag', type='invalid_request',
          message='Invalid value type at `.highlightPreTag`: expected a string, but found an array: `["doggo"]`'),
        C('search_bad_highlight_post_tag', MISSING, 'POST', '/indexes/{uid}/search', body={'highlightPostTag': ['doggo']}, status=400, code='invalid_search_highlight_post_tag', type='invalid_request',
          message='Invalid value type at `.highlightPostTag`: expected a string, but found an array: `["doggo"]`'),
        C('search_bad_crop_marker', MISSING, 'POST', '/indexes/{uid}/search', body={'cropMarker': ['doggo']}, status=400, code='invalid_search_crop_marker', type='invalid_request',
          message='Invalid value type at `.cropMarker`: expected a string, but found an array: `["doggo"]`'),
        C('search_bad_matching_strategy', MISSING, 'POST', '/indexes/{uid}/search', body={'matchingStrategy': 'doggo'}, status=400, code='invalid_search_matching_strategy', type='invalid_request',
          message='Unknown value `doggo` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`'),
        C('search_bad_matching_strategy', MISSING, 'POST', '/indexes/{uid}/search', body={'matchingStrategy': {'doggo': 'doggo'}}, status=400, code='invalid_search_matching_strategy', type='invalid_request',
          message='Invalid value type at `.matchingStrategy`: expected a string, but found an object: `{"doggo":"doggo"}`'),
        C('search_bad_matching_strategy', MISSING, 'GET', '/indexes/{uid}/search?matchingStrategy=doggo', status=400, code='invalid_search_matching_strategy', type='invalid_request',
          message='Unknown value `doggo` for parameter `matchingStrategy`: expected one of `last`, `all`, `frequency`'),
        C('filter_invalid_syntax_object', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': 'title & Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `title & Glass`.\n1:14 title & Glass'),
        C('filter_invalid_syntax_array', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': ['title & Glass']}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` at `title & Glass`.\n1:14 title & Glass'),
        C('filter_invalid_syntax_string', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': 'title = Glass XOR title = Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Found unexpected characters at the end of the filter: `XOR title = Glass`. You probably forgot an `OR` or an `AND` rule.\n15:32 title = Glass XOR title = Glass'),
        C('filter_invalid_attribute_array', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': ['many = Glass']}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Attribute `many` is not filterable. Available filterable attribute patterns are: `title`.\n2:6 "many" = "Glass"'),
        C('filter_invalid_attribute_string', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': 'many = Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Attribute `many` is not filterable. Available filterable attribute patterns are: `title`.\n2:6 "many" = "Glass"'),
        C('filter_reserved_geo_attribute_array', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': ['_geo = Glass']}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geo` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:13 _geo = Glass"),
        C('filter_reserved_geo_attribute_string', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': '_geo = Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geo` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:13 _geo = Glass"),
        C('filter_reserved_attribute_array', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': ['_geoDistance = Glass']}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geoDistance` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:21 _geoDistance = Glass"),
        C('filter_reserved_attribute_string', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': '_geoDistance = Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geoDistance` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:21 _geoDistance = Glass"),
        C('filter_reserved_geo_point_array', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': ['_geoPoint = Glass']}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geoPoint` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:18 _geoPoint = Glass"),
        C('filter_reserved_geo_point_string', DOCS_FILTER_TITLE, 'POST', '/indexes/{uid}/search', body={'filter': '_geoPoint = Glass'}, status=400, code='invalid_search_filter', type='invalid_request',
          message="`_geoPoint` is a reserved keyword and thus can't be used as a filter expression. Use the `_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], [latitude, longitude])` built-in rules to filter on `_geo` coordinates.\n1:18 _geoPoint = Glass"),
        C('search_with_pattern_filter_settings_errors', PATTERNS_COMPARISON, 'POST', '/indexes/{uid}/search', body={'filter': 'cattos = pésti'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Filter operator `=` is not allowed for the attribute `cattos`.\n  - Note: allowed operators: OR, AND, NOT, <, >, <=, >=, TO, IS EMPTY, IS NULL, EXISTS.\n  - Note: field `cattos` matched rule #0 in `filterableAttributes`\n  - Hint: enable equality in rule #0 by modifying the features.filter object\n  - Hint: prepend another rule matching `cattos` with appropriate filter features before rule #0'),
        C('search_with_pattern_filter_settings_errors', PATTERNS_COMPARISON, 'POST', '/indexes/{uid}/search', body={'filter': 'cattos IN [pésti, simba]'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Filter operator `=` is not allowed for the attribute `cattos`.\n  - Note: allowed operators: OR, AND, NOT, <, >, <=, >=, TO, IS EMPTY, IS NULL, EXISTS.\n  - Note: field `cattos` matched rule #0 in `filterableAttributes`\n  - Hint: enable equality in rule #0 by modifying the features.filter object\n  - Hint: prepend another rule matching `cattos` with appropriate filter features before rule #0'),
        C('search_with_pattern_filter_settings_errors', PATTERNS_PLAIN, 'POST', '/indexes/{uid}/search', body={'filter': 'doggos.age > 2'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Filter operator `>` is not allowed for the attribute `doggos.age`.\n  - Note: allowed operators: OR, AND, NOT, =, !=, IN, IS EMPTY, IS NULL, EXISTS.\n  - Note: field `doggos.age` matched rule #0 in `filterableAttributes`\n  - Hint: enable comparison in rule #0 by modifying the features.filter object\n  - Hint: prepend another rule matching `doggos.age` with appropriate filter features before rule #0'),
        C('search_with_pattern_filter_settings_errors', PATTERNS_EQUALITY, 'POST', '/indexes/{uid}/search', body={'filter': 'doggos.age > 2'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Filter operator `>` is not allowed for the attribute `doggos.age`.\n  - Note: allowed operators: OR, AND, NOT, =, !=, IN, IS EMPTY, IS NULL, EXISTS.\n  - Note: field `doggos.age` matched rule #0 in `filterableAttributes`\n  - Hint: enable comparison in rule #0 by modifying the features.filter object\n  - Hint: prepend another rule matching `doggos.age` with appropriate filter features before rule #0'),
        C('search_with_pattern_filter_settings_errors', PATTERNS_EQUALITY, 'POST', '/indexes/{uid}/search', body={'filter': 'doggos.age 2 TO 4'}, status=400, code='invalid_search_filter', type='invalid_request',
          message='Index `[uuid]`: Filter operator `TO` is not allowed for the attribute `doggos.age`.\n  - Note: allowed operators: OR, AND, NOT, =, !=, IN, IS EMPTY, IS NULL, EXISTS.\n  - Note: field `doggos.age` matched rule #0 in `filterableAttributes`\n  - Hint: enable comparison in rule #0 by modifying the features.filter object\n  - Hint: prepend another rule matching `doggos.age` with appropriate filter features before rule #0'),
        C('sort_geo_reserved_attribute', SORT_ID, 'POST', '/indexes/{uid}/search', body={'sort': ['_geo:asc']}, status=400, code='invalid_search_sort', type='invalid_request',
          message="`_geo` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
        C('sort_reserved_attribute', SORT_ID, 'POST', '/indexes/{uid}/search', body={'sort': ['_geoDistance:asc']}, status=400, code='invalid_search_sort', type='invalid_request',
          message="`_geoDistance` is a reserved keyword and thus can't be used as a sort expression."),
        C('sort_unsortable_attribute', SORT_ID, 'POST', '/indexes/{uid}/search', body={'sort': ['title:asc']}, status=400, code='invalid_search_sort', type='invalid_request',
          message='Index `[uuid]`: Attribute `title` is not sortable. Available sortable attributes are: `id`.'),
        C('sort_invalid_syntax', SORT_ID, 'POST', '/indexes/{uid}/search', body={'sort': ['title']}, status=400, code='invalid_search_sort', type='invalid_request',
          message='Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `title`.'),
        C('sort_unset_ranking_rule', SORT_TITLE_RULES, 'POST', '/indexes/{uid}/search', body={'sort': ['title:asc']}, status=400, code='invalid_search_sort', type='invalid_request',
          message='Index `[uuid]`: You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.'),
        C('search_on_unknown_field', SEARCH_ID_TITLE, 'POST', '/indexes/{uid}/search', body={'q': 'Captain Marvel', 'attributesToSearchOn': ['unknown']}, status=400, code='invalid_search_attributes_to_search_on', type='invalid_request',
          message='Index `[uuid]`: Attribute `unknown` is not searchable. Available searchable attributes are: `id, title`.'),
        C('search_on_unknown_field_plus_joker', SEARCH_ID_TITLE, 'POST', '/indexes/{uid}/search', body={'q': 'Captain Marvel', 'attributesToSearchOn': ['*', 'unknown']}, status=400, code='invalid_search_attributes_to_search_on', type='invalid_request',
          message='Index `[uuid]`: Attribute `unknown` is not searchable. Available searchable attributes are: `id, title`.'),
        C('search_on_unknown_field_plus_joker', SEARCH_ID_TITLE, 'POST', '/indexes/{uid}/search', body={'q': 'Captain Marvel', 'attributesToSearchOn': ['unknown', '*']}, status=400, code='invalid_search_attributes_to_search_on', type='invalid_request',
          message='Index `[uuid]`: Attribute `unknown` is not searchable. Available searchable attributes are: `id, title`.'),
        C('distinct_at_search_time', DOGGO, 'POST', '/indexes/{uid}/search', body={'page': 0, 'hitsPerPage': 2, 'distinct': 'doggo.truc'}, status=400, code='invalid_search_distinct', type='invalid_request',
          message='Index `[uuid]`: Attribute `doggo.truc` is not filterable and thus, cannot be used as distinct attribute. This index does not have configured filterable attributes.'),
        C('distinct_at_search_time', DOGGO_FILTER, 'POST', '/indexes/{uid}/search', body={'page': 0, 'hitsPerPage': 2, 'distinct': 'doggo.truc'}, status=400, code='invalid_search_distinct', type='invalid_request',
          message='Index `[uuid]`: Attribute `doggo.truc` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `color, machin`.'),
        C('distinct_at_search_time', DOGGO_FILTER_DISPLAY, 'POST', '/indexes/{uid}/search', body={'page': 0, 'hitsPerPage': 2, 'distinct': 'doggo.truc'}, status=400, code='invalid_search_distinct', type='invalid_request',
          message='Index `[uuid]`: Attribute `doggo.truc` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `color, <..hidden-attributes>`.'),
        C('distinct_at_search_time', DOGGO_FILTER_DISPLAY, 'POST', '/indexes/{uid}/search', body={'page': 0, 'hitsPerPage': 2, 'distinct': True}, status=400, code='invalid_search_distinct', type='invalid_request',
          message='Invalid value type at `.distinct`: expected a string, but found a boolean: `true`'),
        C('search_with_contains_without_enabling_the_feature', EMPTY, 'POST', '/indexes/{uid}/search', body={'filter': 'doggo CONTAINS kefir'}, status=400, code='feature_not_enabled', type='invalid_request',
          message='Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n7:15 doggo CONTAINS kefir'),
        C('search_with_contains_without_enabling_the_feature', EMPTY, 'POST', '/indexes/{uid}/search', body={'filter': 'doggo != echo AND doggo CONTAINS kefir'}, status=400, code='feature_not_enabled', type='invalid_request',
          message='Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n25:33 doggo != echo AND doggo CONTAINS kefir'),
        C('search_with_contains_without_enabling_the_feature', EMPTY, 'POST', '/indexes/{uid}/search', body={'filter': ['doggo != echo', 'doggo CONTAINS kefir']}, status=400, code='feature_not_enabled', type='invalid_request',
          message='Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n7:15 doggo CONTAINS kefir'),
        C('search_with_contains_without_enabling_the_feature', EMPTY, 'POST', '/indexes/{uid}/search', body={'filter': ['doggo != echo', ['doggo CONTAINS kefir']]}, status=400, code='feature_not_enabled', type='invalid_request',
          message='Using `CONTAINS` in a filter requires enabling the `contains filter` experimental feature. See https://github.com/orgs/meilisearch/discussions/763\n7:15 doggo CONTAINS kefir'),
        ],
}


def _uid_of(setup: Setup) -> str:
    return next(name for name, s in SETUPS.items() if s is setup) if setup is not None else "missing"


def _prepare(client: httpx.Client) -> None:
    """Every setup's index on `client`'s server; each task must succeed. All are sent
    before any is waited for: the server works while the rest are sent."""
    sent = []
    for uid, setup in SETUPS.items():
        if setup is None:
            continue
        docs, settings = setup
        sent.append(client.post("/indexes", json={"uid": uid}))
        if docs:
            sent.append(client.post(f"/indexes/{uid}/documents", json=docs))
        if settings:
            sent.append(client.patch(f"/indexes/{uid}/settings", json=settings))
    for resp in sent:
        task = task_of(client, resp)
        assert task["status"] == "succeeded", task


def answer(client: httpx.Client, case: C) -> tuple[int | str, dict]:
    """The status and error body `client`'s server gives for `case`."""
    uid = _uid_of(case.setup)
    path = case.path.replace("{uid}", uid)
    if case.raw is not None:
        content, headers = case.raw
        resp = client.request(case.method, path, content=content.encode(), headers=headers)
    elif case.body is not None or case.method in ("POST", "PUT", "PATCH"):
        resp = client.request(case.method, path, content=msgspec.json.encode(case.body), headers={"Content-Type": "application/json"})
    else:
        resp = client.request(case.method, path)
    if case.status == "task" and resp.status_code == 202:
        return "task", task_of(client, resp).get("error") or {}
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, {"text": resp.text}


def expected(case: C) -> tuple[int | str, dict]:
    uid = _uid_of(case.setup)
    body = {"message": case.message.replace("[uuid]", uid), "code": case.code, "type": case.type, "link": LINK + case.code}
    return case.status, body


def mismatches(client: httpx.Client, folder: str) -> list[str]:
    """The cases of `folder` whose answer on `client`'s server differs from 1.50's."""
    out = []
    for case in CASES[folder]:
        got, want = answer(client, case), expected(case)
        if got != want:
            out.append(f"{case.name} {case.method} {case.path}\n  want {want}\n  got  {got}")
    return out


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, httpx.Client]]:
    with devnode_and_miroir(nodes=3, shards=4) as (one, many):
        for client in (one, many):
            _prepare(client)
        yield {"devnode": one, "miroir": many}


@pytest.mark.parametrize("folder", list(CASES))
@pytest.mark.parametrize("target", ["devnode", "miroir"])
def test_errors_as_meilisearch_answers(servers: dict[str, httpx.Client], target: str, folder: str) -> None:
    wrong = mismatches(servers[target], folder)
    assert not wrong, f"{len(wrong)} of {len(CASES[folder])} differ:\n" + "\n".join(wrong)
