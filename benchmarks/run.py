"""Miroir benchmark harness (issue 8): one run, one machine, ratios in one table.

    python benchmarks/run.py                 # everything (several minutes)
    python benchmarks/run.py --quick         # smoke run: short durations, fewer documents
    python benchmarks/run.py --only A,B,P    # a subset

Figures (see benchmarks/README.md for what each one means):
  A  bare ASGI app on hypercorn.trio, fixed search body             (req/s, latency)
  B  Miroir over 3 canned nodes, POST /indexes/x/search            (req/s, latency)
  L  B's setup at concurrency 1: Miroir p50 minus the slowest node's p50 (added ms)
  C  Miroir ingest of the Debian corpus, 1,000-document batches     (docs/s, MB/s)
  D  core.merge.merge_search, 3 x 1,000 hits with sort and details  (us per merge)
  E  Miroir over 3 devnodes vs 1 devnode, 20,000 docs, 200 oracle queries (p50/p99 ratio)
  M  Miroir RSS: idle, under B, peak during C with a 50 MB batch    (MiB)
  P  Http1Pool vs httpx.AsyncClient against one canned node           (calls/s, CPU/call)

Every server runs as its own process on 127.0.0.1 and every process started here is
stopped before the script exits (bounded durations; `finally` kills what is left).
HTTP load comes from a separate process: `wrk` (installed with apt-get when missing and
possible) or else a multi-process Python generator over h11. Each figure is the median
of several runs after a warm-up, with min and max. A figure that cannot be measured
(e.g. a route not implemented yet) is reported as "n/a" with the reason; the other
figures still run. Results: a table on stdout and benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import multiprocessing
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = (ROOT / ".." / "shared" / "datasets" / "debian-packages.ndjson.gz").resolve()
if not CORPUS.exists():
    CORPUS = Path("/work/shared/datasets/debian-packages.ndjson.gz")
RESULTS = HERE / "results" / "latest.json"

# Fixed load shape: enough connections to keep a single-process server busy, few enough
# that 2-core machines are not just measuring the scheduler.
CONCURRENCY = 16
SEARCH_BODY = b'{"q":"library","facets":["section","architecture"]}'
# Every process we start gets this as a hard upper bound on its lifetime.
PROCESS_MAX_S = 900.0
STARTUP_TIMEOUT_S = 30.0
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,511}$")


# ----------------------------------------------------------------------------- utilities


class NA(Exception):
    """A figure that cannot be measured here; the message is the reason shown."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


class Proc:
    """A child process we own: started in `start`, stopped (TERM, then KILL) in `stop`."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, *, ready_line: bool = True):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._log_f = open(self.log, "wb")  # noqa: SIM115 - closed by stop()
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if ready_line else self._log_f,
            stderr=self._log_f,
            cwd=str(ROOT),
            start_new_session=True,
        )
        self.port: int | None = None
        if ready_line:
            self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        assert self.p.stdout is not None
        result: list[str] = []

        def reader() -> None:
            line = self.p.stdout.readline().decode(errors="replace")
            result.append(line)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(STARTUP_TIMEOUT_S)
        if not result or not result[0].startswith("READY "):
            self.stop()
            raise NA(f"{self.name} did not start: {self.tail()}")
        return int(result[0].split()[1])

    @property
    def pid(self) -> int:
        return self.p.pid

    def tail(self, n: int = 600) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:].strip().replace("\n", " | ") or f"exit {self.p.poll()}"
        except OSError:
            return "no log"

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        if self.p.stdout:
            self.p.stdout.close()
        self._log_f.close()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise NA(f"no {field} for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by a process (robust on a shared machine)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Peak RSS of a process while the `with` block runs (sampled every 20 ms)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> RssSampler:
        self.peak = rss_mib(self.pid)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, NA):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(2)


# ----------------------------------------------------------------------------- HTTP helpers


class Http:
    """Blocking keep-alive client for setup calls (not for load)."""

    def __init__(self, port: int, timeout_s: float = 60.0):
        import httpx

        self.c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout_s, trust_env=False)

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self.c.close()

    def call(self, method: str, path: str, *, body: bytes | None = None, ctype: str = "application/json", ok=(200, 201, 202)):
        r = self.c.request(method, path, content=body, headers={"Content-Type": ctype} if body is not None else {})
        if r.status_code not in ok:
            raise NA(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def wait_task(self, uid: int, timeout_s: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            t = self.call("GET", f"/tasks/{uid}")
            if t["status"] in ("succeeded", "failed", "canceled"):
                if t["status"] != "succeeded":
                    raise NA(f"task {uid} {t['status']}: {json.dumps(t.get('error'))[:300]}")
                return t
            time.sleep(0.05)
        raise NA(f"task {uid} not finished after {timeout_s:g} s")


def wait_http_ready(port: int, proc: Proc) -> None:
    """Until Miroir answers `/_miroir/ready` (or `/health` if that route is missing)."""
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise NA(f"{proc.name} exited: {proc.tail()}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/_miroir/ready", timeout=2, trust_env=False)
            if r.status_code == 200:
                return
            if r.status_code == 404:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False)
                if r.status_code == 200:
                    return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as e:
            last = repr(e)
        time.sleep(0.1)
    raise NA(f"{proc.name} not ready after {STARTUP_TIMEOUT_S:g} s: {last} {proc.tail()}")


def start_miroir(stack: ExitStack, tmp: Path, node_ports: list[int], *, log_level: str, shards: int = 16) -> Proc:
    port = free_port()
    cfg = tmp / f"miroir-{port}.toml"
    lines = [
        "[server]",
        f'bind = "127.0.0.1:{port}"',
        "[cluster]",
        f"shards = {shards}",
        "[store]",
        f'data_dir = "{tmp / f"data-{port}"}"',
        "[log]",
        f'level = "{log_level}"',
    ]
    for i, p in enumerate(node_ports):
        lines += ["[[nodes]]", f'id = "n{i}"', f'url = "http://127.0.0.1:{p}"']
    cfg.write_text("\n".join(lines) + "\n")
    exe = shutil.which("miroir")
    if exe:
        argv = [exe, "serve", "--config", str(cfg)]
    else:
        argv = [sys.executable, "-m", "miroir", "serve", "--config", str(cfg)]
    proc = Proc(f"miroir-{port}", argv, tmp, ready_line=False)
    stack.callback(proc.stop)
    proc.port = port
    wait_http_ready(port, proc)
    return proc


def start_canned(stack: ExitStack, tmp: Path, n: int) -> list[Proc]:
    procs = []
    for i in range(n):
        p = Proc(f"canned-{i}", [sys.executable, str(HERE / "canned_node.py"), "--seed", str(i),
                                 "--max-seconds", str(PROCESS_MAX_S)], tmp)
        stack.callback(p.stop)
        procs.append(p)
    return procs


# ----------------------------------------------------------------------------- load


def have_wrk(allow_install: bool) -> bool:
    if shutil.which("wrk"):
        return True
    if not allow_install or not shutil.which("apt-get"):
        return False
    print("wrk missing: apt-get install -y wrk ...", file=sys.stderr)
    try:
        subprocess.run(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return shutil.which("wrk") is not None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk_run(port: int, path: str, body: bytes, duration_s: float, tmp: Path) -> dict:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    argv = ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{max(1, round(duration_s))}s", "--latency", "-s", str(script),
            f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise NA(f"wrk output not understood: {out[-300:]}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(lat["50"]) if "50" in lat else None,
        "p99_ms": _ms(lat["99"]) if "99" in lat else None,
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock_err.group(1) if sock_err else None,
    }


def _py_load_worker(port: int, path: str, body: bytes, duration_s: float, conns: int, q) -> None:
    """One load process: `conns` keep-alive connections, each looping requests."""
    import trio

    sys.path.insert(0, str(ROOT / "src"))
    from miroir.net.http1 import Http1Pool

    lat: list[float] = []
    bad = 0

    async def main() -> None:
        nonlocal bad
        async with Http1Pool("127.0.0.1", port, max_connections=conns) as pool:
            deadline = trio.current_time() + duration_s

            async def loop() -> None:
                nonlocal bad
                while trio.current_time() < deadline:
                    t0 = time.perf_counter()
                    status, _, _ = await pool.request("POST", path, [(b"content-type", b"application/json")], body, 30)
                    lat.append((time.perf_counter() - t0) * 1000)
                    bad += status >= 300

            async with trio.open_nursery() as n:
                for _ in range(conns):
                    n.start_soon(loop)

    t0 = time.perf_counter()
    try:
        trio.run(main)
    except BaseException as e:  # report, never leave the parent waiting
        q.put(([], 0, 0.0, f"{type(e).__name__}: {e}"))
        return
    q.put((lat, bad, time.perf_counter() - t0, None))


def py_load_run(port: int, path: str, body: bytes, duration_s: float) -> dict:
    procs_n = 2
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_py_load_worker, args=(port, path, body, duration_s, CONCURRENCY // procs_n, q))
             for _ in range(procs_n)]
    for p in procs:
        p.start()
    lat: list[float] = []
    bad = 0
    rps = 0.0
    try:
        for _ in procs:
            part, b, elapsed, err = q.get(timeout=duration_s + 60)
            if err:
                raise NA(f"python load generator failed: {err}")
            lat += part
            bad += b
            rps += len(part) / elapsed
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    lat.sort()
    if not lat:
        raise NA("python load generator got no answers")
    return {
        "rps": rps,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "requests": len(lat),
        "non_2xx": bad,
        "socket_errors": None,
    }


def http_load(args, port: int, path: str, body: bytes, tmp: Path, pid: int | None = None) -> dict:
    """Warm-up (discarded), then `args.runs` runs; median/min/max of req/s and latency.

    With `pid` (the server's), also the server's CPU time per request: on a shared machine
    that moves much less with other load than req/s does.
    """
    def one(d: float) -> dict:
        c0 = cpu_s(pid) if pid else 0.0
        r = wrk_run(port, path, body, d, tmp) if args.wrk else py_load_run(port, path, body, d)
        if pid and r.get("requests"):
            r["server_cpu_ms_per_req"] = (cpu_s(pid) - c0) / r["requests"] * 1000
        return r

    one(args.warmup_s)
    runs = [one(args.duration_s) for _ in range(args.runs)]
    bad = sum(r["non_2xx"] for r in runs)
    if bad:
        raise NA(f"{bad} non-2xx answers under load")
    out = {
        "tool": "wrk" if args.wrk else "python-h11",
        "concurrency": CONCURRENCY,
        "duration_s": args.duration_s,
        "rps": summarize([r["rps"] for r in runs]),
        "p50_ms": summarize([r["p50_ms"] for r in runs if r["p50_ms"] is not None] or [float("nan")]),
        "p99_ms": summarize([r["p99_ms"] for r in runs if r["p99_ms"] is not None] or [float("nan")]),
    }
    cpu = [r["server_cpu_ms_per_req"] for r in runs if "server_cpu_ms_per_req" in r]
    if cpu:
        out["server_cpu_ms_per_req"] = summarize(cpu)
    errs = [r["socket_errors"] for r in runs if r["socket_errors"]]
    if errs:
        out["socket_errors"] = errs
    return out


# ----------------------------------------------------------------------------- corpus


def load_corpus(limit: int | None = None) -> list[dict]:
    docs = []
    with gzip.open(CORPUS, "rb") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            doc = msgspec.json.decode(line)
            pk = doc.get("id")
            if not (isinstance(pk, int) or (isinstance(pk, str) and _ID_RE.match(pk))):
                doc["id"] = f"pkg-{i}"  # derived valid id
            docs.append(doc)
    return docs


# ----------------------------------------------------------------------------- figures


def fig_a(args, tmp: Path) -> dict:
    with ExitStack() as stack:
        p = Proc("bare-asgi", [sys.executable, str(HERE / "bare_asgi.py"), "--max-seconds", str(PROCESS_MAX_S)], tmp)
        stack.callback(p.stop)
        return http_load(args, p.port, "/indexes/x/search", SEARCH_BODY, tmp, pid=p.pid)


def create_index(port: int, uid: str = "x") -> None:
    with Http(port) as h:
        task = h.call("POST", "/indexes", body=json.dumps({"uid": uid, "primaryKey": "id"}).encode())
        h.wait_task(task["taskUid"])


def _sequential_p50_ms(port: int, path: str, body: bytes, duration_s: float) -> float:
    """p50 latency of one keep-alive connection sending `body` back to back (concurrency 1)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat: list[float] = []
    try:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline or len(lat) < 20:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status != 200:
                raise NA(f"POST {path} -> {r.status}")
    finally:
        conn.close()
    return statistics.median(lat[len(lat) // 10:])  # the first tenth is warm-up


def fig_l(args, tmp: Path) -> dict:
    """Added latency at concurrency 1: Miroir's p50 minus the slowest sub-query's p50.

    The sub-query is what Miroir sends each node (canned nodes answer every search with
    the same body), measured with the same client directly against each node.
    """
    with ExitStack() as stack:
        nodes = start_canned(stack, tmp, 3)
        miroir = start_miroir(stack, tmp, [n.port for n in nodes], log_level=args.miroir_log_level)
        create_index(miroir.port)
        d = max(1.0, args.duration_s / 2)
        added, miroir_p50, node_p50 = [], [], []
        for _ in range(args.runs):
            slowest = max(_sequential_p50_ms(n.port, "/indexes/x/search", SEARCH_BODY, d / 3) for n in nodes)
            m = _sequential_p50_ms(miroir.port, "/indexes/x/search", SEARCH_BODY, d)
            added.append(m - slowest)
            miroir_p50.append(m)
            node_p50.append(slowest)
        return {"added_ms": summarize(added), "miroir_p50_ms": summarize(miroir_p50),
                "slowest_node_p50_ms": summarize(node_p50)}


def fig_b(args, tmp: Path, mem: dict) -> dict:
    with ExitStack() as stack:
        nodes = start_canned(stack, tmp, 3)
        miroir = start_miroir(stack, tmp, [n.port for n in nodes], log_level=args.miroir_log_level)
        time.sleep(0.5)
        mem["idle_mib"] = round(rss_mib(miroir.pid), 1)
        create_index(miroir.port)
        with Http(miroir.port) as h:
            probe = h.call("POST", "/indexes/x/search", body=SEARCH_BODY)
        if len(probe.get("hits", [])) != 20 or "facetDistribution" not in probe:
            raise NA(f"unexpected search answer: {json.dumps(probe)[:300]}")
        with RssSampler(miroir.pid) as s:
            out = http_load(args, miroir.port, "/indexes/x/search", SEARCH_BODY, tmp, pid=miroir.pid)
        mem["under_b_peak_mib"] = round(s.peak, 1)
        out["fan_out"] = 3
        return out


def _ingest(port: int, batches: list[bytes], concurrency: int) -> float:
    """Send every batch (POST /indexes/x/documents), `concurrency` at a time; seconds."""
    import trio

    sys.path.insert(0, str(ROOT / "src"))
    from miroir.net.http1 import Http1Pool

    errors: list[str] = []

    async def main() -> float:
        async with Http1Pool("127.0.0.1", port, max_connections=concurrency) as pool:
            it = iter(batches)
            t0 = time.perf_counter()

            async def worker() -> None:
                for b in it:
                    status, _, body = await pool.request(
                        "POST", "/indexes/x/documents", [(b"content-type", b"application/json")], b, 300
                    )
                    if status != 202:
                        errors.append(f"{status} {body[:300]!r}")
                        return

            async with trio.open_nursery() as n:
                for _ in range(concurrency):
                    n.start_soon(worker)
            return time.perf_counter() - t0

    elapsed = trio.run(main)
    if errors:
        raise NA(f"ingest refused: {errors[0]}")
    return elapsed


def fig_c(args, tmp: Path, mem: dict) -> dict:
    docs = load_corpus(args.ingest_docs)
    batches = [msgspec.json.encode(docs[i:i + 1000]) for i in range(0, len(docs), 1000)]
    total_bytes = sum(map(len, batches))
    with ExitStack() as stack:
        nodes = start_canned(stack, tmp, 3)
        miroir = start_miroir(stack, tmp, [n.port for n in nodes], log_level=args.miroir_log_level)
        if "idle_mib" not in mem:
            time.sleep(0.5)
            mem["idle_mib"] = round(rss_mib(miroir.pid), 1)
        create_index(miroir.port)
        _ingest(miroir.port, batches[:3], 2)  # warm-up
        times, cpus = [], []
        for _ in range(args.runs):
            c0 = cpu_s(miroir.pid)
            times.append(_ingest(miroir.port, batches, 4))
            cpus.append((cpu_s(miroir.pid) - c0) / len(batches) * 1000)
        out = {
            "documents": len(docs),
            "batch_docs": 1000,
            "bytes": total_bytes,
            "concurrency": 4,
            "docs_per_s": summarize([len(docs) / t for t in times]),
            "mb_per_s": summarize([total_bytes / 1e6 / t for t in times]),
            "miroir_cpu_ms_per_batch": summarize(cpus),
        }
        # Peak RSS while Miroir decodes, validates and routes one 50 MB batch.
        big: list[dict] = []
        size = 0
        n = 0
        src = docs or load_corpus(1000)
        while size < args.big_batch_mb * 1e6:
            d = dict(src[n % len(src)])
            d["id"] = 10_000_000 + n
            size += len(msgspec.json.encode(d)) + 1
            big.append(d)
            n += 1
        payload = msgspec.json.encode(big)
        del big
        with RssSampler(miroir.pid) as s:
            t = _ingest(miroir.port, [payload], 1)
        mem["peak_c_big_batch_mib"] = round(s.peak, 1)
        mem["big_batch_mb"] = round(len(payload) / 1e6, 1)
        mem["big_batch_s"] = round(t, 2)
        return out


def fig_d(args) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from miroir.core.merge import merge_search
    from miroir.core.searchplan import SearchRequest

    rules = ["words", "typo", "proximity", "attribute", "sort", "exactness"]
    per_node = 1000
    responses = []
    for node in range(3):
        hits = []
        for i in range(per_node):
            # Sorted by size_bytes ascending per node, as a node would return them.
            size = i * 3 + node
            hits.append({
                "id": node * per_node + i,
                "name": f"pkg-{node}-{i}",
                "size_bytes": size,
                "section": ["libs", "devel", "utils"][i % 3],
                "_miroir_shard": node,
                "_rankingScore": 0.9 - i / 10_000,
                "_rankingScoreDetails": {
                    "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": 1.0},
                    "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
                    "proximity": {"order": 2, "score": 1.0},
                    "attribute": {"order": 3, "score": 1.0},
                    "sort": {"order": 4, "size_bytes:asc": {"order": 0, "value": size}},
                    "exactness": {"order": 5, "matchType": "noExactMatch", "score": 0.5 - (i % 7) / 20},
                },
            })
        responses.append({"hits": hits, "estimatedTotalHits": 5000, "limit": per_node, "offset": 0,
                          "facetDistribution": {"section": {"libs": 400, "devel": 300, "utils": 300}}})
    raw = msgspec.json.encode(responses)
    req = msgspec.json.decode(
        b'{"q":"lib","limit":1000,"sort":["size_bytes:asc"],"facets":["section"],"showRankingScore":true}',
        type=SearchRequest,
    )
    iters = 5 if args.quick else 30
    runs = []
    for _ in range(args.runs):
        spent: list[float] = []
        for _ in range(iters):
            node_responses = msgspec.json.decode(raw)  # merge mutates its input: fresh copy, untimed
            gc.collect()  # ... and so is the collector's work for the 30,000 objects just decoded
            # CPU time of this process, not wall time: on a shared machine the wall clock
            # mostly measures other processes' load (the merge does no I/O).
            t0 = time.process_time()
            out = merge_search(req, ranking_rules=rules, node_responses=node_responses, distinct_attribute=None,
                               max_values_per_facet=100, sort_facet_values_by={"*": "alpha"}, processing_time_ms=1,
                               added_fields=set())
            spent.append(time.process_time() - t0)
        assert len(out["hits"]) == 1000, len(out["hits"])
        sizes = [h["size_bytes"] for h in out["hits"]]
        assert sizes == sorted(sizes)
        runs.append(statistics.median(spent) * 1e6)  # median merge of the run: robust to a stray GC pass
    return {"hits_in": 3 * per_node, "hits_out": 1000, "us_per_merge": summarize(runs)}


def _devnode_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "miroir.devnode.server", "--port", str(port)]


def start_devnode(stack: ExitStack, tmp: Path, name: str) -> Proc:
    import httpx

    port = free_port()
    p = Proc(name, _devnode_argv(port), tmp, ready_line=False)
    stack.callback(p.stop)
    p.port = port
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if p.p.poll() is not None:
            raise NA(f"devnode exited: {p.tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False).status_code == 200:
                return p
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise NA(f"devnode not ready: {p.tail()}")


def _load_docs(port: int, docs: list[dict], settings: dict | None = None, batch: int = 5000) -> None:
    with Http(port, timeout_s=300) as h:
        task = h.call("POST", "/indexes", body=json.dumps({"uid": "x", "primaryKey": "id"}).encode())
        h.wait_task(task["taskUid"])
        if settings is not None:
            task = h.call("PATCH", "/indexes/x/settings", body=json.dumps(settings).encode())
            h.wait_task(task["taskUid"], timeout_s=600)
        uids = []
        for i in range(0, len(docs), batch):
            t = h.call("POST", "/indexes/x/documents", body=msgspec.json.encode(docs[i:i + batch]))
            uids.append(t["taskUid"])
        for u in uids:
            h.wait_task(u, timeout_s=600)


def _wait_readable(port: int, n_docs: int, timeout_s: float = 60.0) -> None:
    """Until every shard answers (nodes busy indexing may have missed health probes and
    be held back from reads for a moment after the load)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        r = httpx.get(f"http://127.0.0.1:{port}/indexes/x/documents", params={"limit": 0}, timeout=30, trust_env=False)
        if r.status_code == 200 and "X-Miroir-Degraded" not in r.headers and r.json().get("total") == n_docs:
            return
        last = f"{r.status_code} {r.headers.get('X-Miroir-Degraded', '')} {r.text[:200]}"
        time.sleep(0.25)
    raise NA(f"Miroir not fully readable after {timeout_s:g} s: {last}")


def _query_latencies(port: int, queries: list[bytes], repeat: int) -> list[float]:
    """Sequential queries (concurrency 1): latency without queueing, in query order."""
    import httpx

    out = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False) as c:
        for q in queries[: min(10, len(queries))]:  # warm-up
            c.post("/indexes/x/search", content=q, headers={"Content-Type": "application/json"})
        for _ in range(repeat):
            for q in queries:
                t0 = time.perf_counter()
                r = c.post("/indexes/x/search", content=q, headers={"Content-Type": "application/json"})
                out.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise NA(f"search {q[:200]!r} -> {r.status_code} {r.text[:300]}")
                if "X-Miroir-Degraded" in r.headers:
                    raise NA(f"degraded answer ({r.headers['X-Miroir-Degraded']}): the figure would be wrong")
    return out


def _pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


E_SEED = 20_240_611  # tests/oracle/test_oracle.py's seed: the same kind of queries the oracle checks


def _oracle_queries_module():
    """tests/support/oracle_queries.py, imported by path (the benchmark does not put the
    repository root on sys.path)."""
    import importlib.util

    path = ROOT / "tests" / "support" / "oracle_queries.py"
    if not path.exists():
        raise NA(f"{path} not found")
    spec = importlib.util.spec_from_file_location("_miroir_bench_oracle_queries", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _query_kinds(q: dict) -> list[str]:
    """The features of one oracle query (a query has several), for per-kind medians."""
    kinds = ["all", "text" if (q.get("q") or "").strip() else "placeholder"]
    kinds += [k for k in ("filter", "facets", "sort", "distinct") if k in q]
    if "page" in q:
        kinds.append("page")
        deep = q["page"] * q["hitsPerPage"] >= 100
    else:
        deep = q.get("offset", 0) + q.get("limit", 20) >= 100
    if deep:
        kinds.append("deep")
    if "attributesToHighlight" in q or "attributesToCrop" in q:
        kinds.append("highlight/crop")
    return kinds


def fig_e(args, tmp: Path) -> dict:
    oq = _oracle_queries_module()
    docs = load_corpus(args.e_docs)
    # The generator needs some documents with tags: --quick's 2,000 have none, so its
    # queries come from the first 5,000 (their words and values still hit the 2,000).
    bodies = oq.generate(docs if len(docs) >= 5000 else load_corpus(5000), args.e_queries, seed=E_SEED)
    queries = [msgspec.json.encode(b) for b in bodies]
    with ExitStack() as stack:
        single = start_devnode(stack, tmp, "devnode-single")
        fleet = [start_devnode(stack, tmp, f"devnode-{i}") for i in range(3)]
        miroir = start_miroir(stack, tmp, [n.port for n in fleet], log_level=args.miroir_log_level)
        _load_docs(single.port, docs, oq.BASE_SETTINGS)
        # SDK-sized batches: one huge request keeps a devnode busy long enough to miss
        # Miroir's health probes (as in tests/oracle/test_oracle.py).
        _load_docs(miroir.port, docs, oq.BASE_SETTINGS, batch=1000)
        _wait_readable(miroir.port, len(docs))
        res: dict[str, Any] = {"documents": len(docs), "queries": len(queries), "query_seed": E_SEED,
                               "query_kind": "tests/support/oracle_queries.py, BASE_SETTINGS"}
        p50s, p99s = [], []
        one_runs, mir_runs = [], []
        one_per_q: list[list[float]] = []
        mir_per_q: list[list[float]] = []
        cpu = {"single": 0.0, "miroir": 0.0, "nodes": 0.0}
        for _ in range(args.runs):
            c0 = cpu_s(single.pid)
            one = _query_latencies(single.port, queries, 1)
            cpu["single"] += cpu_s(single.pid) - c0
            c0, n0 = cpu_s(miroir.pid), sum(cpu_s(n.pid) for n in fleet)
            mir = _query_latencies(miroir.port, queries, 1)
            cpu["miroir"] += cpu_s(miroir.pid) - c0
            cpu["nodes"] += sum(cpu_s(n.pid) for n in fleet) - n0
            one_per_q.append(one)
            mir_per_q.append(mir)
            one_runs.append((_pct(one, 0.5), _pct(one, 0.99)))
            mir_runs.append((_pct(mir, 0.5), _pct(mir, 0.99)))
            p50s.append(_pct(mir, 0.5) / _pct(one, 0.5))
            p99s.append(_pct(mir, 0.99) / _pct(one, 0.99))
        res["single_p50_ms"] = summarize([a for a, _ in one_runs])
        res["single_p99_ms"] = summarize([b for _, b in one_runs])
        res["miroir_p50_ms"] = summarize([a for a, _ in mir_runs])
        res["miroir_p99_ms"] = summarize([b for _, b in mir_runs])
        res["p50_ratio"] = summarize(p50s)
        res["p99_ratio"] = summarize(p99s)
        # CPU per query (includes the ~10 warm-up queries of each run; /proc tick resolution).
        n_sent = args.runs * (len(queries) + min(10, len(queries)))
        res["cpu_ms_per_query"] = {
            "single_devnode": cpu["single"] / n_sent * 1000,
            "miroir": cpu["miroir"] / n_sent * 1000,
            "three_devnodes": cpu["nodes"] / n_sent * 1000,
        }
        # Each query's median over the runs, and the median of those per kind of query.
        one_q = [statistics.median(r[i] for r in one_per_q) for i in range(len(queries))]
        mir_q = [statistics.median(r[i] for r in mir_per_q) for i in range(len(queries))]
        kinds: dict[str, list[int]] = {}
        for i, b in enumerate(bodies):
            for k in _query_kinds(b):
                kinds.setdefault(k, []).append(i)
        res["per_kind"] = {
            k: {"queries": len(idx),
                "single_p50_ms": statistics.median(one_q[i] for i in idx),
                "miroir_p50_ms": statistics.median(mir_q[i] for i in idx),
                "p50_ratio": statistics.median(mir_q[i] for i in idx) / statistics.median(one_q[i] for i in idx)}
            for k, idx in kinds.items()
        }
        res["per_query_ms"] = {"single": [round(x, 3) for x in one_q], "miroir": [round(x, 3) for x in mir_q]}
        return res


def _pool_worker(kind: str, port: int, duration_s: float, conc: int) -> dict:
    import httpx
    import trio

    sys.path.insert(0, str(ROOT / "src"))
    from miroir.net.http1 import Http1Pool

    calls = 0
    hdrs = [(b"content-type", b"application/json")]

    async def main() -> None:
        nonlocal calls
        deadline = trio.current_time() + duration_s
        if kind == "http1":
            async with Http1Pool("127.0.0.1", port, max_connections=conc) as pool:
                async def loop() -> None:
                    nonlocal calls
                    while trio.current_time() < deadline:
                        s, _, b = await pool.request("POST", "/indexes/x/search", hdrs, SEARCH_BODY, 30)
                        assert s == 200
                        msgspec.json.decode(b)
                        calls += 1

                async with trio.open_nursery() as n:
                    for _ in range(conc):
                        n.start_soon(loop)
        else:
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, trust_env=False) as c:
                async def loop() -> None:
                    nonlocal calls
                    while trio.current_time() < deadline:
                        r = await c.post("/indexes/x/search", content=SEARCH_BODY, headers={"Content-Type": "application/json"})
                        assert r.status_code == 200
                        msgspec.json.decode(r.content)
                        calls += 1

                async with trio.open_nursery() as n:
                    for _ in range(conc):
                        n.start_soon(loop)

    c0, t0 = time.process_time(), time.perf_counter()
    trio.run(main)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {"calls_per_s": calls / wall, "cpu_us_per_call": cpu / max(calls, 1) * 1e6}


def fig_p(args, tmp: Path) -> dict:
    out: dict[str, Any] = {"concurrency": CONCURRENCY}
    with ExitStack() as stack:
        (node,) = start_canned(stack, tmp, 1)
        for kind in ("http1", "httpx"):
            _pool_worker(kind, node.port, args.warmup_s, CONCURRENCY)
            runs = [_pool_worker(kind, node.port, args.duration_s, CONCURRENCY) for _ in range(args.runs)]
            out[kind] = {
                "calls_per_s": summarize([r["calls_per_s"] for r in runs]),
                "cpu_us_per_call": summarize([r["cpu_us_per_call"] for r in runs]),
            }
    out["speedup"] = out["http1"]["calls_per_s"]["median"] / out["httpx"]["calls_per_s"]["median"]
    return out


# ----------------------------------------------------------------------------- report


def _fmt(s: dict | None, unit: str = "", digits: int = 1) -> str:
    if not s:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])}{unit} [{f.format(s['min'])}..{f.format(s['max'])}]"


def _cpu_ratio(r: dict, a: str, b: str) -> str:
    try:
        return f"CPU/req ratio {r[a]['server_cpu_ms_per_req']['median'] / r[b]['server_cpu_ms_per_req']['median']:.2f}"
    except (KeyError, ZeroDivisionError):
        return ""


def table(results: dict) -> str:
    rows: list[tuple[str, str, str]] = []
    r = results["figures"]

    def na(key: str) -> str | None:
        v = r.get(key)
        if v is None:
            return None
        return f"n/a: {v['error']}" if "error" in v else None

    for key, label in (("A", "A bare ASGI (hypercorn.trio)"), ("B", "B Miroir search, 3 canned nodes")):
        if key in r:
            v = r[key]
            if "error" in v:
                rows.append((label, na(key) or "", ""))
            else:
                cpu = f"  CPU {_fmt(v['server_cpu_ms_per_req'], ' ms/req', 2)}" if "server_cpu_ms_per_req" in v else ""
                rows.append((label, _fmt(v["rps"], " req/s"),
                             f"p50 {_fmt(v['p50_ms'], ' ms', 2)}  p99 {_fmt(v['p99_ms'], ' ms', 2)}{cpu}"))
    if "A" in r and "B" in r and "error" not in r["A"] and "error" not in r["B"]:
        rows.append(("  B/A throughput", f"{r['B']['rps']['median'] / r['A']['rps']['median']:.2f}", _cpu_ratio(r, "B", "A")))
    if "L" in r:
        v = r["L"]
        rows.append(("L added latency, concurrency 1", na("L") or _fmt(v["added_ms"], " ms", 2),
                     "" if "error" in v else f"Miroir p50 {_fmt(v['miroir_p50_ms'], ' ms', 2)}  slowest node p50 "
                     f"{_fmt(v['slowest_node_p50_ms'], ' ms', 2)}"))
    if "C" in r:
        v = r["C"]
        rows.append(("C Miroir ingest, 1,000-doc batches", na("C") or _fmt(v["docs_per_s"], " docs/s", 0),
                     "" if "error" in v else f"{_fmt(v['mb_per_s'], ' MB/s', 2)}  Miroir CPU "
                     f"{_fmt(v['miroir_cpu_ms_per_batch'], ' ms/batch', 1)} ({v['documents']} docs)"))
    if "D" in r:
        v = r["D"]
        rows.append(("D merge 3x1,000 hits, sort+details", na("D") or _fmt(v["us_per_merge"], " us", 0), ""))
    if "E" in r:
        v = r["E"]
        if "error" in v:
            rows.append(("E Miroir/3 devnodes vs 1 devnode", na("E") or "", ""))
        else:
            rows.append(("E Miroir/3 devnodes vs 1 devnode", f"p50 x{_fmt(v['p50_ratio'], '', 2)}",
                         f"p99 x{_fmt(v['p99_ratio'], '', 2)}  (1 node p50 {v['single_p50_ms']['median']:.1f} ms,"
                         f" Miroir p50 {v['miroir_p50_ms']['median']:.1f} ms)"))
            cpu = v.get("cpu_ms_per_query")
            if cpu:
                rows.append(("  E CPU per query", f"1 node {cpu['single_devnode']:.1f} ms",
                             f"Miroir {cpu['miroir']:.1f} ms + 3 nodes {cpu['three_devnodes']:.1f} ms"))
    mem = results.get("memory") or {}
    if mem:
        parts = [f"{k} {v}" for k, v in mem.items()]
        rows.append(("M Miroir RSS (MiB)", ", ".join(parts[:2]), ", ".join(parts[2:])))
    if "P" in r:
        v = r["P"]
        if "error" in v:
            rows.append(("P Http1Pool vs httpx", na("P") or "", ""))
        else:
            rows.append(("P Http1Pool calls/s", _fmt(v["http1"]["calls_per_s"], "", 0),
                         f"CPU {_fmt(v['http1']['cpu_us_per_call'], ' us/call', 0)}"))
            rows.append(("P httpx.AsyncClient calls/s", _fmt(v["httpx"]["calls_per_s"], "", 0),
                         f"CPU {_fmt(v['httpx']['cpu_us_per_call'], ' us/call', 0)}"))
            rows.append(("  Http1Pool/httpx throughput", f"{v['speedup']:.2f}", ""))
    w = max(len(a) for a, _, _ in rows) if rows else 10
    lines = [f"{'figure'.ljust(w)}  median [min..max]", "-" * (w + 40)]
    lines += [f"{a.ljust(w)}  {b}  {c}".rstrip() for a, b, c in rows]
    targets = target_rows(results)
    if targets:
        lines += ["", "issue 8 targets (figure / target = ratio; >= 1.00 means reached):"]
        lines += [f"  {name}: {got} vs {want} -> {ratio:.2f} {'reached' if ratio >= 1 else 'NOT reached'}"
                  for name, got, want, ratio in targets]
    return "\n".join(lines)


def target_rows(results: dict) -> list[tuple[str, str, str, float]]:
    """(name, measured, target, ratio) for each issue-8 target the run measured; the
    ratio is oriented so that >= 1 means the target is reached."""
    r = results["figures"]
    out: list[tuple[str, str, str, float]] = []

    def ok(key: str) -> bool:
        return key in r and "error" not in r[key]

    if ok("A") and ok("B"):
        ba = r["B"]["rps"]["median"] / r["A"]["rps"]["median"]
        out.append(("B/A throughput", f"{ba:.2f}", ">= 0.50", ba / 0.5))
    if ok("L"):
        added = r["L"]["added_ms"]["median"]
        out.append(("added latency at concurrency 1", f"{added:.2f} ms", "<= 1.5 ms", 1.5 / max(added, 1e-9)))
    if ok("C"):
        dps = r["C"]["docs_per_s"]["median"]
        out.append(("ingest", f"{dps:,.0f} docs/s", ">= 100,000 docs/s", dps / 100_000))
    if ok("D"):
        us = r["D"]["us_per_merge"]["median"]
        out.append(("merge 3x1,000 hits", f"{us:,.0f} us", "<= 2,000 us", 2000 / us))
    if ok("E"):
        ratio = r["E"]["p50_ratio"]["median"]
        out.append(("p50 via Miroir on 3 devnodes / 1 devnode", f"x{ratio:.2f}", "<= x0.70", 0.7 / ratio))
    mem = results.get("memory") or {}
    if "idle_mib" in mem:
        out.append(("RSS idle", f"{mem['idle_mib']} MiB", "<= 80 MB (76.3 MiB)", 76.3 / mem["idle_mib"]))
    if "idle_mib" in mem and "peak_c_big_batch_mib" in mem:
        above = mem["peak_c_big_batch_mib"] - mem["idle_mib"]
        allowed = 4 * mem["big_batch_mb"] * 1e6 / 2**20
        out.append((f"RSS peak above idle, one {mem['big_batch_mb']} MB batch", f"{above:.1f} MiB",
                    f"<= 4 x batch ({allowed:.1f} MiB)", allowed / above if above > 0 else float("inf")))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Miroir benchmarks (issue 8)")
    p.add_argument("--quick", action="store_true", help="short runs for a smoke test")
    p.add_argument("--only", default="A,B,L,C,D,E,P",
                   help="comma-separated figures among A,B,L,C,D,E,P (M comes with B and C; H is an old "
                        "name of B since the node client runs on Http1Pool)")
    p.add_argument("--runs", type=int, help="runs per figure (median of them)")
    p.add_argument("--duration", type=float, dest="duration_s", help="seconds per load run")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--miroir-log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--output", default=str(RESULTS))
    args = p.parse_args(argv)
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    if "H" in only:  # figure H (B with the node client on Http1Pool) is B itself now
        only = (only - {"H"}) | {"B"}
    args.runs = args.runs or (1 if args.quick else 5)
    args.duration_s = args.duration_s or (2.0 if args.quick else 10.0)
    args.warmup_s = 1.0 if args.quick else 3.0
    args.ingest_docs = 5_000 if args.quick else None
    args.big_batch_mb = 5 if args.quick else 50
    args.e_docs = 2_000 if args.quick else 20_000
    args.e_queries = 40 if args.quick else 200
    args.wrk = not args.python_load and have_wrk(not args.no_install)

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "loadavg_at_start": os.getloadavg()},
        "settings": {"quick": args.quick, "runs": args.runs, "duration_s": args.duration_s, "warmup_s": args.warmup_s,
                     "concurrency": CONCURRENCY, "load_tool": "wrk" if args.wrk else "python-h11",
                     "miroir_log_level": args.miroir_log_level},
        "figures": {},
        "memory": {},
    }
    mem: dict[str, Any] = results["memory"]
    with tempfile.TemporaryDirectory(prefix="miroir-bench-") as tmpname:
        tmp = Path(tmpname)
        for key in ("D", "A", "B", "L", "C", "E", "P"):
            if key not in only:
                continue
            print(f"[{key}] running ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                if key == "A":
                    res = fig_a(args, tmp)
                elif key == "B":
                    res = fig_b(args, tmp, mem)
                elif key == "L":
                    res = fig_l(args, tmp)
                elif key == "C":
                    res = fig_c(args, tmp, mem)
                elif key == "D":
                    res = fig_d(args)
                elif key == "E":
                    res = fig_e(args, tmp)
                else:
                    res = fig_p(args, tmp)
            except NA as e:
                res = {"error": str(e)}
            except Exception as e:  # a broken figure must not hide the others
                res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
            res["seconds"] = round(time.monotonic() - t0, 1)
            results["figures"][key] = res
            print(f"[{key}] done in {res['seconds']} s{' — ' + res['error'][:200] if 'error' in res else ''}",
                  file=sys.stderr, flush=True)
    results["host"]["loadavg_at_end"] = os.getloadavg()
    results["targets"] = [{"name": n, "measured": m, "target": t, "ratio": round(x, 3)} for n, m, t, x in target_rows(results)]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n(load tool {results['settings']['load_tool']}, concurrency {CONCURRENCY}, {args.runs} run(s) of "
          f"{args.duration_s:g} s after {args.warmup_s:g} s warm-up; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; JSON: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
