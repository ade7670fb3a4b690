"""The devnode's own speed targets (issue 3), measured over real HTTP.

1. The whole Debian corpus (63,666 documents) indexed by one devnode process: seconds from
   the POST of the first batch until the last task has succeeded (target: under 60 s).
2. A two-word query with a filter and two facets on it: p50/p90 latency over a fixed set
   of queries, each run once cold and then measured warm (target: p50 under 30 ms).

    python benchmarks/devnode_speed.py [--docs N] [--queries N] [--output PATH]

Writes JSON (default benchmarks/results/devnode_speed.json) and prints a small table.
One devnode subprocess on 127.0.0.1, stopped before the script exits.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT / ".." / "shared" / "datasets" / "debian-packages.ndjson.gz").resolve()
BATCH = 10_000  # documents per POST
WORDS = ["python", "library", "data", "server", "tool", "font", "game", "perl", "java", "network",
         "client", "image", "audio", "kernel", "module", "documentation", "development", "files"]
FILTERS = ['section = "libs"', 'priority = "optional"', 'architecture = "all"', "installed_size_kb > 100",
           'section IN ["utils", "devel", "python"]']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(client: httpx.Client, uid: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get(f"/tasks/{uid}").json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            return task
        time.sleep(0.05)
    raise TimeoutError(f"task {uid} not finished after {timeout} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=63_666)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "devnode_speed.json"))
    args = ap.parse_args()

    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(args.docs), f)]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "miroir.devnode.server", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for _ in range(200):
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            t = client.post("/indexes", json={"uid": "pkgs", "primaryKey": "id"}).json()
            wait(client, t["taskUid"])
            t = client.patch("/indexes/pkgs/settings", json={
                "filterableAttributes": ["section", "priority", "architecture", "installed_size_kb", "tags"],
            }).json()
            wait(client, t["taskUid"])
            started = time.perf_counter()
            uids = [client.post("/indexes/pkgs/documents", json=docs[i:i + BATCH]).json()["taskUid"]
                    for i in range(0, len(docs), BATCH)]
            statuses = [wait(client, u)["status"] for u in uids]
            indexing_s = time.perf_counter() - started
            assert set(statuses) == {"succeeded"}, statuses

            rng = random.Random(7)
            queries = [{"q": " ".join(rng.sample(WORDS, 2)), "filter": rng.choice(FILTERS),
                        "facets": ["section", "priority"]} for _ in range(args.queries)]
            for body in queries:  # cold pass: first-seen words, caches built after the writes
                client.post("/indexes/pkgs/search", json=body)
            latencies = []
            for body in queries:
                t0 = time.perf_counter()
                r = client.post("/indexes/pkgs/search", json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
    finally:
        proc.kill()
        proc.wait()
    latencies.sort()
    out = {
        "documents": len(docs),
        "indexing_seconds": round(indexing_s, 2),
        "query_p50_ms": round(statistics.median(latencies), 2),
        "query_p90_ms": round(latencies[int(len(latencies) * 0.9) - 1], 2),
        "queries": len(latencies),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"indexed {out['documents']} documents in {out['indexing_seconds']} s (target < 60 s)")
    print(f"two words + filter + 2 facets: p50 {out['query_p50_ms']} ms, p90 {out['query_p90_ms']} ms "
          f"over {out['queries']} queries (target p50 < 30 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
