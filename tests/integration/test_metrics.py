"""Issue 19 item 1: `GET /metrics` (Prometheus) moves as the cluster does.

One run: writes and searches, a node killed and restarted, a rebalance; each metric is
scraped before and after and compared. Also: the key rules of Meilisearch's `/metrics`
(master key, or a key with `metrics.get`), and the Grafana dashboard in packaging/ names
only metrics that exist.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from miroir.engine.metrics import METRICS
from tests.support.chaos_helpers import durable_cluster, wait_until
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.paths import REPO

MASTER = "metrics-master-key"
H = {"Authorization": f"Bearer {MASTER}"}
DASHBOARD = REPO / "packaging" / "grafana-miroir.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


class Scrape:
    def __init__(self, text: str):
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.names: set[str] = set()
        for fam in text_string_to_metric_families(text):
            self.names.add(fam.name)
            for s in fam.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def sum(self, name: str, **labels: str) -> float:
        """Sum over every sample of `name` carrying these labels (and any others)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


def scrape(url: str, key: str = MASTER) -> Scrape:
    r = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


def test_metrics_move_with_writes_searches_a_dead_node_and_a_rebalance(tmp_path):
    extra = {
        "auth": {"master_key": MASTER},
        # a search part not answered within 150 ms is hedged (n2 stopped below)
        "scatter": {"hedge_after_ms": 150, "node_timeout_ms": 2000},
        "rebalancer": {"docs_per_second": 400, "page_size": 50},
    }
    with start_devnodes(1, data_dirs=[str(tmp_path / "spare")]) as spare, durable_cluster(
        2, rf=2, shards=8, tmp=tmp_path, extra=extra
    ) as c:
        h = httpx.Client(base_url=c.url, headers=H, timeout=30)
        n2 = c.node("n2")

        # the key rules: no key 401, a search key 403, a metrics.get key 200
        assert httpx.get(c.url + "/metrics").status_code == 401
        keys = h.get("/keys").json()["results"]
        search_key = next(k["key"] for k in keys if k["actions"] == ["search"])
        assert httpx.get(c.url + "/metrics", headers={"Authorization": f"Bearer {search_key}"}).status_code == 403
        r = h.post("/keys", json={"actions": ["metrics.get"], "indexes": ["*"], "expiresAt": None})
        assert r.status_code == 201, r.text
        s0 = scrape(c.url, r.json()["key"])
        assert s0.names >= set(METRICS), set(METRICS) - s0.names  # every declared metric is exposed

        # --- writes and searches ------------------------------------------------------
        r = h.post("/indexes/m/documents", json=[{"id": i, "t": f"word {i}"} for i in range(300)])
        assert wait_task(c.url, r.json()["taskUid"], key=MASTER)["status"] == "succeeded"
        for _ in range(5):
            assert h.post("/indexes/m/search", json={"q": "word"}).status_code == 200
        assert h.get("/indexes/m/search", params={"q": "word"}).status_code == 200
        s1 = scrape(c.url)
        req = "miroir_http_request_duration_seconds_count"
        search_route = "/indexes/<uid>/search"
        assert s1.get(req, method="POST", route=search_route, status="200") - s0.get(
            req, method="POST", route=search_route, status="200") == 5
        assert s1.get(req, method="GET", route=search_route, status="200") >= 1
        assert s1.get(req, method="POST", route="/indexes/<uid>/documents", status="202") >= 1
        assert s1.get(req, method="GET", route="/metrics", status="401") >= 1
        assert s1.get(req, method="GET", route="/metrics", status="403") >= 1
        assert s1.get("miroir_http_request_duration_seconds_bucket", method="POST", route=search_route,
                      status="200", le="+Inf") == s1.get(req, method="POST", route=search_route, status="200")
        assert s1.get("miroir_fanout_nodes_count") - s0.get("miroir_fanout_nodes_count") >= 6
        assert s1.get("miroir_fanout_nodes_sum") - s0.get("miroir_fanout_nodes_sum") >= 6
        for node in ("n1", "n2"):
            assert s1.get("miroir_node_request_duration_seconds_count", node=node) > s0.get(
                "miroir_node_request_duration_seconds_count", node=node)
            assert s1.get("miroir_node_index_documents", node=node, index="m") == 300  # RF 2 on 2 nodes
            assert s1.get("miroir_node_up", node=node) == 1
            assert s1.get("miroir_node_probe_rtt_seconds", node=node) > 0
        assert s1.get("miroir_journal_commit_duration_seconds_count") > s0.get("miroir_journal_commit_duration_seconds_count")
        assert s1.get("miroir_journal_append_duration_seconds_count") > s0.get("miroir_journal_append_duration_seconds_count")
        assert s1.get("miroir_journal_records_total") > s0.get("miroir_journal_records_total")
        assert s1.get("miroir_tasks_kept") > s0.get("miroir_tasks_kept")
        assert s1.get("miroir_indexes") == 1 and s1.get("miroir_index_shards", index="m") == 8
        assert s1.sum("miroir_tasks_open") == 0

        # open tasks: seen while a big write is indexed, back to 0 after
        seen_open = 0.0
        for attempt in range(5):
            r = h.post("/indexes/m/documents", json=[{"id": 10_000 + attempt * 3000 + i, "t": "bulk"} for i in range(3000)])
            seen_open = max(seen_open, scrape(c.url).sum("miroir_tasks_open"))
            wait_task(c.url, r.json()["taskUid"], key=MASTER, timeout=60)
            if seen_open:
                break
        assert seen_open >= 1
        wait_until(lambda: scrape(c.url).sum("miroir_tasks_open") == 0, what="no open task")

        # --- a node hung (SIGSTOP): searches on it are hedged to n1 -------------------------
        hedges_before = scrape(c.url).get("miroir_hedges_total")
        os.kill(n2.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(2):  # round robin: one of the two starts on n2
                assert h.post("/indexes/m/search", json={"q": "word"}).status_code == 200
        finally:
            os.kill(n2.proc.pid, signal.SIGCONT)
        assert scrape(c.url).get("miroir_hedges_total") > hedges_before
        wait_until(lambda: scrape(c.url).get("miroir_node_readable", node="n2") == 1, what="n2 back")

        # --- a node killed: down, retries, a backlog that rises ... ------------------------
        # Searches racing the failure detection (probes every 150 ms): parts on n2 are
        # retried when a search reaches n2 before it is known down. A loaded machine can
        # lose that race; then n2 is brought back and the race run again (bounded).
        for _ in range(5):
            retries_before = scrape(c.url).get("miroir_retries_total")
            n2.kill()
            for _ in range(4):
                assert h.post("/indexes/m/search", json={"q": "word"}).status_code == 200
            if scrape(c.url).get("miroir_retries_total") > retries_before:
                break
            n2.restart()
            wait_until(lambda: scrape(c.url).get("miroir_node_readable", node="n2") == 1, what="n2 back")
        wait_until(lambda: scrape(c.url).get("miroir_node_up", node="n2") == 0, what="n2 down")
        s2 = scrape(c.url)
        assert s2.get("miroir_node_health_state", node="n2", state="down") == 1
        assert s2.get("miroir_node_health_state", node="n2", state="up") == 0
        assert s2.get("miroir_node_readable", node="n2") == 0
        assert s2.get("miroir_node_consecutive_failures", node="n2") >= 1
        assert s2.get("miroir_retries_total") > retries_before
        r = h.post("/indexes/m/documents", json=[{"id": i, "t": f"second {i}"} for i in range(40)])
        assert wait_task(c.url, r.json()["taskUid"], key=MASTER)["status"] == "succeeded"
        s3 = scrape(c.url)
        assert s3.get("miroir_handoff_backlog_records", node="n2") >= 1
        assert s3.get("miroir_handoff_backlog_bytes", node="n2") > 0
        assert s3.get("miroir_handoff_repair_state", node="n2", state="backlog") == 1
        assert s3.get("miroir_handoff_backlog_records", node="n1") == 0

        # --- ... and falls back to 0 once it is back -----------------------------------
        n2.start()
        n2.wait_ready()
        wait_until(lambda: scrape(c.url).get("miroir_node_readable", node="n2") == 1, what="n2 repaired")
        s4 = scrape(c.url)
        assert s4.get("miroir_handoff_backlog_records", node="n2") == 0
        assert s4.get("miroir_handoff_backlog_bytes", node="n2") == 0
        assert s4.get("miroir_handoff_repair_state", node="n2", state="ok") == 1
        assert s4.get("miroir_handoff_replayed_records_total", node="n2") >= 1
        assert s4.get("miroir_node_health_state", node="n2", state="up") == 1

        # --- a rebalance: running with pending units, documents copied, then done ----------
        assert h.post("/_miroir/rebalance/pause").status_code == 202
        r = h.post("/_miroir/nodes", json={"id": "n3", "url": spare[0].url, "group": "g0"})
        assert r.status_code == 202, r.text
        s5 = scrape(c.url)
        assert s5.get("miroir_rebalance_running") == 1 and s5.get("miroir_rebalance_paused") == 1
        assert s5.get("miroir_rebalance_units", status="pending") >= 1
        assert s5.get("miroir_rebalance_documents_copied") == 0
        assert s5.get("miroir_node_info", node="n3", url=spare[0].url, group="g0", state="joining") == 1
        # Resumed a moment at a time (paused in between) until documents are copied, and
        # read while it runs: a watch of the running copy (a fraction of a second) may
        # see none on a loaded machine.
        deadline = time.monotonic() + 60
        while (s := scrape(c.url)).get("miroir_rebalance_documents_copied") == 0:
            assert s.get("miroir_rebalance_running") == 1, "the rebalance ended before it was seen copying"
            assert time.monotonic() < deadline, "no document copied"
            assert h.post("/_miroir/rebalance/resume").status_code == 202
            assert h.post("/_miroir/rebalance/pause").status_code == 202
        assert s.get("miroir_rebalance_running") == 1 and s.get("miroir_rebalance_documents_copied") > 0
        assert h.post("/_miroir/rebalance/resume").status_code == 202
        while scrape(c.url).get("miroir_rebalance_running") == 1:
            assert time.monotonic() < deadline, "rebalance did not finish"
            time.sleep(0.05)
        s6 = scrape(c.url)
        assert s6.get("miroir_rebalance_paused") == 0
        assert s6.sum("miroir_rebalance_units") == 0
        assert s6.get("miroir_node_info", node="n3", url=spare[0].url, group="g0", state="active") == 1
        assert s6.get("miroir_node_index_documents", node="n3", index="m") > 0
        per_node = [s6.get("miroir_node_index_documents", node=n, index="m") for n in ("n1", "n2", "n3")]
        total = h.post("/indexes/m/documents/fetch", json={"limit": 0}).json()["total"]
        assert sum(per_node) == 2 * total  # RF 2: every document on exactly two nodes


def _expr_metrics(dashboard: dict) -> set[str]:
    exprs: list[str] = []

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("expr"), str):
                exprs.append(obj["expr"])
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(dashboard)
    assert exprs, "no query in the dashboard"
    return {m for e in exprs for m in re.findall(r"\bmiroir_[a-z0-9_]+", e)}


def test_grafana_dashboard_names_existing_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    exposed = {name + suffix for name, (kind, _) in METRICS.items() for suffix in SUFFIXES[kind]}
    used = _expr_metrics(dashboard)
    assert used - exposed == set()
    # every family is on some panel
    assert {n for n in METRICS if not any(u.startswith(n) for u in used)} == set()
