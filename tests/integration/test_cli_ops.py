"""Issue 19 item 5: `miroir status` shows health, lag and backlog and exits 3 when a shard
has no reachable owner; `miroir nodes set-url` (and the config's url of a known node) move
a node; every option has help text; exit codes are documented in `miroir --help`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time

import httpx

from miroir.cli import EXIT_UNCOVERED, build_parser, main
from tests.integration.test_cli_admin import ADMIN_KEY, cli, one_line_error
from tests.support.devnodes import free_port, start_devnodes, wait_task
from tests.support.miroir_proc import make_config, serve_miroir

WAIT_S = 30.0
FAST_HEALTH = {"interval_ms": 200, "timeout_ms": 500, "unhealthy_threshold": 2, "recovery_threshold": 1}


def _walk(parser: argparse.ArgumentParser, path: str = "miroir"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_has_help_and_exit_codes_are_documented():
    missing = [
        f"{path} {'/'.join(a.option_strings) or a.dest}"
        for path, a in _walk(build_parser())
        if not a.help or a.help == argparse.SUPPRESS
    ]
    assert missing == []
    r = cli("--help", key=None)
    assert r.returncode == 0
    for code in ("0  success", "1  failure", "2  usage", "3  (status)"):
        assert code in r.stdout, r.stdout
    # a usage mistake: one line, status 2
    r = cli("nodes", "set-url", "n1", key=None)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _status_in_process(url: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["status", "--url", url, "--admin-key", ADMIN_KEY])
    return rc, out.getvalue()


def _status_until(url: str, want_rc: int, needle: str) -> str:
    """Poll `miroir status` in this process (no interpreter start per poll), then run the
    real command once and check it says the same."""
    deadline = time.monotonic() + WAIT_S
    while True:
        rc, out = _status_in_process(url)
        if rc == want_rc and needle in out:
            break
        assert time.monotonic() < deadline, (want_rc, needle, rc, out)
        time.sleep(0.1)
    r = cli("status", url=url)
    assert r.returncode == want_rc and needle in r.stdout and r.stderr == "", (r.returncode, r.stdout, r.stderr)
    return r.stdout


def _line(out: str, node: str) -> str:
    return next(ln for ln in out.splitlines() if ln.strip().startswith(node + " "))


def _move(node) -> None:
    """The devnode comes back on another port with its data (the host moved)."""
    node.kill()
    node.port = free_port()
    node.url = f"http://127.0.0.1:{node.port}"
    node.start()
    node.wait_ready()


def test_status_down_node_and_set_url():
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [f"{tmp}/d{i}" for i in range(3)]
        with start_devnodes(3, data_dirs=dirs) as devs:
            extra = {"auth": {"admin_key": ADMIN_KEY}, "health": FAST_HEALTH}
            config = make_config(devs, groups=1, rf=2, shards=6, data_dir=f"{tmp}/miroir", extra=extra)
            n1, n2, n3 = devs
            with serve_miroir(config) as (url, _):
                h = httpx.Client(base_url=url, timeout=30)
                r = h.post("/indexes/ops/documents", json=[{"id": i, "t": f"x {i}"} for i in range(120)])
                assert wait_task(url, r.json()["taskUid"])["status"] == "succeeded"
                out = _status_until(url, 0, "every shard has a reachable owner")
                assert "in sync" in _line(out, "n3") and " up" in _line(out, "n3")

                # n3 down: still covered (RF 2), its line says DOWN, writes queue a backlog for it
                n3.kill()
                out = _status_until(url, 0, "DOWN")
                assert "DOWN" in _line(out, "n3") and "active" in _line(out, "n3")
                r = h.post("/indexes/ops/documents", json=[{"id": i, "t": f"y {i}"} for i in range(120, 180)])
                assert wait_task(url, r.json()["taskUid"])["status"] == "succeeded"
                out = _status_until(url, 0, "backlog")
                assert "backlog" in _line(out, "n3") and "ops" in _line(out, "n3")

                # n2 down as well: the shards n2 and n3 hold together have no reachable owner
                n2.kill()
                out = _status_until(url, EXIT_UNCOVERED, "UNAVAILABLE")
                assert "DOWN" in _line(out, "n2") and "ops: shards" in out
                r = cli("status", "--json", url=url)
                assert r.returncode == EXIT_UNCOVERED and json.loads(r.stdout)["uncovered"]["ops"]

                # both come back at new addresses; n3 is told by the CLI
                old_n3 = f"http://127.0.0.1:{n3.port}"
                _move(n3)
                _move(n2)
                line = one_line_error(cli("nodes", "set-url", "n3", "http://127.0.0.1:9", url=url))
                assert "(miroir_node_unavailable)" in line
                line = one_line_error(cli("nodes", "set-url", "n3", n1.url, url=url))
                assert "(miroir_node_already_exists)" in line
                line = one_line_error(cli("nodes", "set-url", "nope", n3.url, url=url))
                assert "(miroir_node_not_found)" in line
                r = cli("nodes", "set-url", "n3", n3.url, url=url)
                assert r.returncode == 0, r.stderr
                assert f"{old_n3} -> {n3.url}" in r.stdout
                # n3 answers again, so every shard is covered; n2 is not told and stays down
                out = _status_until(url, 0, "every shard has a reachable owner")
                assert "DOWN" in _line(out, "n2") and " up" in _line(out, "n3")

            # Miroir restarts with n2's new url in its config: honoured (the journal had the old one)
            config = make_config(devs, groups=1, rf=2, shards=6, data_dir=f"{tmp}/miroir", extra=extra)
            with serve_miroir(config) as (url, _):
                out = _status_until(url, 0, "every shard has a reachable owner")
                topo = json.loads(cli("status", "--json", url=url).stdout)["topology"]
                assert {n["id"]: n["url"] for n in topo["nodes"]} == {"n1": n1.url, "n2": n2.url, "n3": n3.url}
                # n3's backlog was replayed at its new address
                _status_until(url, 0, "every shard")
                deadline = time.monotonic() + WAIT_S
                while "backlog" in (out := _status_in_process(url)[1]):
                    assert time.monotonic() < deadline, out
                    time.sleep(0.2)
                h = httpx.Client(base_url=url, timeout=30)
                hits = h.post("/indexes/ops/documents/fetch", json={"limit": 1000}).json()
                assert hits["total"] == 180, hits


def test_status_without_index_and_every_node_down_exits_3():
    from tests.support.miroir_proc import start_cluster

    with start_cluster(nodes=1, shards=4, extra={"auth": {"admin_key": ADMIN_KEY}, "health": FAST_HEALTH}) as c:
        _status_until(c.url, 0, "every shard has a reachable owner")
        c.devnodes[0].kill()
        out = _status_until(c.url, EXIT_UNCOVERED, "UNAVAILABLE")
        assert "(new indexes): shards 0, 1, 2, 3" in out
