"""Test helper: real devnode subprocesses on loopback, always SIGKILLed at exit.

    with start_devnodes(3, master_key="k") as nodes:
        httpx.get(nodes[0].url + "/health")
        nodes[1].kill(); nodes[1].restart()

`wait_task(url, uid)` polls `GET /tasks/{uid}` until the task is finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import httpx

# A bound on a wait for the node's own word that it listens (a hang detector): a Python
# start on a loaded machine has been seen to take more than 15 s.
STARTUP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.02


def free_port() -> int:
    """A loopback port that was free a moment ago (the devnode binds it next)."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports that were free a moment ago.

    The sockets are held open together: closing each before asking for the next lets
    the kernel hand out the same port twice, and two devnodes would then share one URL.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


# What a devnode prints (stderr) once its port is bound.
LISTENING = "miroir devnode listening on"


class Devnode:
    """One devnode subprocess. `restart()` keeps the port, key and data directory."""

    def __init__(self, port: int, master_key: str | None, data_dir: str | None, extra_args: Sequence[str] = ()):
        self.port = port
        self.master_key = master_key
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the node's log for its life: close()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"} if self.master_key else {}

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [sys.executable, "-m", "miroir.devnode.server", "--port", str(self.port), "--bind", "127.0.0.1"]
        if self.master_key:
            cmd += ["--master-key", self.master_key]
        if self.data_dir:
            cmd += ["--data-dir", self.data_dir]
        cmd += self.extra_args
        self._log_start = os.fstat(self._log.fileno()).st_size
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devnode on port {self.port} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                # Ready once THIS process says it listens: a /health answer alone could
                # come from another server that holds the port.
                if (
                    LISTENING in self._output_since_start()
                    and httpx.get(self.url + "/health", timeout=1.0).status_code == 200
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"devnode on port {self.port} not healthy after {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """On the same port: Miroir knows the node by its URL. The port is free from the
        kill on, and another process may take it for a moment (an outgoing connection's
        ephemeral port comes from the same range): then start again, bounded."""
        self.kill()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            self.start()
            try:
                self.wait_ready()
                return
            except RuntimeError:
                if "address already in use" not in self._output_since_start() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _output_since_start(self) -> str:
        return self._read_log(self._log_start)

    def output(self) -> str:
        return self._read_log(0)

    def _read_log(self, start: int) -> str:
        # pread: the child shares this file's offset, so seeking it would make the
        # child's next write land in the middle of its own log.
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, max(0, size - start), start).decode(errors="replace")

    def close(self) -> None:
        self.kill()
        self._log.close()


@contextlib.contextmanager
def start_devnodes(
    n: int,
    master_key: str | None = None,
    data_dirs: Sequence[str | None] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[list[Devnode]]:
    """Start `n` devnodes in parallel and wait until all answer /health."""
    dirs = list(data_dirs) if data_dirs is not None else [None] * n
    assert len(dirs) == n
    nodes = [Devnode(port, master_key, d, extra_args) for port, d in zip(free_ports(n), dirs)]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            _ready_or_new_port(node)
        yield nodes
    finally:
        for node in nodes:
            node.close()


def _ready_or_new_port(node: Devnode, attempts: int = 3) -> None:
    # free_port() is a race with every other process on the machine: if someone took
    # the port in between, move to another one rather than failing the test.
    for attempt in range(attempts):
        try:
            node.wait_ready()
            return
        except RuntimeError:
            if "address already in use" not in node.output() or attempt == attempts - 1:
                raise
            node.port = free_port()
            node.url = f"http://127.0.0.1:{node.port}"
            node.start()


FINISHED = ("succeeded", "failed", "canceled")


def wait_task(url: str, uid: int, key: str | None = None, timeout: float = 10.0) -> dict:
    """Poll until task `uid` is finished; return its view. TimeoutError otherwise."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers=headers, timeout=5.0) as client:
        while True:
            r = client.get(f"/tasks/{uid}")
            r.raise_for_status()
            task = r.json()
            if task["status"] in FINISHED:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {uid} still {task['status']} after {timeout}s")
            time.sleep(POLL_INTERVAL_S)
