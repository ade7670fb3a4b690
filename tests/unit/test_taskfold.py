"""Folding node task views into one Miroir task (core/taskfold.py): pure, no I/O."""

from __future__ import annotations

from miroir.core.model import TaskRecord
from miroir.core.taskfold import fold, fold_status, lost_view, summarized, task_view

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
    assert view["batchUid"] == rec.uid and view["error"] is None and view["canceledBy"] is None  # one batch per task
    assert summarized(rec) == {
        "taskUid": 4, "indexUid": "movies", "status": "enqueued", "type": "documentAdditionOrUpdate", "enqueuedAt": T0,
    }


# --- node tasks lost by their node (disk lost, node wiped): the write's quorum decides ---

def lost(uid=7):
    return lost_view(uid, f"Node `x` lost task {uid}.")


def test_lost_node_task_with_quorum_met_succeeds():
    # RG=2, RF=1: n1 (g0) and n2 (g1) each hold shards 0..3; n2 lost its task (wiped).
    group_of = {"n1": "g0", "n2": "g1"}
    shards_of = {"n1": [0, 1, 2, 3], "n2": [0, 1, 2, 3]}
    base = {"receivedDocuments": 10, "indexedDocuments": None}
    views = {"n1": v("succeeded", T0, T1, receivedDocuments=10, indexedDocuments=10), "n2": lost()}
    f = fold("documentAdditionOrUpdate", base, views, group_of=group_of, rf=1, node_shards=shards_of)
    assert (f.status, f.error) == ("succeeded", None)
    assert f.details == {"receivedDocuments": 10, "indexedDocuments": 10}
    assert (f.started_at, f.finished_at) == (T0, T1)
    # RG=1, RF=3 (quorum 2): one of three owners lost is still a quorum.
    group_of = {"a": "g0", "b": "g0", "c": "g0"}
    shards_of = {"a": [0, 1], "b": [0, 1], "c": [0, 1]}
    views = {"a": v("succeeded", T0, T1), "b": lost(), "c": v("succeeded", T0, T2)}
    f = fold("documentAdditionOrUpdate", base, views, group_of=group_of, rf=3, node_shards=shards_of)
    assert f.status == "succeeded" and f.details["indexedDocuments"] == 10 and f.finished_at == T2


def test_lost_node_task_without_quorum_fails():
    base = {"receivedDocuments": 10, "indexedDocuments": None}
    # RG=1, RF=1: the lost node held shards nobody else holds.
    f = fold(
        "documentAdditionOrUpdate", base, {"n1": v("succeeded", T0, T1), "n2": lost()},
        group_of={"n1": "g0", "n2": "g0"}, rf=1, node_shards={"n1": [0, 2], "n2": [1, 3]},
    )
    assert f.status == "failed" and f.error["code"] == "miroir_node_unavailable"
    assert f.details["indexedDocuments"] == 0
    # RG=1, RF=3: two of three owners lost is below the quorum of 2.
    group_of = {"a": "g0", "b": "g0", "c": "g0"}
    shards_of = {"a": [0], "b": [0], "c": [0]}
    f = fold("documentAdditionOrUpdate", base, {"a": v("succeeded", T0, T1), "b": lost(), "c": lost(8)},
             group_of=group_of, rf=3, node_shards=shards_of)
    assert f.status == "failed"
    # RG=2, RF=1, but the write was acknowledged degraded (n2 hinted: no node task of its
    # own): losing n1's task leaves no owner at all.
    f = fold("documentAdditionOrUpdate", base, {"n1": lost()}, group_of={"n1": "g0", "n2": "g1"}, rf=1,
             node_shards={"n1": [0, 1]})
    assert f.status == "failed"
    # Without the write's shards (old journals, index tasks) a lost node task fails as before.
    f = fold("documentAdditionOrUpdate", base, {"n1": v("succeeded", T0, T1), "n2": lost()},
             group_of={"n1": "g0", "n2": "g1"}, rf=1)
    assert f.status == "failed"


def test_lost_node_task_waits_for_the_others_and_never_hides_a_real_failure():
    group_of = {"n1": "g0", "n2": "g1", "n3": "g1"}
    shards_of = {"n1": [0, 1], "n2": [0], "n3": [1]}
    base = {"receivedDocuments": 4, "indexedDocuments": None}
    f = fold("documentAdditionOrUpdate", base, {"n1": v("processing", T0), "n2": lost(), "n3": v("succeeded", T0, T1)},
             group_of=group_of, rf=1, node_shards=shards_of)
    assert f.status == "processing" and f.finished_at is None and f.details["indexedDocuments"] is None
    # A node that ran the task and failed it is a real failure, quorum or not.
    f = fold("documentAdditionOrUpdate", base,
             {"n1": v("succeeded", T0, T1), "n2": lost(), "n3": v("failed", T0, T1, err("boom"))},
             group_of=group_of, rf=1, node_shards=shards_of)
    assert f.status == "failed" and f.error["code"] == "boom"


def test_deleted_documents_with_a_lost_node_task():
    # RG=1, RF=3 over 3 nodes: every node holds the write's shard; b lost its task. Each
    # deleted document is reported by the 2 surviving owners, not by RF=3.
    group_of = {"a": "g0", "b": "g0", "c": "g0"}
    shards_of = {"a": [5], "b": [5], "c": [5]}
    views = {"a": v("succeeded", T0, T1, deletedDocuments=3), "b": lost(), "c": v("succeeded", T0, T1, deletedDocuments=3)}
    f = fold("documentDeletion", {"providedIds": 4, "deletedDocuments": None}, views, group_of=group_of, rf=3,
             node_shards=shards_of)
    assert f.status == "succeeded" and f.details["deletedDocuments"] == 3
    # RG=2, RF=1: the complete group counts.
    views = {"n1": v("succeeded", T0, T1, deletedDocuments=6), "n2": lost()}
    f = fold("documentDeletion", {"deletedDocuments": None}, views, group_of={"n1": "g0", "n2": "g1"}, rf=1,
             node_shards={"n1": [0, 1], "n2": [0, 1]})
    assert f.status == "succeeded" and f.details["deletedDocuments"] == 6
