"""What more shards cost (issue 17 item 2): the same index at S = 16, 64 and 256 shards,
RF 2, 4 devnodes behind one Miroir, loaded with the Debian corpus.

Per S: ingest time (batches of 1,000, each waited for), search latency through Miroir
(p50 / p90 of sequential searches with a facet distribution; each node gets one
sub-request with `_miroir_shard IN [its shards]`), the size of that filter, the document
listing latency (paged per shard), and placement 2's balance (busiest / mean documents).
Figures are comparable within one run on one machine only. Run:

    PYTHONPATH=src python benchmarks/shards.py [--docs 10000] [--searches 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import NA, Proc, free_port, load_corpus, start_devnode, wait_http_ready

QUERIES = ["python", "library", "gnome", "data", "kernel", "font", "perl", "server", "tool", "game"]
NODES = 4
RF = 2


def start(stack: ExitStack, tmp: Path, shards: int) -> tuple[int, list[int]]:
    devs = [start_devnode(stack, tmp, f"dev{shards}-{i}") for i in range(NODES)]
    port = free_port()
    cfg = tmp / f"miroir-{shards}.toml"
    lines = ["[server]", f'bind = "127.0.0.1:{port}"', "[cluster]", f"shards = {shards}",
             f"replication_factor = {RF}", "[store]", f'data_dir = "{tmp / f"data-{shards}"}"',
             "[log]", 'level = "warning"']
    for i, d in enumerate(devs):
        lines += ["[[nodes]]", f'id = "n{i}"', f'url = "http://127.0.0.1:{d.port}"']
    cfg.write_text("\n".join(lines) + "\n")
    proc = Proc(f"miroir-{shards}", [sys.executable, "-m", "miroir", "serve", "--config", str(cfg)], tmp,
                ready_line=False)
    stack.callback(proc.stop)
    proc.port = port
    wait_http_ready(port, proc)
    return port, [d.port for d in devs]


def wait_task(h: httpx.Client, uid: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        t = h.get(f"/tasks/{uid}").json()
        if t["status"] in ("succeeded", "failed", "canceled"):
            assert t["status"] == "succeeded", t
            return
        time.sleep(0.02)
    raise NA(f"task {uid} not done")


def measure(shards: int, docs: list[dict], searches: int) -> dict:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        port, _ = start(stack, tmp, shards)
        h = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, trust_env=False))
        wait_task(h, h.post("/indexes", json={"uid": "x", "primaryKey": "id"}).json()["taskUid"])
        wait_task(h, h.patch("/indexes/x/settings", json={"filterableAttributes": ["section"]}).json()["taskUid"])
        t0 = time.perf_counter()
        for k in range(0, len(docs), 1000):
            wait_task(h, h.post("/indexes/x/documents", json=docs[k : k + 1000]).json()["taskUid"])
        ingest = time.perf_counter() - t0
        lat = []
        for i in range(searches):
            body = {"q": QUERIES[i % len(QUERIES)], "facets": ["section"], "limit": 20}
            t = time.perf_counter()
            r = h.post("/indexes/x/search", json=body)
            lat.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
        t = time.perf_counter()
        listed = 0
        offset = 0
        while True:
            page = h.get("/indexes/x/documents", params={"limit": 1000, "offset": offset}).json()["results"]
            listed += len(page)
            offset += len(page)
            if len(page) < 1000:
                break
        listing = time.perf_counter() - t
        topo = h.get("/_miroir/topology").json()
        owners = topo["indexes"]["x"]["owners"]["g0"]
        per_node = Counter(n for o in owners for n in o)
        filt = max(len("_miroir_shard IN [" + ", ".join(map(str, range(c))) + "]") for c in per_node.values())
        counts = [n["documents"] for n in topo["capacity"]["nodes"]]
        mean = sum(counts) / len(counts)
        lat.sort()
        return {
            "shards": shards,
            "ingest_s": round(ingest, 2),
            "ingest_docs_per_s": round(len(docs) / ingest),
            "search_p50_ms": round(statistics.median(lat), 1),
            "search_p90_ms": round(lat[int(0.9 * (len(lat) - 1))], 1),
            "listing_s": round(listing, 2),
            "listed": listed,
            "max_shards_per_node": max(per_node.values()),
            "filter_bytes": filt,
            "busiest_over_mean_docs": round(max(counts) / mean, 3),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--searches", type=int, default=60)
    ap.add_argument("--shards", default="16,64,256")
    args = ap.parse_args()
    docs = load_corpus(args.docs)
    rows = [measure(int(s), docs, args.searches) for s in args.shards.split(",")]
    print(json.dumps(rows, indent=1))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
