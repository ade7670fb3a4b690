"""Write-ahead intents, the pure part (core/intents.py) and their records (core/model.py)."""

from __future__ import annotations

import msgspec

from miroir.core.intents import make_intent, node_request, superseded
from miroir.core.model import (
    IntentJournaled,
    IntentSettled,
    MiroirState,
    NodeRequest,
    Record,
    TaskEnqueued,
    TaskRecord,
    WriteIntent,
    apply_record,
)


def _task(uid: int, index: str = "books", type: str = "documentAdditionOrUpdate") -> TaskRecord:
    return TaskRecord(uid=uid, index_uid=index, type=type, details={"receivedDocuments": 3})


def _batch_intent(uid: int = 7) -> WriteIntent:
    docs = [(0, {"id": 1, "_miroir_shard": 0}), (1, {"id": 2, "_miroir_shard": 1}), (0, {"id": 3, "_miroir_shard": 0})]
    owners = {"n1": [0], "n2": [1], "n3": [0, 1]}
    requests = {
        n: NodeRequest(index="books", method="POST", path="/indexes/books/documents", params={"primaryKey": "id"},
                       body=[d for s, d in docs if s in shards])
        for n, shards in owners.items()
    }
    return make_intent(_task(uid), requests, owners, docs, primary_key="id")


def test_each_owner_gets_back_exactly_its_request_after_a_journal_round_trip():
    intent = _batch_intent()
    assert intent.request.body is None  # each document stored once, not once per owner
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(IntentJournaled(intent=intent)), type=Record).intent
    assert node_request(back, "n1").body == [{"id": 1, "_miroir_shard": 0}, {"id": 3, "_miroir_shard": 0}]
    assert node_request(back, "n2").body == [{"id": 2, "_miroir_shard": 1}]
    assert [d["id"] for d in node_request(back, "n3").body] == [1, 2, 3]  # batch order kept
    assert node_request(back, "n3").params == {"primaryKey": "id"} and back.primary_key == "id"


def test_a_broadcast_sends_the_same_request_to_every_owner():
    req = NodeRequest(index="books", method="POST", path="/indexes/books/documents/delete", body={"filter": "a = 1"})
    intent = make_intent(_task(3, type="documentDeletion"), {"n1": req, "n2": req}, {"n1": [0, 1], "n2": [0, 1]}, None)
    assert node_request(intent, "n2") == req


def test_an_intent_reserves_its_uid_and_its_task_or_a_refusal_settles_it():
    state = MiroirState()
    apply_record(state, IntentJournaled(intent=_batch_intent(7)))
    apply_record(state, IntentJournaled(intent=_batch_intent(8)))
    assert sorted(state.intents) == [7, 8] and state.next_task_uid == 9
    apply_record(state, TaskEnqueued(task=_task(7)))
    apply_record(state, IntentSettled(uid=8))
    assert state.intents == {} and state.next_task_uid == 9


def test_an_intent_behind_a_later_write_of_its_index_is_superseded():
    state = MiroirState()
    intent = _batch_intent(7)
    state.tasks[9] = _task(9, index="other")
    state.tasks[10] = _task(10, type="settingsUpdate")
    assert not superseded(state, intent)
    state.tasks[11] = _task(11, type="documentDeletion")
    assert superseded(state, intent)
