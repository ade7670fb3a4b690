"""`miroir dev` as a real subprocess on a free loopback port; SIGTERM exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from miroir.devmode import node_layout
from tests.support.devnodes import free_port

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
KEY = "dev-master-key"


class Dev:
    def __init__(self, *args: str):
        self.port = free_port()
        cmd = [sys.executable, "-m", "miroir", "dev", "--port", str(self.port), "--log-format", "json", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._out = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True)
        self._errt = threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)
        self._out.start()
        self._errt.start()

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_banner(self) -> dict[str, str]:
        """Miroir URL and node URLs as printed, once the data line appeared."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("data:") for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"miroir dev did not start: {self.proc.poll()}\n" + "\n".join(self.lines + self.err[-30:]))
            time.sleep(0.02)
        out = {}
        for line in self.lines:
            if m := re.match(r"Miroir: (http://\S+)", line):
                out["miroir"] = m.group(1)
            elif m := re.match(r"\s+node (\S+) \((\S+)\): (http://\S+)", line):
                out[f"{m.group(1)}@{m.group(2)}"] = m.group(3)
            elif line.startswith("data: "):
                out["data"] = line.removeprefix("data: ").removesuffix(" (temporary)")
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)


def test_node_layout_round_robin():
    assert node_layout(4, 2) == [("n1", "g0"), ("n2", "g1"), ("n3", "g0"), ("n4", "g1")]


def test_dev_serves_and_stops_cleanly():
    dev = Dev("--nodes", "3", "--groups", "1", "--master-key", KEY)
    try:
        banner = dev.wait_banner()
        assert banner["miroir"] == f"http://127.0.0.1:{dev.port}"
        assert sorted(k for k in banner if "@" in k) == ["n1@g0", "n2@g0", "n3@g0"]
        headers = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(banner["miroir"] + "/health", timeout=5).json() == {"status": "available"}
        assert httpx.get(banner["miroir"] + "/version", headers=headers, timeout=5).status_code == 200
        for key, url in banner.items():
            if "@" in key:  # the devnodes use the same master key
                assert httpx.get(url + "/indexes", headers=headers, timeout=5).status_code == 200
        data = Path(banner["data"])
        assert (data / "miroir").is_dir() and (data / "nodes" / "n1").is_dir()
    finally:
        code = dev.stop()
    assert code == 0, "\n".join(dev.err[-30:])
    assert not data.exists()  # temporary data dir removed on exit


def test_dev_topology_with_kept_data_dir():
    with tempfile.TemporaryDirectory() as tmp:
        dev = Dev("--nodes", "4", "--groups", "2", "--rf", "1", "--shards", "8", "--data-dir", tmp)
        try:
            banner = dev.wait_banner()
            topo = httpx.get(banner["miroir"] + "/_miroir/topology", timeout=5).json()
            assert {(n["id"], n["group"], n["state"]) for n in topo["nodes"]} == {
                ("n1", "g0", "active"), ("n2", "g1", "active"), ("n3", "g0", "active"), ("n4", "g1", "active"),
            }
            assert topo["groups"] == {"g0": ["n1", "n3"], "g1": ["n2", "n4"]}
        finally:
            code = dev.stop()
        assert code == 0, "\n".join(dev.err[-30:])
        assert os.path.isdir(os.path.join(tmp, "miroir"))  # kept when given
