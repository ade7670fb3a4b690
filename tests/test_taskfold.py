"""Folding node task views into one Miroir task (core/taskfold.py): pure, no I/O."""

from __future__ import annotations

from miroir.core.taskfold import fold, fold_status, summarized, task_view
from miroir.store.state import TaskRecord

T0 = "2024-05-01T10:00:00.000000Z"
T1 = "2024-05-01T10:00:01.500000Z"
T2 = "2024-05-01T10:00:02.000000000Z"  # nanoseconds, as Meilisearch prints them


def v(status, started=None, finished=None, error=None, **details):
    return {"status": status, "startedAt": started, "finishedAt": finished, "error": error, "details": details}


def err(code):
    return {"message": code, "code": code, "type": "invalid_request", "link": "x"}


def test_status_rules():
    assert fold_status([]) == "succeeded"
    assert fold_status(["enqueued", "enqueued"]) == "enqueued"
    assert fold_status(["enqueued", "processing"]) == "processing"
    assert fold_status(["succeeded", "enqueued"]) == "processing"  # some finished, others not
    assert fold_status(["failed", "processing"]) == "processing"  # terminal only when all are
    assert fold_status(["succeeded", "succeeded"]) == "succeeded"
    assert fold_status(["succeeded", "canceled"]) == "canceled"
    assert fold_status(["canceled", "failed", "succeeded"]) == "failed"


def test_times_and_first_error_in_node_order():
    views = {
        "n3": v("failed", T1, T2, err("second")),
        "n1": v("failed", T0, T1, err("first")),
        "n2": v("succeeded", T1, T1),
    }
    f = fold("settingsUpdate", {"rankingRules": ["words"]}, views)
    assert f.status == "failed"
    assert f.error["code"] == "first"
    assert f.started_at == T0 and f.finished_at == T2
    assert f.details == {"rankingRules": ["words"]}


def test_unfinished_has_no_finish_time_and_null_counters():
    f = fold(
        "documentAdditionOrUpdate",
        {"receivedDocuments": 10, "indexedDocuments": None},
        {"n1": v("succeeded", T0, T1), "n2": v("processing", T1)},
    )
    assert (f.status, f.started_at, f.finished_at) == ("processing", T0, None)
    assert f.details == {"receivedDocuments": 10, "indexedDocuments": None}
    assert fold("x", None, {"n1": v("enqueued")}).started_at is None


def test_addition_counts_the_clients_batch():
    base = {"receivedDocuments": 7, "indexedDocuments": None}
    ok = fold("documentAdditionOrUpdate", base, {"n1": v("succeeded", T0, T1, receivedDocuments=3, indexedDocuments=3),
                                                 "n2": v("succeeded", T0, T1, receivedDocuments=4, indexedDocuments=4)})
    assert ok.details == {"receivedDocuments": 7, "indexedDocuments": 7}
    bad = fold("documentAdditionOrUpdate", base, {"n1": v("failed", T0, T1, err("e")), "n2": v("succeeded", T0, T1)})
    assert bad.details == {"receivedDocuments": 7, "indexedDocuments": 0}


def test_deleted_documents_counts_one_copy():
    # Two groups, RF 2: each deleted document is reported by 2 nodes of each group.
    group_of = {"a1": "g0", "a2": "g0", "a3": "g0", "b1": "g1", "b2": "g1", "b3": "g1"}
    counts = {"a1": 4, "a2": 4, "a3": 4, "b1": 4, "b2": 2, "b3": 6}  # 6 docs, 2 copies each per group
    views = {n: v("succeeded", T0, T1, deletedDocuments=c) for n, c in counts.items()}
    base = {"providedIds": 0, "deletedDocuments": None, "originalFilter": "\"genre = x\""}
    f = fold("documentDeletion", base, views, group_of=group_of, rf=2)
    assert f.details["deletedDocuments"] == 6
    # By ids: never more than the ids the client gave.
    f = fold("documentDeletion", {"providedIds": 5, "deletedDocuments": None}, views, group_of=group_of, rf=2)
    assert f.details["deletedDocuments"] == 5
    # A lagging group does not hide deletions: the largest group count wins.
    views["b3"] = v("succeeded", T0, T1, deletedDocuments=0)
    f = fold("documentDeletion", base, views, group_of=group_of, rf=2)
    assert f.details["deletedDocuments"] == 6
    f = fold("documentDeletion", base, {"a1": v("canceled", T0, T1)}, group_of=group_of, rf=2)
    assert f.status == "canceled" and f.details["deletedDocuments"] == 0


def test_empty_fan_out_succeeds_with_a_finish_time():
    f = fold("indexDeletion", {"deletedDocuments": None}, {})
    assert f.status == "succeeded" and f.details == {"deletedDocuments": 0}


def test_task_view_and_summarized_shapes():
    rec = TaskRecord(
        uid=4,
        index_uid="movies",
        type="documentAdditionOrUpdate",
        status="succeeded",
        node_tasks={"n1": 9},
        details={"receivedDocuments": 2, "indexedDocuments": 2, "_miroir_driven": True},
        enqueued_at=T0,
        started_at=T1,
        finished_at=T2,
    )
    view = task_view(rec)
    assert list(view) == [
        "uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error", "duration",
        "enqueuedAt", "startedAt", "finishedAt",
    ]
    assert view["details"] == {"receivedDocuments": 2, "indexedDocuments": 2}  # private keys hidden
    assert view["duration"] == "PT0.500000S"
    assert view["batchUid"] is None and view["error"] is None and view["canceledBy"] is None
    assert summarized(rec) == {
        "taskUid": 4, "indexUid": "movies", "status": "succeeded", "type": "documentAdditionOrUpdate", "enqueuedAt": T0,
    }
