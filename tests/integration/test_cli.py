"""The `miroir` command line: help, version, check-config, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from miroir import __version__
from miroir.cli import main
from tests.support.paths import REPO


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "miroir", *args], cwd=cwd, capture_output=True, text=True, timeout=30, env=env
    )


def test_help_lists_subcommands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("serve", "check-config", "devnode", "dev"):
        assert cmd in r.stdout


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"miroir {__version__}"


def test_unknown_subcommand_is_one_line(tmp_path):
    r = run_cli("frobnicate", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("miroir: error:")


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 2
    assert "check-config" in capsys.readouterr().err


def test_check_config_accepts_shipped_example():
    r = run_cli("check-config", "--config", str(REPO / "miroir.toml"))
    assert r.returncode == 0, r.stderr
    assert "group g0: 3 node(s)" in r.stdout


def test_check_config_json_topology(capsys):
    assert main(["check-config", "--config", str(REPO / "miroir.toml"), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["ok"] is True and t["shards"] == 48 and t["replication_factor"] == 1
    [group] = t["groups"]
    assert group["name"] == "g0"
    assert [n["id"] for n in group["nodes"]] == ["n1", "n2", "n3"]
    assert [n["url"] for n in group["nodes"]] == [f"http://127.0.0.1:{p}" for p in (7701, 7702, 7703)]
    # RF 1: every shard held exactly once in the group.
    held = sorted(s for n in group["nodes"] for s in n["shards"])
    assert held == list(range(48))


def test_check_config_rf2_holds_each_shard_twice(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[cluster]\nshards = 8\nreplication_factor = 2\n"
        + "".join(f'[[nodes]]\nid = "n{i}"\nurl = "http://127.0.0.1:{7700 + i}"\n' for i in range(3))
    )
    assert main(["check-config", "--config", str(cfg), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    held = sorted(s for n in t["groups"][0]["nodes"] for s in n["shards"])
    assert held == sorted(list(range(8)) * 2)


def test_check_config_missing_file(tmp_path, capsys):
    assert main(["check-config", "--config", str(tmp_path / "absent.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("miroir: error: config file") and "not found" in err


def test_check_config_json_error(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[cluster]\nreplication_factor = 0\n")
    assert main(["check-config", "--config", str(cfg), "--json"]) == 2
    out = capsys.readouterr()
    assert json.loads(out.out) == {"ok": False, "error": json.loads(out.out)["error"]}
    assert "cluster.replication_factor" in out.err


def test_serve_unreadable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\nbind = "127.0.0.1:0"\n[store]\ndata_dir = "{blocker}/data"\n')
    r = run_cli("serve", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("miroir: error: data dir")
    assert "Traceback" not in r.stderr
