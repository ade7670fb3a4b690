"""The systemd unit and the shipped example config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from miroir.config import load_config
from tests.support.paths import REPO

UNIT = REPO / "packaging" / "miroir.service"


def unit_options() -> dict[str, list[str]]:
    opts: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            opts.setdefault(k, []).append(v)
    return opts


def test_unit_has_notify_watchdog_state_and_hardening():
    o = unit_options()
    assert o["Type"] == ["notify"]
    assert o["ExecStart"] == ["/usr/local/bin/miroir serve --config /etc/miroir/miroir.toml"]
    assert "WatchdogSec" in o
    assert o["StateDirectory"] == ["miroir"]
    assert "MIROIR_DATA_DIR=/var/lib/miroir" in o["Environment"]
    assert o.get("DynamicUser") == ["yes"] or o.get("User", ["root"]) != ["root"]
    for key, value in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ]:
        assert o[key] == [value], key


def installed_miroir() -> str | None:
    candidate = Path(sys.executable).parent / "miroir"
    if candidate.exists():
        return str(candidate)
    return shutil.which("miroir")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    exe = installed_miroir()
    if exe is None:
        pytest.skip("the miroir script is not installed")
    unit = tmp_path / "miroir.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/miroir", exe))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "miroir.service" not in r.stderr, r.stderr  # no warning about our unit


def test_shipped_example_config_is_valid():
    c = load_config(str(REPO / "miroir.toml"), env={})
    assert [(n.id, n.url, n.group) for n in c.nodes] == [
        (f"n{i}", f"http://127.0.0.1:{7700 + i}", "g0") for i in (1, 2, 3)
    ]
    assert (c.cluster.shards, c.cluster.replication_factor, c.store.data_dir) == (48, 1, "./miroir-data")


def test_readme_mentions_install_steps():
    text = (REPO / "packaging" / "README.md").read_text()
    for needle in ("systemctl enable", "miroir.env", "MIROIR_MASTER_KEY", "check-config"):
        assert needle in text
