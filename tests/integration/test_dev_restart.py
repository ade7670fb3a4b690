"""`miroir dev --data-dir D` restarted after Ctrl-C (SIGINT) and after `kill -9` (issue 15).

Real `python -m miroir dev` processes (tests/integration/test_devmode.py's `Dev`). The devnodes run
inside the dev process, so `kill -9` takes them down with Miroir. A restart must bring the
nodes back on the ports recorded in the data dir (the journal names them by URL), or, when
one of those ports is taken by something else, on a new port with the journal's node URL
updated: every document served again and every acknowledged task finished.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx

from tests.integration.test_devmode import Dev
from tests.support.devnodes import free_port

UID = "films"
TASK_TIMEOUT_S = 30.0
BIG = 2000
PAGE = 1000
ARGS = ("--nodes", "3", "--groups", "1", "--rf", "1", "--shards", "8")


def nodes_of(banner: dict[str, str]) -> dict[str, str]:
    return {k.split("@")[0]: v for k, v in banner.items() if "@" in k}


def add(url: str, docs: list[dict]) -> int:
    r = httpx.post(f"{url}/indexes/{UID}/documents", json=docs, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["taskUid"]


def delete(url: str, ids: list[int]) -> int:
    r = httpx.post(f"{url}/indexes/{UID}/documents/delete-batch", json=ids, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["taskUid"]


def wait_succeeded(url: str, uids: list[int]) -> None:
    deadline = time.monotonic() + TASK_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=5) as h:
        for uid in uids:
            while True:
                task = h.get(f"/tasks/{uid}").json()
                if task["status"] in ("succeeded", "failed", "canceled"):
                    assert task["status"] == "succeeded", task
                    break
                assert time.monotonic() < deadline, f"task {uid} still {task['status']} after {TASK_TIMEOUT_S}s"
                time.sleep(0.05)


def served(url: str) -> dict[int, dict]:
    """Every document Miroir serves, by id, checked against search and stats."""
    docs: dict[int, dict] = {}
    with httpx.Client(base_url=url, timeout=10) as h:
        while True:
            r = h.post(f"/indexes/{UID}/documents/fetch", json={"offset": len(docs), "limit": PAGE})
            assert r.status_code == 200 and "X-Miroir-Degraded" not in r.headers, (r.status_code, r.headers, r.text)
            page = r.json()
            docs.update((d["id"], d) for d in page["results"])
            if len(page["results"]) < PAGE:
                break
    assert page["total"] == len(docs)
    s = httpx.post(f"{url}/indexes/{UID}/search", json={"q": "", "limit": 0}, timeout=10)
    assert s.status_code == 200 and "X-Miroir-Degraded" not in s.headers, (s.headers, s.text)
    assert s.json()["estimatedTotalHits"] == min(len(docs), 1000)  # maxTotalHits
    st = httpx.get(f"{url}/indexes/{UID}/stats", timeout=10)
    assert st.status_code == 200, st.text
    assert st.json()["numberOfDocuments"] == len(docs)
    return docs


def events(dev: Dev, name: str) -> list[dict]:
    """The JSON log lines (stderr) of `dev` with event `name`."""
    return [e for e in (json.loads(line) for line in dev.err if line.startswith("{")) if e.get("event") == name]


def start(data_dir: str) -> tuple[Dev, dict[str, str]]:
    dev = Dev(*ARGS, "--data-dir", data_dir)
    try:
        return dev, dev.wait_banner()
    except BaseException:
        dev.stop()
        raise


def kill_9(dev: Dev) -> None:
    dev.proc.kill()
    dev.proc.wait(timeout=10)


def test_restart_after_ctrl_c_and_kill_9_keeps_ports_documents_and_tasks(tmp_path):
    data = str(tmp_path)
    expected: dict[int, dict] = {}

    def write_burst(url: str, base: int) -> list[int]:
        """Adds, an update and a delete, acknowledged and not waited for."""
        uids = []
        for b in range(4):
            docs = [{"id": base + b * 50 + i, "title": f"film {base + b * 50 + i}", "v": 1} for i in range(50)]
            uids.append(add(url, docs))
            expected.update({d["id"]: d for d in docs})
        upd = [{"id": base + i, "title": f"film {base + i}", "v": 2} for i in range(10)]
        uids.append(add(url, upd))
        expected.update({d["id"]: d for d in upd})
        gone = list(range(base + 190, base + 200))
        uids.append(delete(url, gone))
        for i in gone:
            expected.pop(i)
        # Big enough that the nodes are still indexing it when the signal comes.
        big = [{"id": base + 200 + i, "title": f"film {base + 200 + i} " + "word " * 20, "v": 1} for i in range(BIG)]
        uids.append(add(url, big))
        expected.update({d["id"]: d for d in big})
        return uids

    dev, first = start(data)
    try:
        url = first["miroir"]
        r = httpx.post(f"{url}/indexes", json={"uid": UID, "primaryKey": "id"}, timeout=10)
        assert r.status_code == 202, r.text
        acked = [r.json()["taskUid"], *write_burst(url, 0)]
        dev.proc.send_signal(signal.SIGINT)  # Ctrl-C, right after the last 202
        assert dev.proc.wait(timeout=30) == 0, "\n".join(dev.err[-30:])
    finally:
        dev.stop()

    dev, second = start(data)
    try:
        assert nodes_of(second) == nodes_of(first), "the nodes must come back on their recorded ports"
        assert len(events(dev, "dev.node_ports_kept")) == 1 and not events(dev, "dev.node_url_changed")
        url = second["miroir"]
        wait_succeeded(url, acked)
        assert served(url) == expected
        acked = write_burst(url, 10_000)
        kill_9(dev)  # right after the last 202: some tasks are still open on the nodes
    finally:
        dev.stop()

    dev, third = start(data)
    try:
        assert nodes_of(third) == nodes_of(first)
        url = third["miroir"]
        wait_succeeded(url, acked)
        assert served(url) == expected
        topo = httpx.get(f"{url}/_miroir/topology", timeout=5).json()
        assert {n["id"]: n["url"] for n in topo["nodes"]} == nodes_of(first)
    finally:
        assert dev.stop() == 0, "\n".join(dev.err[-30:])


def test_restart_when_a_recorded_port_is_taken_updates_the_journal(tmp_path):
    data = str(tmp_path)
    dev, first = start(data)
    try:
        url = first["miroir"]
        r = httpx.post(f"{url}/indexes", json={"uid": UID, "primaryKey": "id"}, timeout=10)
        assert r.status_code == 202, r.text
        docs = [{"id": i, "title": f"film {i}"} for i in range(300)]
        acked = [r.json()["taskUid"], add(url, docs[:150]), add(url, docs[150:])]
        kill_9(dev)
    finally:
        dev.stop()

    # Something else now listens on n2's port (and a stale process would too).
    taken = int(nodes_of(first)["n2"].rsplit(":", 1)[1])
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        dev, second = start(data)
        try:
            moved = nodes_of(second)
            assert moved["n1"] == nodes_of(first)["n1"] and moved["n3"] == nodes_of(first)["n3"]
            assert moved["n2"] != nodes_of(first)["n2"]
            url = second["miroir"]
            wait_succeeded(url, acked)
            assert served(url) == {d["id"]: d for d in docs}
            topo = httpx.get(f"{url}/_miroir/topology", timeout=5).json()
            assert {n["id"]: n["url"] for n in topo["nodes"]} == moved
            said = events(dev, "dev.node_url_changed")
            assert [(e["node"], e["old_url"], e["new_url"]) for e in said] == [("n2", nodes_of(first)["n2"], moved["n2"])]
            assert [(e["node"], e["port"]) for e in events(dev, "dev.node_port_taken")] == [("n2", taken)]
        finally:
            assert dev.stop() == 0, "\n".join(dev.err[-30:])
    finally:
        squatter.close()

    # A crash after a new port was recorded but before the journal named it (n3 here):
    # the next start keeps the recorded ports and still brings the journal up to date.
    ports_file = tmp_path / "nodes" / "ports.json"
    recorded = json.loads(ports_file.read_text())
    assert recorded == {"ports": {n: int(u.rsplit(":", 1)[1]) for n, u in moved.items()}, "journal_synced": True}
    recorded["ports"]["n3"] = free_port()
    recorded["journal_synced"] = False
    ports_file.write_text(json.dumps(recorded))
    dev, third = start(data)
    try:
        assert nodes_of(third) == {**moved, "n3": f"http://127.0.0.1:{recorded['ports']['n3']}"}
        assert served(third["miroir"]) == {d["id"]: d for d in docs}
        # A second `miroir dev` on the same data dir stops before touching the nodes.
        other = Dev(*ARGS, "--data-dir", data)
        assert other.proc.wait(timeout=30) == 1
        assert any("in use by another miroir process" in line for line in other.err), other.err
    finally:
        assert dev.stop() == 0, "\n".join(dev.err[-30:])
    assert json.loads(ports_file.read_text())["journal_synced"] is True
