"""Issue 20's follow-up: a write in flight when Miroir is killed ends the same on every copy.

RG = 1, RF = 2 over two durable devnodes (each owns every shard). n2 is SIGSTOPped and a
write is sent: n1 applies it, n2 holds it unanswered (slow health settings: Miroir waits
on n2 instead of hinting it), the client has no answer. Miroir is killed (-9) there.
n2 then either resumes (SIGCONT: it may apply the request it had buffered) or is killed
too and restarted (it never applied it). Miroir restarts on the same journal: the write's
intent, journaled before the fan-out, is rolled forward (engine/intents.py): both copies
hold the write, and its task (a uid the client never saw) is journaled and succeeds.
Without the intent, the second case leaves n1 with the write and n2 without it, for good.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.chaos_helpers import MiroirProcess, node_docs, settle_urls, wait_until
from tests.support.devnodes import Devnode, start_devnodes, wait_task

pytestmark = pytest.mark.timeout(60)

UID = "items"
WAIT_S = 30.0


def _config(path: Path, data_dir: Path, devs: list[Devnode]) -> None:
    lines = [
        "[server]", 'bind = "127.0.0.1:0"',
        "[cluster]", "shards = 2", "replication_factor = 2",
        "[store]", f'data_dir = "{data_dir}"',
        "[log]", 'level = "info"',
        # A stopped node is not taken for down for tens of seconds: the write stays held
        # on it (instead of being hinted and answered) until Miroir is killed.
        "[health]", "interval_ms = 1000", "timeout_ms = 20000", "unhealthy_threshold = 5", "recovery_threshold = 1",
    ]
    for i, d in enumerate(devs):
        lines += ["[[nodes]]", f'id = "n{i + 1}"', f'url = "{d.url}"', 'group = "g0"']
    path.write_text("\n".join(lines) + "\n")


def _doc(url: str, doc_id: str) -> dict | None:
    got = node_docs(url, UID).get(doc_id)
    return None if got is None else {k: v for k, v in got.items() if not k.startswith("_miroir")}


@pytest.mark.parametrize("n2_resumes", ["sigcont", "killed"])
def test_write_in_flight_at_kill9_reaches_every_copy(tmp_path, n2_resumes):
    with start_devnodes(2, data_dirs=[str(tmp_path / "n1"), str(tmp_path / "n2")]) as devs:
        n1, n2 = devs
        config = tmp_path / "miroir.toml"
        _config(config, tmp_path / "journal", devs)
        procs = [MiroirProcess(config)]
        try:
            url = procs[0].wait_ready()
            with httpx.Client(base_url=url, timeout=30) as http:
                r = http.post("/indexes", json={"uid": UID, "primaryKey": "id"})
                assert wait_task(url, r.json()["taskUid"], timeout=WAIT_S)["status"] == "succeeded"
                r = http.post(f"/indexes/{UID}/documents", json=[{"id": 1, "v": 0}, {"id": 2, "v": 0}])
                base = r.json()["taskUid"]
                assert wait_task(url, base, timeout=WAIT_S)["status"] == "succeeded"
            settle_urls([n1.url, n2.url], WAIT_S)

            os.kill(n2.proc.pid, signal.SIGSTOP)
            answers: list[object] = []

            def write() -> None:
                try:
                    answers.append(
                        httpx.post(f"{url}/indexes/{UID}/documents", json=[{"id": 1, "v": 1}, {"id": 2, "v": 1}],
                                   timeout=60)
                    )
                except httpx.TransportError as exc:
                    answers.append(exc)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            # n1 applied the write; n2 holds it: the client cannot have an answer yet.
            wait_until(lambda: _doc(n1.url, "1") == {"id": 1, "v": 1}, timeout=WAIT_S, what="n1 applied the write")
            assert not answers, answers
            procs[0].kill()
            writer.join(30)
            assert answers and isinstance(answers[0], httpx.TransportError), answers  # no answer: Miroir died
            if n2_resumes == "sigcont":
                os.kill(n2.proc.pid, signal.SIGCONT)
            else:
                n2.kill()  # its buffered request dies with it
                n2.start()
                n2.wait_ready()

            procs.append(MiroirProcess(config))
            url = procs[1].wait_ready()
            # Rolled forward before Miroir is ready: once the nodes are idle, both copies hold it.
            settle_urls([n1.url, n2.url], WAIT_S)
            copies = {n: (_doc(d.url, "1"), _doc(d.url, "2")) for n, d in (("n1", n1), ("n2", n2))}
            assert copies["n1"] == copies["n2"] == ({"id": 1, "v": 1}, {"id": 2, "v": 1}), copies
            rolled = procs[1].events("intent.rolled_forward")
            assert len(rolled) == 1 and rolled[0]["index"] == UID, rolled
            task_uid = rolled[0]["task_uid"]
            assert task_uid > base
            view = wait_task(url, task_uid, timeout=WAIT_S)
            assert view["status"] == "succeeded" and view["type"] == "documentAdditionOrUpdate", view
            assert view["details"] == {"receivedDocuments": 2, "indexedDocuments": 2}, view
            # A restart with nothing in flight rolls nothing forward (the intent is settled).
            procs[1].kill()
            procs.append(MiroirProcess(config))
            procs[2].wait_ready()
            assert procs[2].events("intent.rolled_forward") == []
        finally:
            if n2.proc is not None and n2.proc.poll() is None:
                os.kill(n2.proc.pid, signal.SIGCONT)
            for p in procs:
                p.kill()
