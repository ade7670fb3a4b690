"""`miroir status|nodes|rebalance` against a running Miroir: exit codes, --json, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster

ADMIN_KEY = "admin-secret"
CLI_TIMEOUT_S = 120


def cli(*args: str, url: str | None = None, key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MIROIR_URL", "MIROIR_ADMIN_KEY")}
    if url is not None:
        env["MIROIR_URL"] = url
    if key is not None:
        env["MIROIR_ADMIN_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "miroir", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env
    )


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("miroir: error:"), r.stderr
    return lines[0]


def test_admin_commands_against_running_miroir():
    with start_devnodes(1) as spare, start_cluster(nodes=2, shards=8, extra={"auth": {"admin_key": ADMIN_KEY}}) as c:
        with httpx.Client(base_url=c.url, timeout=30) as h:
            r = h.post("/indexes/cli/documents", json=[{"id": i, "t": f"x {i}"} for i in range(300)])
            assert wait_task(c.url, r.json()["taskUid"])["status"] == "succeeded"

        # status, human and --json; the URL from --url, the key from the environment
        r = cli("status", "--url", c.url)
        assert r.returncode == 0, r.stderr
        assert "group g0: 2 node(s)" in r.stdout and "rebalance: idle" in r.stdout
        r = cli("status", "--json", url=c.url)
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert {n["id"] for n in st["nodes"]} == {"n1", "n2"} and st["rebalance"]["status"] == "idle"

        # the server refuses: wrong key, not drained, unknown node -> exit 1, one line
        line = one_line_error(cli("status", url=c.url, key="wrong"))
        assert "(invalid_api_key)" in line or "(miroir_admin_key_required)" in line
        line = one_line_error(cli("nodes", "remove", "n1", url=c.url))
        assert "(miroir_node_not_drained)" in line
        line = one_line_error(cli("nodes", "drain", "nope", url=c.url))
        assert "(miroir_node_not_found)" in line
        # unreachable Miroir
        line = one_line_error(cli("status", url="http://127.0.0.1:9"))
        assert "cannot reach Miroir" in line

        # pause, add a node (the plan waits), resume and watch it to the end
        r = cli("rebalance", "--pause", "--json", url=c.url)
        assert r.returncode == 0 and json.loads(r.stdout)["paused"] is True
        r = cli("nodes", "add", "n3", spare[0].url, "--group", "g0", "--json", url=c.url)
        assert r.returncode == 0, r.stderr
        added = json.loads(r.stdout)
        assert added["node"]["state"] == "joining" and added["rebalance"]["status"] == "paused"
        line = one_line_error(cli("nodes", "add", "n3", spare[0].url, url=c.url))
        assert "(miroir_node_already_exists)" in line
        line = one_line_error(cli("nodes", "add", "n9", spare[0].url + "/", url=c.url))
        assert "(miroir_node_already_exists)" in line and "A node with url" in line  # url taken
        line = one_line_error(cli("nodes", "add", "n9", "ftp://127.0.0.1:9", url=c.url))
        assert "(miroir_invalid_node)" in line
        r = cli("rebalance", "--resume", url=c.url)
        assert r.returncode == 0, r.stderr
        r = cli("rebalance", "--watch", "--json", url=c.url)
        assert r.returncode == 0, r.stderr
        assert "units" in r.stderr or "idle" in r.stderr  # the progress line(s)
        done = json.loads(r.stdout)
        assert done["status"] == "idle" and done["last"]["newGroups"] == {"g0": ["n1", "n2", "n3"]}

        # drain n3 back out, then remove it
        r = cli("nodes", "drain", "n3", url=c.url)
        assert r.returncode == 0, r.stderr
        assert "node n3" in r.stdout and "draining" in r.stdout
        assert cli("rebalance", "--watch", url=c.url).returncode == 0
        r = cli("nodes", "remove", "n3", "--json", url=c.url)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["node"]["state"] == "removed"
        r = cli("status", "--json", url=c.url)
        assert {n["id"] for n in json.loads(r.stdout)["nodes"]} == {"n1", "n2"}
        with httpx.Client(base_url=c.url, timeout=30) as h:
            total = h.post("/indexes/cli/documents/fetch", json={"limit": 1000}).json()["total"]
            assert total == 300
