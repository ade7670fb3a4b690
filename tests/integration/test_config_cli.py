"""Config errors through the real CLI (`python -m miroir check-config` / `serve` as
subprocesses): exit 2, one line naming the key path, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from miroir.config import ConfigError, config_from_dict


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "miroir.toml"
    p.write_text(text)
    return str(p)


def error_of(d: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(d)
    return info.value.message


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "miroir", *args], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_cli_broken_config_exits_2_with_key_path(tmp_path):
    path = write(tmp_path, '[[nodes]]\nid = "a"\nurl = "http://h:1"\n[[nodes]]\nid = "a"\nurl = "http://h:2"\n')
    r = run_cli("check-config", "--config", path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line, no traceback
    assert r.stderr.startswith("miroir: error: nodes[1].id: duplicate")


def test_cli_serve_with_bad_config_exits_2_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    path = write(tmp_path, f'[store]\ndata_dir = "{data}"\n[cluster]\nshards = 0\n')
    r = run_cli("serve", "--config", path, cwd=tmp_path)
    assert r.returncode == 2
    assert "cluster.shards" in r.stderr and "Traceback" not in r.stderr
    assert not data.exists()


def test_cli_bad_tasks_section_exits_2(tmp_path):
    path = write(tmp_path, "[tasks]\nmax_kept = 1\n")
    r = run_cli("check-config", "--config", path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("miroir: error: tasks.max_kept: must be >= 2"), r.stderr


def test_write_consistency_levels_default_and_check_config(tmp_path):
    assert config_from_dict({}).cluster.write_consistency == "one"
    for level in ("one", "majority", "all"):
        assert config_from_dict({"cluster": {"write_consistency": level}}).cluster.write_consistency == level
    assert error_of({"cluster": {"write_consistency": "quorum"}}) == (
        "cluster.write_consistency: 'quorum' is not one of 'one', 'majority', 'all'"
    )
    assert error_of({"log": {"format": "xml"}}) == "log.format: 'xml' is not one of 'json', 'console'"
    path = write(tmp_path, '[cluster]\nreplication_factor = 2\nwrite_consistency = "majority"\n'
                 + "".join(f'[[nodes]]\nid = "n{i}"\nurl = "http://127.0.0.1:{7701 + i}"\n' for i in range(3)))
    r = run_cli("check-config", "--config", path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "write consistency majority: " in r.stdout
    r = run_cli("check-config", "--config", path, "--json", cwd=tmp_path)
    assert '"write_consistency":"majority"' in r.stdout
