"""`miroir serve` as a real process, and `run_miroir` / the app in-process.

Processes bind 127.0.0.1 only, every wait has a timeout, every process is killed at the end.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from miroir import gcpolicy
from miroir.api.app import create_app
from miroir.api.auth import authorize
from miroir.api.context import Miroir
from miroir.config import AuthConfig, config_from_dict
from miroir.core.errors import MeiliError
from miroir.daemon import StartupError, run_miroir
from miroir.sdnotify import SdNotifier
from tests.support.miroir_proc import START_TIMEOUT, Daemon, json_line

MASTER = "master-key-0123456789"
ADMIN = "admin-key-0123456789"


def write_config(path: Path, data_dir: Path, bind: str = "127.0.0.1:0", extra: str = "") -> Path:
    path.write_text(
        f'[server]\nbind = "{bind}"\nmax_body_bytes = 1024\nshutdown_grace_ms = 2000\n'
        f'[store]\ndata_dir = "{data_dir}"\n{extra}'
    )
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Daemon, str, Path]]:
    tmp = tmp_path_factory.mktemp("serve")
    cfg = write_config(tmp / "miroir.toml", tmp / "data")
    d = Daemon(cfg, env={"MIROIR_MASTER_KEY": MASTER, "MIROIR_ADMIN_KEY": ADMIN})
    try:
        port = d.wait_ready()
        yield d, f"http://127.0.0.1:{port}", tmp
    finally:
        d.kill()


def auth(key: str = MASTER) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_meili_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["message", "code", "type", "link"]
    assert body["code"] == code
    assert body["link"] == f"https://docs.meilisearch.com/errors#{code}"


def test_garbage_collector_is_tuned_and_start_up_heap_frozen(served):
    # gcpolicy: without it the collector cost ~290 us per search (issue 8).
    d, _, _ = served
    rec = d.wait_event("gc settled")
    assert rec is not None, d.stderr()
    assert rec["gen0_threshold"] == gcpolicy.GEN0_THRESHOLD
    assert rec["frozen"] > 10_000  # modules, routes, config: everything alive at start-up


def test_system_routes(served):
    d, url, _ = served
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.get("/health", headers={"X-Request-Id": "rid-health-1"})
        assert r.headers["x-request-id"] == "rid-health-1"
        assert r.status_code == 200 and r.json() == {"status": "available"}
        v = c.get("/version", headers=auth()).json()
        assert set(v) == {"commitSha", "commitDate", "pkgVersion"}
        assert c.get("/_miroir/ready").json() == {"status": "ready"}
        assert r.headers["content-type"] == "application/json"
    # One structured log line per request (logged after the response is built: poll, bounded
    # by a deadline, not a count of polls that a loaded machine's slow pipe can outlast).
    logged: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = [rec for rec in map(json_line, list(d.lines)) if rec and rec.get("request_id") == "rid-health-1"]
        if logged:
            break
        time.sleep(0.05)
    [rec] = logged
    assert (rec["method"], rec["route"], rec["status"]) == ("GET", "/health", 200)
    assert isinstance(rec["duration_ms"], float)


def test_auth_rules(served):
    _, url, _ = served
    with httpx.Client(base_url=url, timeout=10) as c:
        assert_meili_error(c.get("/version"), 401, "missing_authorization_header")
        assert_meili_error(c.get("/version", headers={"Authorization": MASTER}), 401, "missing_authorization_header")
        r = c.get("/version", headers=auth("wrong"))
        assert_meili_error(r, 403, "invalid_api_key")
        assert r.json()["message"] == "The provided API key is invalid."
        assert r.json()["type"] == "auth"
        # Unknown routes are checked for auth first, then 404 in Meilisearch's shape.
        assert_meili_error(c.get("/no/such/route"), 401, "missing_authorization_header")
        assert_meili_error(c.get("/no/such/route", headers=auth()), 404, "not_found")
        assert_meili_error(c.post("/health", headers=auth()), 405, "method_not_allowed")
        # Admin routes want the admin key, as Bearer or X-Admin-Key.
        assert_meili_error(c.get("/_miroir/no-such-route"), 401, "missing_authorization_header")
        assert_meili_error(c.get("/_miroir/no-such-route", headers=auth()), 403, "miroir_admin_key_required")
        assert_meili_error(c.get("/_miroir/no-such-route", headers=auth(ADMIN)), 404, "not_found")
        assert_meili_error(c.get("/_miroir/no-such-route", headers={"X-Admin-Key": ADMIN}), 404, "not_found")
        assert_meili_error(c.get("/_miroir/no-such-route", headers={"X-Admin-Key": "nope"}), 403, "invalid_api_key")


def test_body_over_limit_is_413(served):
    _, url, _ = served
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/indexes", headers={**auth(), "Content-Type": "application/json"}, content=b"[" + b"1," * 2000 + b"1]")
        assert_meili_error(r, 413, "payload_too_large")
        # Small bodies pass the limit and reach routing.
        assert_meili_error(c.post("/no-such-route", headers=auth(), content=b"{}"), 404, "not_found")


def test_second_serve_on_same_data_dir_refuses(served, tmp_path):
    _, _, tmp = served
    cfg = write_config(tmp_path / "c.toml", tmp / "data")
    d = Daemon(cfg)
    try:
        assert d.wait() == 1
        assert d.stderr().strip().splitlines()[-1].startswith("miroir: error: data dir")
        assert "in use" in d.stderr() and "Traceback" not in d.stderr()
    finally:
        d.kill()


def test_port_in_use_is_a_clean_error(served, tmp_path):
    _, url, _ = served
    port = int(url.rsplit(":", 1)[1])
    cfg = write_config(tmp_path / "c.toml", tmp_path / "data", bind=f"127.0.0.1:{port}")
    d = Daemon(cfg)
    try:
        assert d.wait() == 1
        last = d.stderr().strip().splitlines()[-1]
        assert last == f"miroir: error: cannot listen on 127.0.0.1:{port}: address already in use"
        assert not any(p.name.startswith("journal") for p in (tmp_path / "data").iterdir())
    finally:
        d.kill()


def test_sigterm_with_sd_notify(tmp_path):
    """READY=1 once serving, STOPPING=1 on SIGTERM, exit 0, lock released."""
    address = f"@miroir-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    sock.settimeout(START_TIMEOUT)
    cfg = write_config(tmp_path / "c.toml", tmp_path / "data")
    d = Daemon(cfg, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    try:
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        port = d.wait_ready()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        while "WATCHDOG=1" not in messages:  # pings every WATCHDOG_USEC/2
            messages.append(sock.recv(4096).decode())
        d.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(sock.recv(4096).decode())
        assert d.wait() == 0
        assert d.wait_event("stopped") is not None
        assert "Traceback" not in d.stderr()
    finally:
        d.kill()
        sock.close()
    # The lock died with the process: a new daemon can start on the same data dir.
    d2 = Daemon(cfg)
    try:
        d2.wait_ready()
        d2.proc.send_signal(signal.SIGINT)
        assert d2.wait() == 0
    finally:
        d2.kill()


def test_corrupt_journal_exits_1_with_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.snapshot").write_bytes(b"\x05\x00\x00\x00garbagegarbage")
    d = Daemon(write_config(tmp_path / "c.toml", data))
    try:
        assert d.wait() == 1
        last = d.stderr().strip().splitlines()[-1]
        assert last.startswith("miroir: error: journal is corrupt:") and "state.snapshot" in last
        assert "Traceback" not in d.stderr()
    finally:
        d.kill()


# --- in-process ------------------------------------------------------------------------


def make_config(tmp_path: Path, **auth_cfg: str):
    return config_from_dict(
        {
            "server": {"bind": "127.0.0.1:0", "max_body_bytes": 64},
            "store": {"data_dir": str(tmp_path / "data")},
            "auth": auth_cfg,
        }
    )


async def test_run_miroir_in_a_nursery(tmp_path):
    config = make_config(tmp_path)
    stop = trio.Event()
    quiet = SdNotifier(None)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: run_miroir(config, shutdown_trigger=stop.wait, notifier=quiet, task_status=task_status))
        assert port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert (await c.get("/_miroir/ready")).json() == {"status": "ready"}
            assert (await c.get("/version")).status_code == 200  # no master key: open
        # A second daemon on the same data dir refuses before touching anything.
        with pytest.raises(StartupError, match="in use"):
            await run_miroir(config, notifier=quiet)
        stop.set()
    # Shut down cleanly: the lock is free again.
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_miroir(config, notifier=quiet, task_status=task_status))
        nursery.cancel_scope.cancel()


async def test_not_ready_until_journal_replayed_and_internal_errors(tmp_path):
    ctx = Miroir(make_config(tmp_path))
    app = create_app(ctx)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret detail")

    client = app.test_client()
    r = await client.get("/_miroir/ready")
    assert r.status_code == 503
    body = await r.get_json()
    assert body["code"] == "miroir_not_ready" and body["type"] == "system"
    ctx.ready = True
    assert (await client.get("/_miroir/ready")).status_code == 200
    r = await client.get("/boom")
    assert r.status_code == 500
    body = await r.get_json()
    assert body["code"] == "internal" and "secret detail" not in body["message"]


def test_authorize_rules():
    from miroir.core.model import new_state
    from miroir.engine.keys import KeyRing

    def check(auth, path, headers, action="indexes.get"):
        return authorize(auth, KeyRing(auth.master_key), new_state(), path, headers, action)

    open_api = AuthConfig()
    check(open_api, "/indexes", {})
    check(open_api, "/_miroir/nodes", {}, None)
    master_only = AuthConfig(master_key="m")
    check(master_only, "/_miroir/nodes", {"Authorization": "Bearer m"}, None)
    check(master_only, "/health", {}, None)
    check(master_only, "/_miroir/ready", {}, None)
    with pytest.raises(MeiliError) as e:
        check(master_only, "/_miroir/nodes", {"X-Admin-Key": "m"}, None)
    assert e.value.code == "missing_authorization_header"
    admin_only = AuthConfig(admin_key="a")
    check(admin_only, "/indexes", {})
    with pytest.raises(MeiliError) as e:
        check(admin_only, "/_miroir/nodes", {"Authorization": "Bearer x"}, None)
    assert e.value.code == "invalid_api_key" and e.value.status == 403
    with pytest.raises(MeiliError) as e:  # no master key: the keys routes say so
        check(open_api, "/keys", {}, "keys.get")
    assert e.value.code == "missing_master_key" and e.value.status == 401


async def test_read_json_errors_and_request_log(tmp_path):
    from miroir.api.http import body_bytes, decode_json, json_response

    ctx = Miroir(make_config(tmp_path))
    ctx.ready = True
    app = create_app(ctx)

    @app.post("/echo")
    async def echo():
        return json_response(decode_json(await body_bytes(), dict), status=202)

    client = app.test_client()
    r = await client.post("/echo", data=b'{"a": 1}')
    assert r.status_code == 202 and await r.get_json() == {"a": 1}
    for data, code in [(b"", "missing_payload"), (b"{nope", "malformed_payload"), (b"[1]", "malformed_payload")]:
        r = await client.post("/echo", data=data)
        assert r.status_code == 400, data
        assert (await r.get_json())["code"] == code
    r = await client.post("/echo", data=b"{" + b" " * 100 + b"}")
    assert r.status_code == 413
    assert (await r.get_json())["code"] == "payload_too_large"


async def test_corrupt_journal_refuses_to_start(tmp_path):
    config = make_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.snapshot").write_bytes(b"\x05\x00\x00\x00garbagegarbage")
    with pytest.raises(StartupError, match=r"journal is corrupt.*state\.snapshot"):
        await run_miroir(config, notifier=SdNotifier(None))


def test_error_before_body_is_read_keeps_connection_usable(served):
    # An error answered before the handler reads the body (here: auth) must not leave the
    # unread body on the keep-alive connection, or the next request on it hangs.
    _, url, _ = served
    body = b'{"uid": "' + b"x" * 600 + b'"}'
    with httpx.Client(base_url=url, timeout=5) as c:
        for _ in range(3):
            r = c.post("/indexes", headers={"Content-Type": "application/json"}, content=body)
            assert_meili_error(r, 401, "missing_authorization_header")
            assert c.get("/health").status_code == 200
