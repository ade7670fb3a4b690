"""The port of Meilisearch 1.50's integration tests (issue 16, Build 3): load the cases of
tests/port/cases/, run one against a base URL, compare with Meilisearch's answer.

The case format is described in the issue's shared note (PORT.md); in short, a case file
tests/port/cases/<folder>/<rust_file_stem>.json holds {"source": ..., "cases": [...]}, each
case {"name", "index"?, "indexes"?, "steps", "skip"?, "alone"?} ("alone": true runs the case
after the others, by itself; cases writing to routes outside /indexes run so anyway). A step:

    {"method": "POST", "path": "/indexes/{index}/search",
     "body": {...} | "rawBody": "text", "query": {...}, "headers": {...},
     "status": 200,                 # expected status (omitted: not checked)
     "response": {...},             # expected body, matched exactly (wildcards below)
     "responsePaths": {"hits": [...], "hits.#len": 3, "hits.*.id": [...], "/facetDistribution/a.b": {...}},
                                    # or only these parts of the body (dotted, or a JSON pointer)
     "wait": true,                  # wait for the returned taskUid before the next step
     "task": {...}}                 # expected finished task (needs "wait")

`{index}` is a uid unique to the case; `{index_<name>}` names further indexes of the case
(declared in "indexes": {"<name>": {primaryKey, settings, documents}} or created by steps).
Cases whose steps only read (GET, or POST search/facet-search/multi-search/documents/fetch,
no "wait") and declare the same indexes read one copy of them, created once per run.
Wildcard strings match any value: "[uuid]", "[date]", "[duration]", "[uid]", "[ignored]"; inside a
longer string a wildcard matches any text ("Index `[uuid]` not found."). Floats compare with a
relative tolerance of 1e-12 (the last bit of an f64 sum), every other number exactly.
"@name" as documents reads tests/port/data/<name>.json.

    python -m tests.port.runner --report [--target devnode|miroir] [--folder search]
    python -m tests.port.runner --case search/distinct::distinct_at_search_time   # prints diffs
    python -m tests.port.runner --update-known [--target ...] [--folder ...]

Both targets (one devnode; Miroir over 3 devnodes, 16 shards) are started here as the
pytest session (tests/port/test_port.py) starts them; loopback only, stopped at exit.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PORT_DIR = Path(__file__).resolve().parent
CASES_DIR = PORT_DIR / "cases"
DATA_DIR = PORT_DIR / "data"
KNOWN_FAILURES = PORT_DIR / "known_failures.json"
FOLDERS = ("search", "documents", "settings", "index", "tasks", "stats")
TARGETS = ("devnode", "miroir")
WILDCARDS = frozenset({"[uuid]", "[date]", "[duration]", "[uid]", "[ignored]"})
TASK_WAIT_S = 60.0
POLL_S = 0.01
POLL_MAX_S = 0.1
REQUEST_TIMEOUT_S = 60.0
WORKERS = 8
MAX_DIFFS = 25
UNCLASSIFIED = "unclassified"
_WILDCARD_RE = re.compile("|".join(re.escape(w) for w in sorted(WILDCARDS)))
# Scores are f64 sums: Meilisearch and Python may round the last bit differently.
FLOAT_REL_TOL = 1e-12


@dataclass(frozen=True)
class Case:
    folder: str
    file: str
    name: str
    data: dict = field(compare=False, hash=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.file}::{self.name}"

    @property
    def skip(self) -> str | None:
        return self.data.get("skip")

    @property
    def checks_hits(self) -> bool:
        return any(
            _has_hits(s.get("response")) or _has_hits(s.get("responsePaths"), paths=True) for s in self.data["steps"]
        )


def _has_hits(expected: Any, paths: bool = False) -> bool:
    if isinstance(expected, dict):
        keys = [seg for k in expected for seg in path_segments(k)] if paths else list(expected)
        return "hits" in keys or "results" in keys or any(_has_hits(v) for v in expected.values())
    if isinstance(expected, list):
        return any(_has_hits(v) for v in expected)
    return False


@dataclass
class Outcome:
    """What running one case gave: `diffs` empty means it passed."""

    diffs: list[str]
    codes_match: bool  # every step's status (and error code, where one is expected) matched

    @property
    def passed(self) -> bool:
        return not self.diffs


# ---------------------------------------------------------------- loading


def load_cases(folders: Iterable[str] | None = None) -> list[Case]:
    wanted = set(folders) if folders else None
    cases: list[Case] = []
    seen: set[str] = set()
    for path in sorted(CASES_DIR.glob("*/*.json")):
        folder = path.parent.name
        if wanted is not None and folder not in wanted:
            continue
        doc = json.loads(path.read_text())
        for raw in doc["cases"]:
            case = Case(folder, path.stem, raw["name"], raw)
            if case.id in seen:
                raise ValueError(f"two cases named {case.id}")
            seen.add(case.id)
            cases.append(case)
    return cases


def load_known() -> dict[str, str]:
    return json.loads(KNOWN_FAILURES.read_text()) if KNOWN_FAILURES.exists() else {}


def known_key(target: str, case: Case) -> str:
    return f"{target}::{case.id}"


_datasets: dict[str, Any] = {}


def dataset(value: Any) -> Any:
    """Documents as given, or the dataset tests/port/data/<name>.json for "@name"."""
    if isinstance(value, str) and value.startswith("@"):
        name = value[1:]
        if name not in _datasets:
            _datasets[name] = json.loads((DATA_DIR / f"{name}.json").read_text())
        return _datasets[name]
    return value


# ---------------------------------------------------------------- comparing


def _fmt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + "…"


def _matches_with_wildcards(expected: str, got: str) -> bool:
    parts = _WILDCARD_RE.split(expected)
    return re.fullmatch(".*?".join(map(re.escape, parts)), got, re.S) is not None


def compare(expected: Any, got: Any, path: str = "$") -> list[str]:
    """Differences between Meilisearch's answer and ours, one line each: `path: expected X, got Y`."""
    if isinstance(expected, str) and expected in WILDCARDS:
        return []
    if isinstance(expected, str) and isinstance(got, str) and _WILDCARD_RE.search(expected):
        return [] if _matches_with_wildcards(expected, got) else [f"{path}: expected {_fmt(expected)}, got {_fmt(got)}"]
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object {_fmt(expected)}, got {_fmt(got)}"]
        out = [f"{path}.{k}: missing (expected {_fmt(expected[k])})" for k in expected if k not in got]
        out += [f"{path}.{k}: unexpected key (got {_fmt(got[k])})" for k in got if k not in expected]
        for k in expected:
            if k in got:
                out += compare(expected[k], got[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [f"{path}: expected a list {_fmt(expected)}, got {_fmt(got)}"]
        out = []
        if len(expected) != len(got):
            out.append(f"{path}: expected {len(expected)} items, got {len(got)}")
        for i, (e, g) in enumerate(zip(expected, got)):
            out += compare(e, g, f"{path}[{i}]")
        if len(expected) != len(got):
            out += [f"{path}[{i}]: missing (expected {_fmt(e)})" for i, e in enumerate(expected) if i >= len(got)]
            out += [f"{path}[{i}]: unexpected (got {_fmt(g)})" for i, g in enumerate(got) if i >= len(expected)]
        return out
    same_kind = isinstance(expected, bool) == isinstance(got, bool) and (
        type(expected) is type(got) or (isinstance(expected, (int, float)) and isinstance(got, (int, float)))
    )
    if same_kind and expected == got:
        return []
    if (
        same_kind
        and isinstance(expected, float)
        and not isinstance(expected, bool)
        and math.isclose(expected, got, rel_tol=FLOAT_REL_TOL)
    ):
        return []
    return [f"{path}: expected {_fmt(expected)}, got {_fmt(got)}"]


_MISSING = object()


def path_segments(path: str) -> list[str]:
    """ "hits.0.id" (dotted), or "/facetDistribution/doggos.name" (a JSON pointer, for keys with dots)."""
    if path.startswith("/"):
        return [seg.replace("~1", "/").replace("~0", "~") for seg in path[1:].split("/")]
    return path.split(".") if path else []


def at_path(value: Any, path: str | list[str]) -> Any:
    """The part of `value` at a path ("hits", "results.0.hits", "hits.#len", "/facetDistribution/a.b");
    "*" maps the rest of the path over a list ("hits.*.id": the ids of the hits, in order)."""
    segs = path_segments(path) if isinstance(path, str) else path
    for n, seg in enumerate(segs):
        if seg == "*":
            if not isinstance(value, list):
                return _MISSING
            # a field missing from one hit reads as null, as indexing a serde_json Value does
            return [None if (x := at_path(v, segs[n + 1 :])) is _MISSING else x for v in value]
        if seg == "#len":
            value = len(value) if isinstance(value, (list, dict, str)) else _MISSING
        elif isinstance(value, list) and seg.lstrip("-").isdigit():
            i = int(seg)
            value = value[i] if -len(value) <= i < len(value) else _MISSING
        elif isinstance(value, dict) and seg in value:
            value = value[seg]
        else:
            return _MISSING
    return value


# ---------------------------------------------------------------- running


def case_uid(case: Case) -> str:
    """An index uid for the case: the same in every run, distinct between cases."""
    return "port_" + hashlib.sha1(case.id.encode()).hexdigest()[:12]


def substitute(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value in names and isinstance(names[value], int):
            return names[value]  # "{taskN}" alone: the task uid as a number
        if "{" in value:
            for placeholder, uid in names.items():
                value = value.replace(placeholder, str(uid))
        return value
    if isinstance(value, dict):
        return {substitute(k, names): substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def _names(case: Case, uid: str | None = None) -> dict[str, str]:
    uid = uid or case_uid(case)
    names = {"{index}": uid}
    for extra in case.data.get("indexes", {}):
        names["{index_" + extra + "}"] = f"{uid}_{extra}"
    # placeholders used only in steps (indexes the steps create)
    text = json.dumps(case.data["steps"])
    start = 0
    while (i := text.find("{index_", start)) >= 0:
        j = text.find("}", i)
        names.setdefault(text[i : j + 1], f"{uid}_{text[i + 7 : j]}")
        start = j
    return names


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(_query_value(x) for x in v)
    if isinstance(v, (dict,)):
        return json.dumps(v)
    return str(v)


def wait_task(client: httpx.Client, uid: int) -> dict:
    deadline = time.monotonic() + TASK_WAIT_S
    pause = POLL_S
    while True:
        r = client.get(f"/tasks/{uid}")
        if r.status_code == 200 and r.json().get("status") in ("succeeded", "failed", "canceled"):
            return r.json()
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {uid} not finished after {TASK_WAIT_S}s: {r.status_code} {r.text[:300]}")
        time.sleep(pause)
        # polls from a few cases at once would otherwise take the server's time from the tasks
        pause = min(pause * 1.5, POLL_MAX_S)


def _setup_index(client: httpx.Client, uid: str, spec: dict) -> list[str]:
    """Create the index of a case as its Rust test did; a task that fails is a difference."""
    tasks = []
    if spec.get("primaryKey") is not None:
        tasks.append(client.post("/indexes", json={"uid": uid, "primaryKey": spec["primaryKey"]}))
    elif "settings" not in spec and "documents" not in spec:
        tasks.append(client.post("/indexes", json={"uid": uid}))
    if spec.get("settings"):
        tasks.append(client.patch(f"/indexes/{uid}/settings", json=spec["settings"]))
    if spec.get("documents") is not None:
        tasks.append(client.post(f"/indexes/{uid}/documents", json=dataset(spec["documents"])))
    out = []
    for resp in tasks:
        if resp.status_code != 202:
            out.append(
                f"setup of {uid}: {resp.request.method} {resp.request.url.path} answered {resp.status_code} {resp.text[:300]}"
            )
            continue
        task = wait_task(client, resp.json()["taskUid"])
        if task["status"] != "succeeded":
            out.append(f"setup of {uid}: task {task.get('type')} {task['status']}: {_fmt(task.get('error'))}")
    return out


def _specs(case: Case) -> dict[str, dict]:
    specs = {"{index}": case.data.get("index")} | {
        "{index_" + k + "}": v for k, v in case.data.get("indexes", {}).items()
    }
    return {k: v for k, v in specs.items() if v is not None}


def setup_indexes(client: httpx.Client, case: Case, names: dict[str, str]) -> list[str]:
    """Create the declared indexes of `case` under `names`; the differences met on the way."""
    diffs = []
    try:
        for placeholder, spec in _specs(case).items():
            diffs += _setup_index(client, names[placeholder], substitute(spec, names))
    except (httpx.HTTPError, TimeoutError, ValueError) as exc:
        diffs.append(f"error: {type(exc).__name__}: {exc}")
    return diffs


_READ_SUFFIXES = ("/search", "/facet-search", "/multi-search", "/documents/fetch")


def shared_uid(case: Case) -> str | None:
    """For a case that only reads the indexes it declares, a uid named after those declarations:
    cases declaring the same indexes read one copy of them, created once per run (index creation
    is most of a case's time through Miroir, 16 shards each)."""
    specs = _specs(case)
    reads = all(
        not s.get("wait") and (s["method"] == "GET" or (s["method"] == "POST" and s["path"].endswith(_READ_SUFFIXES)))
        for s in case.data["steps"]
    )
    if not specs or not reads:
        return None
    key = json.dumps({"index": case.data.get("index"), "indexes": case.data.get("indexes")}, sort_keys=True)
    return "port_s" + hashlib.sha1(key.encode()).hexdigest()[:12]


def run_case(client: httpx.Client, case: Case, shared: dict[str, list[str]] | None = None) -> Outcome:
    """Run `case` on the server of `client`; every difference from Meilisearch's answer.
    `shared`: the setup differences of the shared indexes already created (see `shared_uid`)."""
    uid = shared_uid(case) if shared is not None else None
    names: dict[str, Any] = dict(_names(case, uid))
    diffs: list[str] = []
    codes_match = True
    try:
        setup = shared[uid] if shared is not None and uid is not None else setup_indexes(client, case, names)
        diffs += setup
        codes_match = not setup
        for n, raw in enumerate(case.data["steps"], 1):
            step = substitute(raw, names)
            step_diffs, step_codes, task_uid = _run_step(client, step)
            if task_uid is not None:
                names[f"{{task{n}}}"] = task_uid  # later steps may name it (GET /tasks/{task2})
            codes_match = codes_match and step_codes
            diffs += [f"step {n} ({step['method']} {raw['path']}): {d}" for d in step_diffs]
    except (httpx.HTTPError, TimeoutError, ValueError) as exc:
        diffs.append(f"error: {type(exc).__name__}: {exc}")
        codes_match = False
    return Outcome(diffs, codes_match)


def _run_step(client: httpx.Client, step: dict) -> tuple[list[str], bool, int | None]:
    kw: dict[str, Any] = {}
    headers = dict(step.get("headers", {}))
    if "rawBody" in step:
        kw["content"] = step["rawBody"].encode()
        headers.setdefault("Content-Type", "application/json")
    elif "body" in step:
        kw["content"] = json.dumps(dataset(step["body"])).encode()
        headers.setdefault("Content-Type", "application/json")
    headers = {k: v for k, v in headers.items() if v is not None}  # "Content-Type": null sends none
    if "query" in step:
        kw["params"] = {k: _query_value(v) for k, v in step["query"].items() if v is not None}
    resp = client.request(step["method"], step["path"], headers=headers, **kw)
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = resp.text
    diffs = []
    codes = True
    if "status" in step and resp.status_code != step["status"]:
        diffs.append(f"status: expected {step['status']}, got {resp.status_code} {_fmt(body)}")
        codes = False
    expected = step.get("response")
    if (
        isinstance(expected, dict)
        and "code" in expected
        and isinstance(body, dict)
        and body.get("code") != expected["code"]
    ):
        codes = False
    if "response" in step:
        diffs += compare(expected, body)
    for path, exp in step.get("responsePaths", {}).items():
        got = at_path(body, path)
        if got is _MISSING and exp is None:
            pass  # `response["field"]` of a field left out reads as null (serde_json's Index)
        elif got is _MISSING:
            diffs.append(f"$.{path}: missing (expected {_fmt(exp)})")
        else:
            diffs += compare(exp, got, f"$.{path}")
        if path_segments(path)[-1:] == ["code"] and got != exp:
            codes = False
    if step.get("wait"):
        if not (isinstance(body, dict) and "taskUid" in body):
            diffs.append(f"wait: no taskUid in {_fmt(body)}")
        else:
            task = wait_task(client, body["taskUid"])
            if "task" in step:
                diffs += compare(step["task"], task, "$task")
                exp_err = (step["task"].get("error") or {}) if isinstance(step["task"], dict) else {}
                if compare(step["task"].get("status"), task.get("status")) or (
                    isinstance(exp_err, dict) and (task.get("error") or {}).get("code") != exp_err.get("code")
                ):
                    codes = False
    task_uid = body.get("taskUid") if isinstance(body, dict) and isinstance(body.get("taskUid"), int) else None
    return diffs, codes, task_uid


def _global(case: Case) -> bool:
    """A case that changes what every index sees (experimental features), or that reads what
    every case changes ("alone": true, e.g. the global task list): it runs alone."""
    return bool(case.data.get("alone")) or any(
        not s["path"].startswith("/indexes") and s["method"] != "GET" and s["path"] not in INDEPENDENT_ROUTES
        for s in case.data["steps"]
    )


# Routes whose writes touch only the indexes they name.
INDEPENDENT_ROUTES = frozenset({"/multi-search", "/indexes"})


def run_cases(url: str, cases: list[Case], workers: int = WORKERS) -> dict[str, Outcome]:
    """Run `cases` (not skipped ones) on `url`: a few at a time (each has its own index), then
    the ones that change server-wide state one by one."""
    # the longest cases first, so that none of them starts last and runs alone
    runnable = sorted((c for c in cases if not c.skip), key=lambda c: -len(c.data["steps"]) - 4 * len(_specs(c)))
    with (
        httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client,
        concurrent.futures.ThreadPoolExecutor(workers) as pool,
    ):
        groups: dict[str, Case] = {}
        for c in runnable:
            if (uid := shared_uid(c)) is not None:
                groups.setdefault(uid, c)
        setups = {uid: pool.submit(setup_indexes, client, c, _names(c, uid)) for uid, c in groups.items()}
        shared = {uid: f.result() for uid, f in setups.items()}
        futures = {c.id: pool.submit(run_case, client, c, shared) for c in runnable if not _global(c)}
        outcomes = {cid: f.result() for cid, f in futures.items()}
        for c in runnable:
            if _global(c):
                outcomes[c.id] = _isolated(client, c, shared)
        return outcomes


def _isolated(client: httpx.Client, case: Case, shared: dict[str, list[str]]) -> Outcome:
    """Run a case that switches experimental features, then switch them back: in Meilisearch's
    suite such a test has a server of its own."""
    before = client.get("/experimental-features")
    try:
        return run_case(client, case, shared)
    finally:
        if before.status_code == 200:
            client.patch("/experimental-features", json=before.json())


# ---------------------------------------------------------------- targets


@contextlib.contextmanager
def start_target(target: str) -> Iterator[str]:
    """The base URL of `target`: one devnode, or Miroir over 3 devnodes with 16 shards."""
    from tests.support.devnodes import start_devnodes
    from tests.support.miroir_proc import start_cluster

    if target == "devnode":
        with start_devnodes(1) as (node,):
            yield node.url
    elif target == "miroir":
        with start_cluster(nodes=3, groups=1, rf=1, shards=16) as cluster:
            yield cluster.url
    else:
        raise ValueError(f"unknown target {target!r}")


def run_target(target: str, cases: list[Case]) -> dict[str, Outcome]:
    with start_target(target) as url:
        return run_cases(url, cases)


# ---------------------------------------------------------------- report and known failures


def report(target: str, cases: list[Case], outcomes: dict[str, Outcome]) -> str:
    lines = [
        f"target {target}:",
        f"  {'folder':<10} {'hits pass':>12} {'status+code':>12} {'all pass':>12} {'skipped':>8}",
    ]
    folders = sorted({c.folder for c in cases})
    totals = [0, 0, 0, 0, 0, 0, 0]
    for folder in [*folders, "TOTAL"]:
        if folder == "TOTAL":
            h, ht, s, st, a, at, sk = totals
        else:
            mine = [c for c in cases if c.folder == folder]
            run = [c for c in mine if not c.skip]
            hit = [c for c in run if c.checks_hits]
            h, ht = sum(outcomes[c.id].passed for c in hit), len(hit)
            s, st = sum(outcomes[c.id].codes_match for c in run), len(run)
            a, at = sum(outcomes[c.id].passed for c in run), len(run)
            sk = len(mine) - len(run)
            totals = [x + y for x, y in zip(totals, (h, ht, s, st, a, at, sk))]
        lines.append(f"  {folder:<10} {f'{h}/{ht}':>12} {f'{s}/{st}':>12} {f'{a}/{at}':>12} {sk:>8}")
    return "\n".join(lines)


def per_file(target: str, cases: list[Case], outcomes: dict[str, Outcome]) -> str:
    lines = [f"target {target}, per file (all pass / run, hits pass / hits):"]
    for key in sorted({(c.folder, c.file) for c in cases}):
        run = [c for c in cases if (c.folder, c.file) == key and not c.skip]
        hit = [c for c in run if c.checks_hits]
        lines.append(
            f"  {key[0]}/{key[1]:<24} {sum(outcomes[c.id].passed for c in run)}/{len(run)}"
            f"   hits {sum(outcomes[c.id].passed for c in hit)}/{len(hit)}"
        )
    return "\n".join(lines)


def updated_known(
    known: dict[str, str], target: str, cases: list[Case], outcomes: dict[str, Outcome]
) -> dict[str, str]:
    """`known` for the cases run on `target`: failing cases keep their reason, new ones are unclassified."""
    ran = {known_key(target, c) for c in cases if c.id in outcomes}
    out = {k: v for k, v in known.items() if k not in ran}
    for c in cases:
        if c.id in outcomes and not outcomes[c.id].passed:
            key = known_key(target, c)
            out[key] = known.get(key, UNCLASSIFIED)
    return dict(sorted(out.items()))


def write_known(known: dict[str, str]) -> None:
    KNOWN_FAILURES.write_text(json.dumps(known, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.port.runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=TARGETS, action="append", help="default: both")
    p.add_argument("--folder", action="append", choices=FOLDERS, help="default: all")
    p.add_argument("--case", action="append", help="run only these case ids (folder/file::name); prints diffs")
    p.add_argument("--report", action="store_true", help="per-folder counts")
    p.add_argument("--per-file", action="store_true", help="per-file counts too")
    p.add_argument("--update-known", action="store_true", help="rewrite known_failures.json")
    p.add_argument("-v", "--verbose", action="store_true", help="print the diffs of failing cases")
    args = p.parse_args(argv)
    from miroir.logsetup import setup_logging

    setup_logging("console", level="warning")  # Miroir runs in this process: keep its request log quiet
    cases = load_cases(args.folder)
    if args.case:
        cases = [c for c in cases if c.id in args.case or any(c.id.startswith(x) for x in args.case)]
    known = load_known()
    for target in args.target or TARGETS:
        started = time.monotonic()
        outcomes = run_target(target, cases)
        took = time.monotonic() - started
        if args.verbose or args.case:
            for c in cases:
                o = outcomes.get(c.id)
                if o and not o.passed:
                    print(f"FAIL {target}::{c.id}  ({known.get(known_key(target, c), 'not in known_failures')})")
                    for d in o.diffs[:MAX_DIFFS]:
                        print("    " + d)
                elif o:
                    print(f"ok   {target}::{c.id}")
        if args.report or not (args.verbose or args.case or args.update_known):
            print(report(target, cases, outcomes))
            if args.per_file:
                print(per_file(target, cases, outcomes))
            print(f"  ({len(outcomes)} cases in {took:.1f} s)")
        if args.update_known:
            known = updated_known(known, target, cases, outcomes)
    if args.update_known:
        write_known(known)
        print(f"wrote {KNOWN_FAILURES} ({len(known)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
