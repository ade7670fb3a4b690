"""`/health` answers 200 only once Miroir serves every route (issue 15 item 3).

Before: `/health` said 200 from the moment the port was bound, ~35 ms before the journal
was replayed, while every other route answered 503 `miroir_not_ready`; a client (or a load
balancer) that wrote at the first 200 got a 503. Now `/health` is 503
`{"status": "unavailable"}` until ready, and READY=1 goes to systemd at the same moment.
"""

from __future__ import annotations

import socket
import time
import uuid

import httpx

from tests.integration.test_serve import write_config
from tests.support.devnodes import free_port, start_devnodes
from tests.support.miroir_proc import Daemon

RESTARTS = 20
POLL_TIMEOUT_S = 30.0


def first_200(url: str, notify: socket.socket | None) -> tuple[list[int], bool]:
    """Poll /health from before the port is bound until its first 200: (statuses seen
    before it, whether READY=1 had reached the notify socket by then)."""
    seen: list[int] = []
    deadline = time.monotonic() + POLL_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=5) as c:
        while time.monotonic() < deadline:
            try:
                r = c.get("/health")
            except httpx.TransportError:  # not bound yet
                time.sleep(0.001)
                continue
            if r.status_code == 200:
                assert r.json() == {"status": "available"}
                ready = False
                if notify is not None:
                    notify.setblocking(False)
                    try:
                        while True:
                            if "READY=1" in notify.recv(4096).decode():
                                ready = True
                    except BlockingIOError:
                        pass
                return seen, ready
            assert r.status_code == 503 and r.json() == {"status": "unavailable"}, r.text
            seen.append(r.status_code)
    raise AssertionError("no 200 from /health in time")


def test_write_at_first_health_200_is_accepted_across_restarts(tmp_path):
    address = f"@miroir-test-{uuid.uuid4().hex}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + address[1:])
    with start_devnodes(1) as (node,):
        port = free_port()
        cfg = write_config(
            tmp_path / "miroir.toml",
            tmp_path / "data",
            bind=f"127.0.0.1:{port}",
            extra=f'[cluster]\nshards = 2\n[[nodes]]\nid = "n1"\nurl = "{node.url}"\n',
        )
        url = f"http://127.0.0.1:{port}"
        not_ready_answers = 0
        try:
            for i in range(RESTARTS):
                d = Daemon(cfg, env={"NOTIFY_SOCKET": address})
                try:
                    seen, ready_sent = first_200(url, notify)
                    not_ready_answers += len(seen)
                    r = httpx.post(f"{url}/indexes/books/documents", json=[{"id": i, "n": i}], timeout=10)
                    assert r.status_code == 202, f"restart {i}: write at the first /health 200 got {r.status_code} {r.text}"
                    assert ready_sent, f"restart {i}: /health said 200 before READY=1 was sent"
                finally:
                    d.kill()
                assert "Traceback" not in d.stderr(), d.stderr()
        finally:
            notify.close()
    print(f"\n{RESTARTS}/{RESTARTS} writes accepted at the first 200; 503 unavailable answered {not_ready_answers} times before it")
