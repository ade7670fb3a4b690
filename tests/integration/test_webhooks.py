"""Issue 19 item 4: `/webhooks` as Meilisearch 1.50 (CRUD, limits, codes, texts) and
deliveries of Miroir's finished tasks: 1.50's payload and headers, retried with backoff,
not lost when Miroir is killed (-9) with a delivery pending."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.support.chaos_helpers import MiroirProcess, wait_until
from tests.support.devnodes import start_devnodes, wait_task
from tests.support.miroir_proc import start_cluster
from tests.support.serving import serving

NIL = "00000000-0000-0000-0000-000000000000"


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers `status` (500 to make Miroir retry) and
    records what it acknowledged."""

    def __init__(self) -> None:
        self.status = 200
        self.acked: list[dict] = []  # task views received with a 2xx answer
        self.requests: list[tuple[int, dict[str, str]]] = []  # (answer, headers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.status
                receiver.requests.append((status, {k.lower(): v for k, v in self.headers.items()}))
                if 200 <= status < 300:
                    text = gzip.decompress(body).decode()
                    assert text.endswith("\n")
                    receiver.acked.extend(json.loads(line) for line in text.splitlines())
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = ""  # set while `receiver()` serves it

    def uids(self) -> list[int]:
        return [t["uid"] for t in self.acked]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with serving(r.server, name="webhook-receiver") as base:
        r.url = base + "/hook"
        yield r


def err(r: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code and body["type"] == "invalid_request", body
    assert body["link"] == f"https://docs.meilisearch.com/errors#{code}"
    if message is not None:
        assert body["message"] == message, body["message"]


def test_webhooks_crud_as_meilisearch():
    with start_cluster(nodes=1, shards=2, master_key="mk") as c:
        h = httpx.Client(base_url=c.url, headers={"Authorization": "Bearer mk"}, timeout=30)
        assert httpx.get(c.url + "/webhooks").status_code == 401
        assert h.get("/webhooks").json() == {"results": []}

        r = h.post("/webhooks", json={"headers": {"authorization": "TOKEN"}})
        err(r, 400, "invalid_webhook_url")
        assert r.json()["message"].startswith("The URL for the webhook `") and r.json()["message"].endswith("` is missing.")
        err(h.post("/webhooks", json={"url": "not-a-valid-url"}), 400, "invalid_webhook_url",
            "Invalid URL `not-a-valid-url`: relative URL without a base")
        err(h.post("/webhooks", json={"url": "http://localhost:8080", "headers": {"invalid header name": "v"}}),
            400, "invalid_webhook_headers", "Invalid header name `invalid header name`: invalid HTTP header name")
        err(h.post("/webhooks", json={"url": "http://localhost:8080", "headers": {"authorization": "a\nb"}}),
            400, "invalid_webhook_headers", "Invalid header value `authorization`: failed to parse header value")
        err(h.post("/webhooks", json={"url": "http://localhost:8080", "uuid": NIL}), 400, "immutable_webhook_uuid",
            "Immutable field `uuid`: expected one of `url`, `headers`")
        err(h.post("/webhooks", json={"url": "http://localhost:8080", "isEditable": False}), 400,
            "immutable_webhook_is_editable", "Immutable field `isEditable`: expected one of `url`, `headers`")
        err(h.post("/webhooks", json={"url": 1}), 400, "invalid_webhook_url",
            "Invalid value type at `.url`: expected a string, but found a positive integer: `1`")
        err(h.post("/webhooks", json={"url": "http://x", "other": 1}), 400, "bad_request",
            "Unknown field `other`: expected one of `url`, `headers`")
        for path in ("/webhooks/invalid-uuid",):
            for method in ("GET", "PATCH", "DELETE"):
                kw = {"json": {"url": "http://localhost:6666/hook"}} if method == "PATCH" else {}
                err(h.request(method, path, **kw), 400, "invalid_webhook_uuid", "Invalid UUID: invalid character: found `i` at 0")
        immutable = f"Webhook `{NIL}` is immutable. The webhook defined from the command line cannot be modified using the API."
        err(h.patch(f"/webhooks/{NIL}", json={"url": "http://localhost:8080"}), 400, "immutable_webhook", immutable)
        err(h.delete(f"/webhooks/{NIL}"), 400, "immutable_webhook", immutable)
        assert h.get("/webhooks").json() == {"results": []}  # nothing refused was kept

        r = h.post("/webhooks", json={"url": "http://localhost:6666/hook", "headers": {"authorization": "TOKEN"}})
        assert r.status_code == 201, r.text
        hook = r.json()
        uuid = hook["uuid"]
        assert hook == {"uuid": uuid, "isEditable": True, "url": "http://localhost:6666/hook",
                        "headers": {"authorization": "XXX..."}}
        assert list(hook) == ["uuid", "isEditable", "url", "headers"]
        assert h.get(f"/webhooks/{uuid}").json() == hook
        r = h.patch(f"/webhooks/{uuid}", json={"headers": {"authorization2": "TOKEN"}})
        assert r.status_code == 200 and r.json()["headers"] == {"authorization": "XXX...", "authorization2": "TOKEN"}
        r = h.patch(f"/webhooks/{uuid}", json={"headers": {"authorization": None}})
        assert r.json()["headers"] == {"authorization2": "TOKEN"}
        r = h.patch(f"/webhooks/{uuid}", json={"headers": {"Authorization": "Bearer a-long-secret-token-value"}})
        assert r.json()["headers"]["Authorization"] == "Bearer a-lXXXXX..."
        err(h.patch(f"/webhooks/{uuid}", json={"url": None}), 400, "invalid_webhook_url",
            f"The URL for the webhook `{uuid}` is missing.")
        assert h.get("/webhooks").json()["results"][0]["url"] == "http://localhost:6666/hook"

        # 20 at most; 200 headers at most
        for _ in range(19):
            assert h.post("/webhooks", json={"url": "http://localhost:8080"}).status_code == 201
        err(h.post("/webhooks", json={"url": "http://localhost:8080"}), 400, "invalid_webhooks",
            "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. "
            "You may use a third-party proxy server to dispatch events to more than 20 endpoints.")
        assert h.patch(f"/webhooks/{uuid}", json={"headers": None}).json()["headers"] == {}
        r = h.patch(f"/webhooks/{uuid}", json={"headers": {f"header_{i}": "" for i in range(200)}})
        assert r.status_code == 200 and len(r.json()["headers"]) == 200
        err(h.patch(f"/webhooks/{uuid}", json={"headers": {"header_200": ""}}), 400, "invalid_webhook_headers",
            f"Too many headers for the webhook `{uuid}`. Please limit the number of headers to 200. "
            "Hint: To remove an already defined header set its value to `null`")
        for w in h.get("/webhooks").json()["results"]:
            assert h.delete(f"/webhooks/{w['uuid']}").status_code == 204
        err(h.get(f"/webhooks/{uuid}"), 404, "webhook_not_found", f"Webhook `{uuid}` not found.")
        err(h.delete(f"/webhooks/{uuid}"), 404, "webhook_not_found")
        assert h.get("/webhooks").json() == {"results": []}


def test_deliveries_retried_and_kept_across_kill_9(tmp_path):
    with start_devnodes(2) as devs, receiver() as rcv:
        config = tmp_path / "miroir.toml"
        config.write_text(
            '[server]\nbind = "127.0.0.1:0"\n'
            f'[store]\ndata_dir = "{tmp_path / "journal"}"\n'
            "[cluster]\nshards = 4\nreplication_factor = 1\n"
            '[log]\nlevel = "info"\n'
            + "".join(f'[[nodes]]\nid = "n{i + 1}"\nurl = "{d.url}"\n' for i, d in enumerate(devs))
        )
        miroir = MiroirProcess(config)
        try:
            url = miroir.wait_ready()
            h = httpx.Client(base_url=url, timeout=30)
            r = h.post("/webhooks", json={"url": rcv.url, "headers": {"Authorization": "Bearer hook-secret"}})
            assert r.status_code == 201, r.text

            # delivered, with 1.50's headers and task views carrying Miroir's uids
            uids = []
            for i in range(5):
                r = h.post("/indexes/tamo/documents", json=[{"id": i, "doggo": "bone"}])
                uids.append(r.json()["taskUid"])
            for u in uids:
                assert wait_task(url, u)["status"] == "succeeded"
            try:
                wait_until(lambda: sorted(rcv.uids()) == uids, timeout=20, what="5 tasks delivered")
            except TimeoutError as e:
                raise AssertionError((uids, rcv.uids(), [s for s, _ in rcv.requests], [ln for ln in miroir.lines if "webhook" in ln][-20:])) from e
            _, headers = rcv.requests[0]
            assert headers["content-type"] == "application/x-ndjson"
            assert headers["content-encoding"] == "gzip"
            assert headers["authorization"] == "Bearer hook-secret"
            view = rcv.acked[0]
            assert view == h.get(f"/tasks/{view['uid']}").json()
            assert view["indexUid"] == "tamo" and view["status"] == "succeeded"
            assert view["type"] == "documentAdditionOrUpdate"
            assert view["details"] == {"receivedDocuments": 1, "indexedDocuments": 1}

            # the receiver fails: retried with backoff, then delivered once it answers
            rcv.status = 500
            r = h.post("/indexes/tamo/documents", json=[{"id": 10}])
            failing = r.json()["taskUid"]
            wait_until(lambda: sum(1 for s, _ in rcv.requests if s == 500) >= 2, timeout=20, what="2 failed attempts")
            rcv.status = 200
            wait_until(lambda: failing in rcv.uids(), timeout=20, what="retried delivery")

            # killed -9 with a delivery pending: delivered after the restart, nothing twice
            rcv.status = 503
            r = h.post("/indexes/tamo/documents", json=[{"id": 11}])
            pending = r.json()["taskUid"]
            assert wait_task(url, pending)["status"] == "succeeded"
            wait_until(lambda: any(s == 503 for s, _ in rcv.requests), timeout=20, what="a failed attempt")
            miroir.kill()
            rcv.status = 200
            miroir = MiroirProcess(config)
            url = miroir.wait_ready()
            wait_until(lambda: pending in rcv.uids(), timeout=20, what="delivery after kill -9")
            assert sorted(rcv.uids()) == sorted(set(rcv.uids())) == sorted([*uids, failing, pending])
            assert httpx.get(url + "/webhooks").json()["results"][0]["url"] == rcv.url
        finally:
            miroir.kill()


def test_restart_resumes_the_look_for_finished_tasks():
    """A task that finished after the last queued delivery and before a crash is found by
    the look a restart resumes from the journaled cursor; nothing queued is found twice."""
    from miroir.core.model import (
        IntentJournaled,
        NodeRequest,
        TaskEnqueued,
        TaskRecord,
        TaskUpdated,
        Webhook,
        WebhookDeliveriesQueued,
        WebhookPut,
        WriteIntent,
        apply_record,
        new_state,
    )
    from miroir.engine.webhooks import UNSEEN_TICKS, finished_since

    state = new_state()

    def apply(rec) -> None:
        apply_record(state, rec)

    apply(TaskEnqueued(task=TaskRecord(uid=0, index_uid="a", type="indexCreation", status="succeeded")))
    apply(TaskEnqueued(task=TaskRecord(uid=1, index_uid="a", type="documentAdditionOrUpdate")))
    apply(WebhookPut(webhook=Webhook(uuid="u", url="http://x/hook")))
    # tasks before the first webhook are not its business; task 1 is still open
    assert (state.webhook_cursor, state.webhook_watching) == (2, [1])
    apply(TaskEnqueued(task=TaskRecord(uid=2, index_uid="a", type="documentAdditionOrUpdate")))
    apply(TaskEnqueued(task=TaskRecord(uid=3, index_uid="a", type="documentAdditionOrUpdate")))
    apply(TaskUpdated(uid=2, status="succeeded"))
    unseen: dict[int, int] = {}
    finished, cursor, watching = finished_since(state, state.webhook_cursor, set(state.webhook_watching), unseen)
    assert (finished, cursor, watching) == ([2], 4, {1, 3})
    apply(WebhookDeliveriesQueued(webhooks=["u"], task_uids=finished, cursor=cursor, watching=sorted(watching)))
    assert [d.task_uids for d in state.webhook_outbox.values()] == [[2]]
    # tasks 1 and 4 finish, then a crash before the next tick journals them
    apply(TaskUpdated(uid=1, status="failed"))
    apply(TaskEnqueued(task=TaskRecord(uid=4, index_uid="a", type="documentDeletion", status="succeeded")))
    # the restarted service resumes from the journaled cursor
    replayed = msgspec_roundtrip(state)
    finished, cursor, watching = finished_since(replayed, replayed.webhook_cursor, set(replayed.webhook_watching), {})
    assert (finished, cursor, watching) == ([1, 4], 5, {3})

    # a write's uid reserved by its intent, its task not journaled yet, while a later
    # task is: the reserved uid stays watched and is delivered once its task finishes
    # (a whole-file run missed such a task one time in two)
    request = NodeRequest(index="a", method="POST", path="/indexes/a/documents")
    apply(IntentJournaled(intent=WriteIntent(task=TaskRecord(uid=5, index_uid="a", type="documentAdditionOrUpdate"),
                                             request=request, owners={})))
    apply(TaskEnqueued(task=TaskRecord(uid=6, index_uid="a", type="documentDeletion", status="succeeded")))
    finished, cursor, watching = finished_since(state, 5, {3}, unseen)
    assert (finished, cursor, watching) == ([6], 7, {3, 5})
    apply(TaskEnqueued(task=TaskRecord(uid=5, index_uid="a", type="documentAdditionOrUpdate", status="succeeded")))
    finished, cursor, watching = finished_since(state, cursor, watching, unseen)
    assert (finished, cursor, watching) == ([5], 7, {3})
    # a uid with neither task nor intent (allocated, or deleted unseen) is watched a while
    state.next_task_uid = 8
    for _ in range(UNSEEN_TICKS - 1):
        finished, cursor, watching = finished_since(state, cursor, watching, unseen)
        assert watching == {3, 7}
    finished, cursor, watching = finished_since(state, cursor, watching, unseen)
    assert (finished, cursor, watching, unseen) == ([], 8, {3}, {})


def msgspec_roundtrip(state):
    """The state as a snapshot would bring it back."""
    import msgspec

    from miroir.core.model import MiroirState

    return msgspec.json.decode(msgspec.json.encode(state), type=MiroirState)


def test_official_python_client_webhooks():
    """The official client's calls (its test fixtures list and delete every webhook)."""
    import meilisearch

    with start_cluster(nodes=1, shards=2, master_key="mk") as c:
        client = meilisearch.Client(c.url, "mk")
        assert client.get_webhooks().results == []
        hook = client.create_webhook({"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "search"}})
        assert hook.uuid and hook.url == "http://127.0.0.1:9/hook" and hook.isEditable
        hook = client.update_webhook(hook.uuid, {"url": "http://127.0.0.1:9/other"})
        assert client.get_webhook(hook.uuid).url == "http://127.0.0.1:9/other"
        for w in client.get_webhooks().results:  # the fixtures' clean-up
            assert client.delete_webhook(w.uuid) == 204
        assert client.get_webhooks().results == []
        try:
            client.get_webhook(hook.uuid)
        except meilisearch.errors.MeilisearchApiError as e:
            assert e.code == "webhook_not_found" and e.status_code == 404
        else:
            raise AssertionError("a deleted webhook was found")


def test_dump_carries_the_webhooks():
    import tarfile

    from miroir.engine.dumps import dump_dir

    with start_cluster(nodes=1, shards=2) as c:
        h = httpx.Client(base_url=c.url, timeout=30)
        hook = h.post("/webhooks", json={"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer s3cr3t-value"}}).json()
        task = wait_task(c.url, h.post("/dumps").json()["taskUid"], timeout=30)
        assert task["status"] == "succeeded", task
        path = f"{dump_dir(c.cluster)}/{task['details']['dumpUid']}.dump"
        with tarfile.open(path) as tar:
            name = next(n for n in tar.getnames() if n.lstrip("./") == "webhooks.json")
            got = json.load(tar.extractfile(name))
        # as 1.50's dump writes it: unredacted, for a Meilisearch that imports it
        assert got == {"webhooks": {hook["uuid"]: {"url": "http://127.0.0.1:9/hook",
                                                   "headers": {"Authorization": "Bearer s3cr3t-value"}}}}


def test_pending_deliveries_in_metrics():
    from tests.integration.test_metrics import scrape

    with receiver() as rcv, start_cluster(nodes=1, shards=2, master_key="metrics-master-key") as c:
        h = httpx.Client(base_url=c.url, headers={"Authorization": "Bearer metrics-master-key"}, timeout=30)
        rcv.status = 500
        uuid = h.post("/webhooks", json={"url": rcv.url}).json()["uuid"]
        assert scrape(c.url).get("miroir_webhooks") == 1
        wait_task(c.url, h.post("/indexes/m/documents", json=[{"id": 1}]).json()["taskUid"], key="metrics-master-key")
        wait_until(lambda: scrape(c.url).get("miroir_webhook_deliveries_pending", webhook=uuid) >= 1, timeout=20,
                   what="a pending delivery")
        rcv.status = 200
        wait_until(lambda: scrape(c.url).get("miroir_webhook_deliveries_pending", webhook=uuid) == 0, timeout=20,
                   what="the delivery acknowledged")
