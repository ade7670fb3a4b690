"""`miroir` command line: serve [--recover], check-config, devnode, dev; and against a running Miroir
(`--url`/`MIROIR_URL`, `--admin-key`/`MIROIR_ADMIN_KEY`): status, nodes add|drain|remove|set-url,
rebalance [--watch] [--pause|--resume], reshard INDEX --shards S2, dump, snapshot, import-dump FILE [--resume|--force];
offline: restore MANIFEST --data-dir DIR [--force].

User mistakes end as one line on stderr, `miroir: error: ...`, and a non-zero status (the
codes are listed in `miroir --help`, EXIT_HELP). Never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import msgspec

from miroir import __version__
from miroir.config import Config, ConfigError, load_config, resolve_config_path
from miroir.core.errors import find_exception
from miroir.embedder import run_embedder

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# `miroir status`: Miroir answered, but some shard has no reachable owner (reads of it fail).
EXIT_UNCOVERED = 3

EXIT_HELP = """exit status:
  0  success
  1  failure: the daemon could not start, or Miroir could not be reached or refused the request
  2  usage or configuration error
  3  (status) a shard of some index has no reachable owner: reads of it fail

errors are one line on stderr: `miroir: error: ...`"""


def _die(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"miroir: error: {message}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the one-line `miroir: error: ...` of every other error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="miroir",
        description="One Meilisearch API in front of a fleet of Meilisearch nodes.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"miroir {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the daemon (--recover: start from a damaged or lost journal)")
    serve.add_argument("--config", metavar="PATH", help="config file (default: $MIROIR_CONFIG, ./miroir.toml)")
    serve.add_argument("--log-format", choices=["json", "console"], help="overrides [log] format")
    serve.add_argument(
        "--recover",
        action="store_true",
        help="start although the journal is damaged or empty while the nodes hold data: keep what "
        "replays (damaged files are moved to <data_dir>/damaged.<time>/), then read the nodes and "
        "journal their indexes and a task counter past every uid a client may hold (tasks are lost)",
    )

    check = sub.add_parser("check-config", help="validate the config and print the topology")
    check.add_argument("--config", metavar="PATH", help="config file (default: $MIROIR_CONFIG, ./miroir.toml)")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    devnode = sub.add_parser("devnode", help="run a Meilisearch-compatible development node (not for production)")
    devnode.add_argument("--port", type=int, default=7700, help="port to listen on (default 7700)")
    devnode.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    devnode.add_argument("--master-key", metavar="KEY", help="require this master key (default: no key, open)")
    devnode.add_argument("--data-dir", metavar="DIR", help="persist to DIR (default: in memory)")
    devnode.add_argument("--import-dump", metavar="FILE", help="load a Meilisearch dump (v5 or v6) before listening")
    devnode.add_argument("--dump-dir", metavar="DIR", help="where POST /dumps writes (default: DATA_DIR/dumps or ./dumps)")
    devnode.add_argument("--snapshot-dir", metavar="DIR",
                         help="where POST /snapshots writes data.ms.snapshot/ (default: DATA_DIR/snapshots or ./snapshots)")

    emb = sub.add_parser("embedder", help="run a local deterministic embedder (a `rest` embedder for tests and demos)")
    emb.add_argument("--port", type=int, default=7800, help="port to listen on (default 7800)")
    emb.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    emb.add_argument("--dimensions", type=int, default=256, help="length of each embedding (default 256)")

    dev = sub.add_parser("dev", help="run devnodes and a Miroir in front of them, for development")
    dev.add_argument("--nodes", type=int, default=3, help="devnodes to start (default 3)")
    dev.add_argument("--groups", type=int, default=1, help="replica groups the nodes are spread over (default 1)")
    dev.add_argument("--rf", type=int, default=1, help="copies of each shard in each group (default 1)")
    dev.add_argument("--shards", type=int, default=48, help="shards of each new index (default 48)")
    dev.add_argument("--port", type=int, default=7700, help="port Miroir listens on (default 7700)")
    dev.add_argument("--master-key", metavar="KEY", help="Miroir's master key (default: no key, open)")
    dev.add_argument("--data-dir", metavar="DIR",
                     help="keep the journal and the nodes' data in DIR across runs (default: a temporary dir)")
    dev.add_argument("--log-format", choices=["json", "console"], default="console",
                     help="log line format (default console)")
    dev.add_argument("--embedder", action="store_true", help="also run a local embedder for hybrid search (no network)")

    def admin(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--url", help="Miroir to talk to (default: $MIROIR_URL, http://127.0.0.1:7700)")
        parser.add_argument("--admin-key", metavar="KEY", help="admin key (default: $MIROIR_ADMIN_KEY)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    admin(sub.add_parser("status", help="nodes (health, lag, backlog), shards and rebalance of a running Miroir; exit 3 when a shard has no reachable owner"))
    nodes = sub.add_parser("nodes", help="add, drain, remove or move nodes of a running Miroir")
    nsub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", parser_class=_Parser, required=True)
    add = admin(nsub.add_parser("add", help="a node joins; its shards are copied to it"))
    add.add_argument("id", help="the new node's id (unique, kept for its life)")
    add.add_argument("node_url", metavar="URL", help="where the node answers, e.g. http://10.0.0.4:7700")
    add.add_argument("--group", help="replica group (default g0)")
    add.add_argument(
        "--weight", type=float, help="relative capacity: the node's share of its group's shards (default 1)"
    )
    drain = admin(nsub.add_parser("drain", help="move every shard off a node"))
    drain.add_argument("id", help="the node to drain")
    remove = admin(nsub.add_parser("remove", help="forget a drained node (--force: a dead one)"))
    remove.add_argument("id", help="the node to forget")
    remove.add_argument("--force", action="store_true", help="the node is dead: re-create its shards elsewhere")
    seturl = admin(nsub.add_parser("set-url", help="a node moved: tell Miroir its new address (journaled)"))
    seturl.add_argument("id", help="the node that moved")
    seturl.add_argument("node_url", metavar="URL", help="its new address; it must answer there")
    imp = admin(sub.add_parser("import-dump", help="load a Meilisearch dump (v6 or v5) into a running Miroir"))
    imp.add_argument("file", metavar="FILE", help="a .dump file written by Meilisearch's or Miroir's POST /dumps")
    over = imp.add_mutually_exclusive_group()
    over.add_argument("--resume", action="store_true",
                      help="continue an interrupted import: skip indexes whose document count and settings match")
    over.add_argument("--force", action="store_true", help="delete the dump's indexes that already exist, then import")
    imp.add_argument("--batch-size", type=int, default=5000, metavar="N",
                     help="documents per request (default 5000; smaller for a low payload limit)")
    dump = admin(sub.add_parser("dump", help="write a dump of the whole cluster (POST /dumps) and wait for it"))
    dump.add_argument("--no-wait", action="store_true", help="print the task and return at once")
    snap = admin(sub.add_parser("snapshot", help="take a consistent snapshot of the cluster (POST /snapshots) and wait for it"))
    snap.add_argument("--no-wait", action="store_true", help="print the task and return at once")
    rest = sub.add_parser("restore", help="put a cluster snapshot's journal in place (Miroir stopped); prints how to restore each node")
    rest.add_argument("manifest", metavar="MANIFEST", help="a snapshot's manifest.json (<snapshots.dir>/<task uid>.snapshot/)")
    rest.add_argument("--data-dir", required=True, metavar="DIR", help="Miroir's data dir to restore into (store.data_dir)")
    rest.add_argument("--force", action="store_true", help="restore over an existing journal (moved aside to DIR/replaced.<time>/)")
    rest.add_argument("--json", action="store_true", help="machine-readable output")
    rsh = admin(sub.add_parser(
        "reshard", help="split an index to more shards online (and move it to placement 2); exit 2 if S2 is not a multiple of S"
    ))
    rsh.add_argument("index", metavar="INDEX", help="the index to reshard")
    rsh.add_argument("--shards", type=int, required=True, metavar="S2",
                     help="its new shard count: a multiple of the current one (the same: move it to placement 2 only)")
    rsh.add_argument("--no-wait", action="store_true", help="print the task and return at once")
    reb = admin(sub.add_parser("rebalance", help="show, watch, pause or resume the rebalance"))
    reb.add_argument("--watch", action="store_true", help="follow the moves until done (progress on stderr)")
    mode = reb.add_mutually_exclusive_group()
    mode.add_argument("--pause", action="store_true", help="hold the moves (journaled: a restart keeps them held)")
    mode.add_argument("--resume", action="store_true", help="continue held moves")
    return p


# --- check-config ------------------------------------------------------------------------


class NodeTopology(msgspec.Struct):
    id: str
    url: str
    shards: list[int]


class GroupTopology(msgspec.Struct):
    name: str
    nodes: list[NodeTopology]


class Topology(msgspec.Struct):
    ok: bool
    config: str | None
    shards: int
    replication_factor: int
    write_consistency: str
    data_dir: str
    bind: str
    groups: list[GroupTopology]


def topology(config: Config, source: str | None) -> Topology:
    """Which shards each node owns of a new index (default shard count, the placement new
    indexes get, the nodes' weights) on a fresh cluster."""
    from miroir.core.placement import CURRENT_PLACEMENT, Layout, owner_table
    from miroir.core.routing import NodeRef, groups_of

    groups = groups_of(NodeRef(n.id, n.group) for n in config.nodes)
    weights = {n.id: n.weight for n in config.nodes}
    layout = Layout(config.cluster.shards, CURRENT_PLACEMENT)
    table = {g: owner_table(layout, ids, config.cluster.replication_factor, weights) for g, ids in groups.items()}
    urls = {n.id: n.url for n in config.nodes}
    out: list[GroupTopology] = []
    for g, ids in groups.items():
        held: dict[str, list[int]] = {i: [] for i in ids}
        for shard, owners in enumerate(table[g]):
            for node in owners:
                held[node].append(shard)
        out.append(GroupTopology(g, [NodeTopology(i, urls[i], held[i]) for i in ids]))
    return Topology(
        ok=True,
        config=source,
        shards=config.cluster.shards,
        replication_factor=config.cluster.replication_factor,
        write_consistency=config.cluster.write_consistency,
        data_dir=config.store.data_dir,
        bind=config.server.bind,
        groups=out,
    )


# What each `cluster.write_consistency` asks of a shard's owners (design §4.5).
_CONSISTENCY = {
    "one": "writes accepted while one owner of each shard can take them (the others catch up from a backlog)",
    "majority": "writes accepted while floor(RF/2)+1 owners of each shard in one group can take them",
    "all": "writes accepted only while every owner of each shard can take them",
}


def _format_topology(t: Topology) -> str:
    lines = [
        f"config {t.config or '(defaults)'}: OK",
        f"listen {t.bind}, data dir {t.data_dir}",
        f"{t.shards} shards per index, replication factor {t.replication_factor}, {len(t.groups)} group(s)",
        f"write consistency {t.write_consistency}: {_CONSISTENCY[t.write_consistency]}",
    ]
    if not t.groups:
        lines.append("no nodes configured (add [[nodes]] entries, or add nodes at run time)")
    for g in t.groups:
        lines.append(f"group {g.name}: {len(g.nodes)} node(s)")
        width = max(len(n.id) for n in g.nodes)
        for n in g.nodes:
            lines.append(f"  {n.id:<{width}}  {n.url}  {len(n.shards):>4} shards  {','.join(map(str, n.shards))}")
    return "\n".join(lines)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        if args.json:
            print(msgspec.json.encode({"ok": False, "error": e.message}).decode())
        return _die(e.message, EXIT_USAGE)
    path = resolve_config_path(args.config)
    t = topology(config, str(path) if path else None)
    print(msgspec.json.encode(t).decode() if args.json else _format_topology(t))
    return EXIT_OK


# --- serve -------------------------------------------------------------------------------


_find = find_exception


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        return _die(e.message, EXIT_USAGE)

    import trio

    from miroir import gcpolicy
    from miroir.daemon import StartupError, run_miroir
    from miroir.logsetup import get_logger, setup_logging

    setup_logging(args.log_format or config.log.format, config.log.level)
    log = get_logger("miroir.cli")

    async def main() -> None:
        import signal

        stop = trio.Event()
        # Opened before the daemon starts, so a SIGTERM during start-up is not lost.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def watch() -> None:
                async for signum in signals:
                    log.info("signal received", signal=signal.Signals(signum).name)
                    stop.set()  # a second signal changes nothing: the grace period bounds the wait

            async def daemon(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await run_miroir(config, shutdown_trigger=stop.wait, recover=args.recover, task_status=task_status)
                finally:
                    nursery.cancel_scope.cancel()  # `watch` ends with the daemon

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await nursery.start(daemon)
                # The start-up heap is never walked again (gcpolicy).
                log.info("gc settled", **gcpolicy.settle())

    gcpolicy.tune()
    try:
        trio.run(main)
    except BaseException as exc:
        startup = _find(exc, StartupError)
        if startup is not None:
            return _die(str(startup), EXIT_FAILURE)
        if _find(exc, KeyboardInterrupt) is not None:
            return EXIT_OK
        log.error("daemon crashed", exc_info=exc)
        return _die(f"daemon crashed: {exc!r} (see the log above)", EXIT_FAILURE)
    return EXIT_OK


# --- devnode / dev -----------------------------------------------------------------------


def _missing(module: str, exc: ModuleNotFoundError) -> bool:
    return exc.name is not None and module.startswith(exc.name)


def cmd_devnode(args: argparse.Namespace) -> int:
    try:
        from miroir.devnode.server import run_devnode
    except ModuleNotFoundError as e:
        if not _missing("miroir.devnode.server", e):
            raise
        return _die("devnode is not part of this build")
    return run_devnode(
        host=args.bind, port=args.port, master_key=args.master_key, data_dir=args.data_dir,
        import_dump=args.import_dump, dump_dir=args.dump_dir, snapshot_dir=args.snapshot_dir,
    )


def cmd_embedder(args: argparse.Namespace) -> int:
    return run_embedder(args.port, args.bind, args.dimensions)


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        from miroir.devmode import run_dev
    except ModuleNotFoundError as e:
        if not _missing("miroir.devmode", e):
            raise
        return _die("dev mode is not part of this build")
    return run_dev(args)


# --- admin commands against a running Miroir ----------------------------------------------

WATCH_INTERVAL_S = 0.5
BAR_WIDTH = 30


def _print_json(obj: object) -> None:
    print(msgspec.json.encode(obj).decode())


def _rebalance_line(s: dict) -> str:
    p = s.get("progress")
    if not p:
        pending = " (a change is waiting to be planned)" if s.get("pendingChange") else ""
        last = s.get("last")
        tail = f"; last plan copied {last['documentsCopied']} documents" if last else ""
        return f"rebalance: {s['status']}{pending}{tail}"
    eta = f", ETA {p['etaSeconds']:.0f}s" if p.get("etaSeconds") is not None else ""
    return (
        f"rebalance: {s['status']}, {p['done']}/{p['units']} units done, {p['switched']} switched, "
        f"{p['copying']} copying; {p['documentsCopied']} documents copied at {p['rate']:.0f}/s{eta}"
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _health_cell(h: dict | None) -> str:
    """`up 1.2ms`, `suspect (2 failures)`, `DOWN 12s`: the prober's view of one node."""
    if not h:
        return "unknown"
    state = h["state"]
    if state == "down":
        age = h.get("state_age_s")
        return "DOWN" + (f" {age:.0f}s" if age is not None else "")
    if state == "suspect":
        return f"suspect ({h['consecutive_failures']} failed)"
    rtt = h.get("probe_rtt_ms")
    return "up" + (f" {rtt:.1f}ms" if rtt is not None else "")


def _repair_cell(r: dict | None) -> str:
    """How far behind a node is: its hinted-handoff backlog, or the repair it is in."""
    if not r or r["state"] == "ok":
        return "in sync"
    if r["state"] == "backlog":
        return f"backlog {r['backlogOps']} ops / {_size(r['backlogBytes'])}"
    if r["state"] == "refilling":
        return f"refilling ({r.get('refillReason') or 'copy lost'})"
    return r["state"].replace("_", " ")  # held, catching up


def uncovered(topo: dict) -> dict[str, list[int]]:
    """Index uid -> shards with no reachable owner in any group (health not `down`)."""
    reachable = {n["id"] for n in topo["nodes"] if (n.get("health") or {}).get("state") != "down"}
    out: dict[str, list[int]] = {}
    if not topo["indexes"] and topo["nodes"] and not reachable:
        return {"(new indexes)": list(range(topo["defaultShards"]))}  # nothing could create one
    for uid, idx in topo["indexes"].items():
        missing = [
            s for s in range(idx["shards"])
            if not any(n in reachable for owners in idx["owners"].values() for n in owners[s])
        ]
        if missing:
            out[uid] = missing
    return out


def _format_status(topo: dict, nodes: list[dict], rb: dict) -> str:
    lines = [f"{len(topo['indexes'])} index(es), {topo['defaultShards']} shards by default, RF {topo['replicationFactor']}"]
    live = {n["id"]: n for n in topo["nodes"]}
    by_group: dict[str, list[dict]] = {}
    for n in nodes:
        by_group.setdefault(n["group"], []).append(n)
    for g, ns in sorted(by_group.items()):
        lines.append(f"group {g}: {len(ns)} node(s)")
        rows = [("node", "state", "health", "lag", "shards", "url")]
        for n in ns:
            t = live.get(n["id"], {})
            rows.append((n["id"], n["state"], _health_cell(t.get("health")), _repair_cell(t.get("repair")),
                         str(len(n["shards"])), n["url"]))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) if i != 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         + "  " + r[5])
    lines += _capacity_lines(topo.get("capacity"))
    lines.append(_rebalance_line(rb))
    gaps = uncovered(topo)
    if gaps:
        lines.append("UNAVAILABLE: shards with no reachable owner (reads of them fail):")
        lines += [f"  {uid}: shards {', '.join(map(str, ss))}" for uid, ss in sorted(gaps.items())]
    else:
        lines.append("every shard has a reachable owner")
    return "\n".join(lines)


def _capacity_lines(cap: dict | None) -> list[str]:
    """Per node: weight, shard copies, documents, share vs target (issue 17)."""
    if not cap or not cap.get("nodes"):
        return []
    width = max(len(n["id"]) for n in cap["nodes"])
    lines = [f"capacity (share of its group vs weighted target, bound ±{cap['bound']:.0%}):"]
    for n in cap["nodes"]:
        docs = "?" if n["documents"] is None else str(n["documents"])
        flag = "  OVER BOUND" if n["overBound"] else ""
        lines.append(
            f"  {n['id']:<{width}}  weight {n['weight']:g}  {n['shards']:>4} shards  {docs:>9} documents  "
            f"{n['share']:6.1%} of {n['group']} vs {n['target']:6.1%} ({n['ratio']:.2f}x){flag}"
        )
    usable = cap.get("usableCapacity")
    if usable is not None:
        lines.append(f"usable capacity: {usable:.0%} of the fleet (the busiest node fills first)")
    lines += [f"warning: {w}" for w in cap.get("warnings", [])]
    return lines


def _bar(s: dict) -> str:
    p = s.get("progress") or {}
    units, done = p.get("units", 0), p.get("done", 0)
    filled = int(BAR_WIDTH * done / units) if units else BAR_WIDTH
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] " + _rebalance_line(s).removeprefix("rebalance: ")


def _watch(client: object, as_json: bool) -> dict:
    import time

    tty = sys.stderr.isatty()
    while True:
        s = client.rebalance()  # type: ignore[attr-defined]
        line = "; ".join([_bar(s)] + [_reshard_line(r) for r in s.get("reshards") or []])
        print(("\r\x1b[K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)
        if s["status"] == "idle" and not s.get("pendingChange"):
            if tty:
                print(file=sys.stderr)
            return s
        time.sleep(WATCH_INTERVAL_S)


def cmd_admin(args: argparse.Namespace) -> int:
    from miroir.cliclient import AdminClient, AdminError

    try:
        with AdminClient(args.url, args.admin_key) as client:
            if args.command == "status":
                topo, rb = client.topology(), client.rebalance()
                nodes = rb.pop("nodes", [])
                if args.json:
                    _print_json({"topology": topo, "nodes": nodes, "rebalance": rb, "uncovered": uncovered(topo)})
                else:
                    print(_format_status(topo, nodes, rb))
                return EXIT_UNCOVERED if uncovered(topo) else EXIT_OK
            if args.command == "nodes":
                if args.nodes_command == "set-url":
                    out = client.set_node_url(args.id, args.node_url)
                    if args.json:
                        _print_json(out)
                    else:
                        n = out["node"]
                        print(f"node {n['id']} ({n['state']}, group {n['group']}): {out['previousUrl']} -> {n['url']}")
                    return EXIT_OK
                if args.nodes_command == "add":
                    out = client.add_node(args.id, args.node_url, args.group, args.weight)
                elif args.nodes_command == "drain":
                    out = client.drain_node(args.id)
                else:
                    out = client.remove_node(args.id, args.force)
                if args.json:
                    _print_json(out)
                else:
                    n = out["node"]
                    print(f"node {n['id']} ({n['url']}, group {n['group']}): {n['state']}")
                    print(_rebalance_line(out["rebalance"]))
                return EXIT_OK
            # rebalance
            if args.pause:
                out = client.pause()
            elif args.resume:
                out = client.resume()
            else:
                out = client.rebalance()
            if args.watch:
                out = _watch(client, args.json)
            if args.json:
                _print_json(out)
            else:
                print(_rebalance_line(out))
            return EXIT_OK
    except AdminError as e:
        return _die(str(e))


def cmd_import_dump(args: argparse.Namespace) -> int:
    from miroir.cliclient import AdminClient, AdminError
    from miroir.core.dumpformat import DumpRefused
    from miroir.dumpfile import DumpReader
    from miroir.dumpimport import DumpImporter, ImportFailed

    def progress(event: dict) -> None:
        if args.json:
            return
        kind = event["event"]
        if kind == "start":
            line = f"importing {event['dump']} (format {event['version']}, written by {event['writtenBy']}): {event['indexes']} index(es)"
        elif kind == "index":
            line = f"index {event['uid']}: {event['status']}, {event['documents']}/{event['of']} documents"
        elif kind == "keys":
            line = f"keys: {event['created']} created, {event['existing']} already there, {event['refused']} refused"
        else:
            line = f"done in {event['seconds']:.1f}s"
        print(line, file=sys.stderr, flush=True)

    try:
        with DumpReader(args.file) as reader, AdminClient(args.url, args.admin_key) as client:
            result = DumpImporter(client, reader, force=args.force, resume=args.resume, progress=progress,
                                  batch_docs=max(1, args.batch_size)).run()
    except DumpRefused as e:
        return _die(str(e), EXIT_USAGE)
    except FileNotFoundError as e:
        return _die(f"{args.file}: {e.strerror}", EXIT_USAGE)
    except (ImportFailed, AdminError) as e:
        return _die(f"import stopped: {e} (rerun with --resume to continue)")
    if args.json:
        _print_json(result)
    else:
        for r in result["keys"]["refused"]:
            print(f"warning: key {r} not imported", file=sys.stderr)
        if result["notReplayed"]:
            print(f"warning: tasks still enqueued in the dump were not replayed: {result['notReplayed']}", file=sys.stderr)
        print(f"imported {sum(i['documents'] for i in result['indexes'])} documents into "
              f"{len(result['indexes'])} index(es), {result['keys']['created']} key(s)")
    return EXIT_OK


def _cluster_job(args: argparse.Namespace, path: str, what: str, written: Callable[[dict[str, Any], int], str]) -> int:
    """POST a cluster-wide job (`/dumps`, `/snapshots`) and, unless `--no-wait`, poll its
    task until it ends; print `written(task, uid)` once it succeeded."""
    import time

    from miroir.cliclient import AdminClient, AdminError
    from miroir.core.taskfold import TERMINAL

    try:
        with AdminClient(args.url, args.admin_key) as client:
            task = client.request("POST", path)
            uid = task["taskUid"]
            if not args.no_wait:
                while task.get("status") not in TERMINAL:
                    time.sleep(WATCH_INTERVAL_S)
                    task = client.request("GET", f"/tasks/{uid}")
    except AdminError as e:
        return _die(str(e))
    if args.json:
        _print_json(task)
        return EXIT_OK
    if task.get("status") == "failed":
        return _die(f"{what} failed: {(task.get('error') or {}).get('message')}")
    if args.no_wait:
        print(f"{what} task {uid} enqueued")
        return EXIT_OK
    if task.get("status") == "canceled":
        return _die(f"{what} canceled (task {uid})")
    print(written(task, uid))
    return EXIT_OK


def _reshard_line(r: dict) -> str:
    return (
        f"reshard {r['indexUid']} {r['oldShards']} -> {r['newShards']} shards: {r['phase']}, "
        f"{r['retagged']}/{r['toRetag']} re-tagged ({r['documentsRetagged']} documents), "
        f"{r['switched']}/{r['moves']} moved ({r['documentsCopied']} documents copied)"
        + (f"; retrying: {r['error']}" if r.get("error") else "")
    )


def cmd_reshard(args: argparse.Namespace) -> int:
    """POST the reshard; unless `--no-wait`, follow its progress (stderr) until its task ends."""
    import time

    from miroir.cliclient import AdminClient, AdminError
    from miroir.core.taskfold import TERMINAL

    try:
        with AdminClient(args.url, args.admin_key) as client:
            task = client.reshard(args.index, args.shards)
            uid = task["taskUid"]
            while not args.no_wait and task.get("status") not in TERMINAL:
                for r in client.rebalance().get("reshards") or []:
                    if r["taskUid"] == uid:
                        print(_reshard_line(r), file=sys.stderr, flush=True)
                time.sleep(WATCH_INTERVAL_S)
                task = client.request("GET", f"/tasks/{uid}")
    except AdminError as e:
        return _die(str(e), EXIT_USAGE if e.code in ("miroir_invalid_shards", "bad_request") else EXIT_FAILURE)
    if args.json:
        _print_json(task)
    elif args.no_wait:
        print(f"reshard task {uid} enqueued")
    if task.get("status") == "failed":
        return _die(f"reshard failed: {(task.get('error') or {}).get('message')}")
    if not args.json and not args.no_wait:
        print(f"index {args.index} resharded to {args.shards} shards on placement 2 (task {uid})")
    return EXIT_OK


def cmd_dump(args: argparse.Namespace) -> int:
    return _cluster_job(args, "/dumps", "dump", lambda task, uid: f"dump {task['details']['dumpUid']} written (task {uid})")


def cmd_snapshot(args: argparse.Namespace) -> int:
    return _cluster_job(
        args,
        "/snapshots",
        "snapshot",
        lambda _, uid: f"snapshot written (task {uid}): <snapshots.dir>/{uid}.snapshot/manifest.json on Miroir's host",
    )


def cmd_restore(args: argparse.Namespace) -> int:
    from miroir.snapshotrestore import RestoreRefused, instructions, restore

    try:
        nodes = restore(args.manifest, args.data_dir, force=args.force)
    except RestoreRefused as e:
        return _die(str(e), EXIT_USAGE)
    except OSError as e:
        return _die(f"cannot restore into {args.data_dir}: {e}")
    if args.json:
        _print_json({"dataDir": args.data_dir, "nodes": [msgspec.to_builtins(n) for n in nodes]})
        return EXIT_OK
    print(f"Miroir's journal restored into {args.data_dir}. Restore every node below under the same id "
          f"(list its new URL in miroir.toml's [[nodes]] if it changed), then start Miroir.")
    for line in instructions(nodes):
        print(line)
    return EXIT_OK


COMMANDS = {
    "serve": cmd_serve,
    "check-config": cmd_check_config,
    "devnode": cmd_devnode,
    "dev": cmd_dev,
    "embedder": cmd_embedder,
    "status": cmd_admin,
    "nodes": cmd_admin,
    "rebalance": cmd_admin,
    "reshard": cmd_reshard,
    "import-dump": cmd_import_dump,
    "dump": cmd_dump,
    "snapshot": cmd_snapshot,
    "restore": cmd_restore,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `miroir check-config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
