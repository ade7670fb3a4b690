"""Webhooks as Meilisearch 1.50 has them, fired by Miroir on its own tasks.

`/webhooks` CRUD (api/routes_webhooks.py) keeps them in the journal (`WebhookPut`,
`WebhookDeleted`); they are never configured on the nodes, whose task uids mean nothing
to a client. The same limits, codes and texts as 1.50: at most 20 webhooks, 200 headers
each, a URL that parses, header names and values HTTP accepts, `Authorization` values
redacted in answers, `uuid` and `isEditable` immutable.

Delivery (`WebhookService`, run by engine/services.py): every `TICK_S` the tasks that
finished since the last look (open ones that closed, and new ones born finished) are
journaled as one delivery per webhook (`WebhookDeliveriesQueued`) before anything is
sent, so a restart resends what was not acknowledged. A delivery is 1.50's request:
`POST url`, the task views (`GET /tasks/{uid}`, Miroir's uids) as NDJSON, gzip,
`Content-Encoding: gzip`, `Content-Type: application/x-ndjson`, plus the webhook's
headers. A 2xx acknowledges it (`WebhookDelivered`); anything else is retried with
exponential backoff, in order per webhook, and dropped with a warning after
`MAX_ATTEMPTS` (Meilisearch sends once and never retries). Delivery is at least once: a
crash after the receiver answered and before the acknowledgement is journaled resends it.
The look for finished tasks resumes after a restart where the last queued delivery left
it (`MiroirState.webhook_cursor`), so a task that finished just before a crash, before
its delivery was journaled, is still delivered.
"""

from __future__ import annotations

import gzip
import re
import uuid as uuidlib
import weakref
from typing import Any

import httpx
import msgspec
import structlog
import trio

from miroir.core.errors import MeiliError, body_type_error, type_error
from miroir.core.model import Webhook, WebhookDeleted, WebhookDelivered, WebhookDeliveriesQueued, WebhookPut
from miroir.core.taskfold import TERMINAL, task_view
from miroir.engine.cluster import Cluster

log = structlog.get_logger("miroir.webhooks")

MAX_WEBHOOKS = 20
MAX_HEADERS = 200
FIELDS = ("url", "headers")
NIL = "00000000-0000-0000-0000-000000000000"

TICK_S = 0.05
SEND_TIMEOUT_S = 30.0  # 1.50's global timeout of a webhook request
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0
MAX_ATTEMPTS = 30  # about 25 minutes of retries at the cap
UNSEEN_TICKS = 600  # a reserved uid without a task is watched this long (30 s)

_NOT_SET = object()
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: a header name
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_locks: weakref.WeakKeyDictionary[Cluster, trio.Lock] = weakref.WeakKeyDictionary()


def _lock(cluster: Cluster) -> trio.Lock:
    lock = _locks.get(cluster)
    if lock is None:
        lock = _locks[cluster] = trio.Lock()
    return lock


# --- validation (1.50's texts) -------------------------------------------------------------


def _err(code: str, message: str) -> MeiliError:
    return MeiliError(code, message, status=404 if code == "webhook_not_found" else 400, type="invalid_request")


def parse_uuid(text: str) -> str:
    """The path's uuid, normalized; 400 `invalid_webhook_uuid` as the Rust uuid crate words it."""
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        pass
    for i, ch in enumerate(text):
        if ch not in "0123456789abcdefABCDEF-{}":
            raise _err("invalid_webhook_uuid", f"Invalid UUID: invalid character: found `{ch}` at {i}")
    digits = len(text.replace("-", ""))
    raise _err("invalid_webhook_uuid", f"Invalid UUID: invalid length: expected length 32 for simple format, found {digits}")


def parse_settings(body: Any) -> tuple[Any, Any]:
    """(url, headers) of a POST/PATCH body: each `_NOT_SET`, None (reset) or the value;
    a header value of None removes that header."""
    if not isinstance(body, dict):
        raise body_type_error(body)
    accepted = "`url`, `headers`"
    for key in body:
        if key == "uuid":
            raise _err("immutable_webhook_uuid", f"Immutable field `uuid`: expected one of {accepted}")
        if key == "isEditable":
            raise _err("immutable_webhook_is_editable", f"Immutable field `isEditable`: expected one of {accepted}")
        if key not in FIELDS:
            raise MeiliError("bad_request", f"Unknown field `{key}`: expected one of {accepted}")
    url = body.get("url", _NOT_SET)
    if url is not _NOT_SET and url is not None and not isinstance(url, str):
        raise type_error("invalid_webhook_url", ".url", url, "a string")
    headers = body.get("headers", _NOT_SET)
    if headers is not _NOT_SET and headers is not None:
        if not isinstance(headers, dict):
            raise type_error("invalid_webhook_headers", ".headers", headers, "an object")
        for name, value in headers.items():
            if value is not None and not isinstance(value, str):
                raise type_error("invalid_webhook_headers", f".headers.{name}", value, "a string")
    return url, headers


def _check(uuid: str, hook: Webhook) -> None:
    if not hook.url:
        raise _err("invalid_webhook_url", f"The URL for the webhook `{uuid}` is missing.")
    if len(hook.headers) > MAX_HEADERS:
        raise _too_many_headers(uuid)
    for name, value in hook.headers.items():
        if not _TOKEN.match(name):
            raise _err("invalid_webhook_headers", f"Invalid header name `{name}`: invalid HTTP header name")
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise _err("invalid_webhook_headers", f"Invalid header value `{name}`: failed to parse header value")
    if not _SCHEME.match(hook.url):
        raise _err("invalid_webhook_url", f"Invalid URL `{hook.url}`: relative URL without a base")
    scheme, rest = hook.url.split(":", 1)
    if scheme.lower() in ("http", "https") and not rest.lstrip("/").split("/", 1)[0].split("?", 1)[0]:
        raise _err("invalid_webhook_url", f"Invalid URL `{hook.url}`: empty host")


def _too_many_headers(uuid: str) -> MeiliError:
    return _err(
        "invalid_webhook_headers",
        f"Too many headers for the webhook `{uuid}`. Please limit the number of headers to 200. "
        "Hint: To remove an already defined header set its value to `null`",
    )


def hide_secret(secret: str, offset: int) -> str:
    """1.50's redaction: keep a few leading characters, depending on the length."""
    rest = len(secret) - offset
    if rest < 0:
        return secret
    for bound, keep, mask in ((10, 0, "XXX..."), (20, 2, "XXXX..."), (30, 3, "XXXXX...")):
        if rest < bound:
            return secret[: offset + keep] + mask
    return secret[: offset + 5] + "XXXXXX..."


def view(hook: Webhook) -> dict[str, Any]:
    headers = {}
    for name, value in hook.headers.items():
        if name.lower() == "authorization":
            value = hide_secret(value, len("Bearer ") if value.startswith("Bearer ") else 0)
        headers[name] = value
    return {"uuid": hook.uuid, "isEditable": hook.uuid != NIL, "url": hook.url, "headers": headers}


# --- CRUD (api/routes_webhooks.py) -----------------------------------------------------------


def _not_found(uuid: str) -> MeiliError:
    return _err("webhook_not_found", f"Webhook `{uuid}` not found.")


def _immutable(uuid: str) -> MeiliError:
    return _err(
        "immutable_webhook",
        f"Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be modified using the API.",
    )


def list_webhooks(cluster: Cluster) -> dict[str, Any]:
    return {"results": [view(h) for _, h in sorted(cluster.state.webhooks.items())]}


def get_webhook(cluster: Cluster, raw_uuid: str) -> dict[str, Any]:
    uuid = parse_uuid(raw_uuid)
    hook = cluster.state.webhooks.get(uuid)
    if hook is None:
        raise _not_found(uuid)
    return view(hook)


async def create(cluster: Cluster, body: Any) -> dict[str, Any]:
    url, headers = parse_settings(body)
    uuid = str(uuidlib.uuid4())
    if isinstance(headers, dict) and len(headers) > MAX_HEADERS:
        raise _too_many_headers(uuid)
    async with _lock(cluster):
        if len(cluster.state.webhooks) >= MAX_WEBHOOKS:
            raise _err(
                "invalid_webhooks",
                "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. "
                "You may use a third-party proxy server to dispatch events to more than 20 endpoints.",
            )
        if not isinstance(url, str):
            raise _err("invalid_webhook_url", f"The URL for the webhook `{uuid}` is missing.")
        given = headers if isinstance(headers, dict) else {}
        hook = Webhook(uuid=uuid, url=url, headers={k: v or "" for k, v in given.items()})
        _check(uuid, hook)
        await cluster.journal.append(WebhookPut(webhook=hook))
    log.info("webhook.created", uuid=uuid)
    return view(hook)


async def patch(cluster: Cluster, raw_uuid: str, body: Any) -> dict[str, Any]:
    uuid = parse_uuid(raw_uuid)
    url, headers = parse_settings(body)
    if uuid == NIL:
        raise _immutable(uuid)
    async with _lock(cluster):
        old = cluster.state.webhooks.get(uuid)
        if old is None:
            raise _not_found(uuid)
        if url is None:
            raise _err("invalid_webhook_url", f"The URL for the webhook `{uuid}` is missing.")
        new_headers = dict(old.headers)
        if headers is None:
            new_headers.clear()
        elif headers is not _NOT_SET:
            for name, value in headers.items():
                if value is None:
                    new_headers.pop(name, None)
                else:
                    new_headers[name] = value
        if len(new_headers) > MAX_HEADERS:
            raise _too_many_headers(uuid)
        hook = Webhook(uuid=uuid, url=old.url if url is _NOT_SET else url, headers=new_headers)
        _check(uuid, hook)
        await cluster.journal.append(WebhookPut(webhook=hook))
    return view(hook)


async def delete(cluster: Cluster, raw_uuid: str) -> None:
    uuid = parse_uuid(raw_uuid)
    if uuid == NIL:
        raise _immutable(uuid)
    async with _lock(cluster):
        if uuid not in cluster.state.webhooks:
            raise _not_found(uuid)
        await cluster.journal.append(WebhookDeleted(uuid=uuid))
    log.info("webhook.deleted", uuid=uuid)


# --- delivery ----------------------------------------------------------------------------------


def payload(cluster: Cluster, task_uids: list[int]) -> bytes:
    """1.50's body: one task view per line, gzip-compressed. Tasks deleted since are left out."""
    tasks = cluster.state.tasks
    lines = [msgspec.json.encode(task_view(tasks[u])) + b"\n" for u in task_uids if u in tasks]
    return gzip.compress(b"".join(lines))


def finished_since(
    state: Any, cursor: int, watching: set[int], unseen: dict[int, int]
) -> tuple[list[int], int, set[int]]:
    """Tasks finished among those watched and those created from `cursor` on; the new
    cursor and the tasks still open among them.

    A uid below `next_task_uid` may have no task yet: it is reserved by a write whose
    intent is journaled and whose task is not (engine/intents.py), or allocated by an
    enqueue whose record is journaled after a later one's. Such a uid stays watched
    while its intent is open, and for `UNSEEN_TICKS` looks otherwise (`unseen` counts
    them), so that a task deleted before it was ever seen is not watched forever."""
    tasks = state.tasks
    candidates = watching | set(range(cursor, state.next_task_uid))
    finished: list[int] = []
    still_open: set[int] = set()
    for u in candidates:
        task = tasks.get(u)
        if task is not None:
            unseen.pop(u, None)
            if task.status in TERMINAL:
                finished.append(u)
            else:
                still_open.add(u)
        elif u in state.intents:
            still_open.add(u)
        else:
            age = unseen[u] = unseen.get(u, 0) + 1
            if age < UNSEEN_TICKS:
                still_open.add(u)
            else:
                del unseen[u]
    return sorted(finished), state.next_task_uid, still_open


class WebhookService:
    def __init__(self, cluster: Cluster, *, tick_s: float = TICK_S):
        self.cluster = cluster
        self.tick_s = tick_s
        self.wakeup = trio.Event()
        self.attempts: dict[int, int] = {}  # seq -> failed attempts
        self.next_at: dict[str, float] = {}  # webhook -> earliest time of its next attempt
        self.unseen: dict[int, int] = {}  # reserved uid without a task -> looks so far

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with (
            httpx.AsyncClient(timeout=SEND_TIMEOUT_S, trust_env=False) as http,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._watch)
            nursery.start_soon(self._deliver, http)
            task_status.started()

    async def _watch(self) -> None:
        """Journal a delivery of the tasks that finished since the last tick."""
        state = self.cluster.state
        if state.webhooks and state.webhook_cursor is not None:
            seen, watching = state.webhook_cursor, set(state.webhook_watching)  # resume (module doc)
        else:
            seen, watching = state.next_task_uid, set(state.open_tasks)
        while True:
            state = self.cluster.state
            finished, seen, watching = finished_since(state, seen, watching, self.unseen)
            if finished and state.webhooks:
                await self.cluster.journal.append(
                    WebhookDeliveriesQueued(
                        webhooks=sorted(state.webhooks), task_uids=finished, cursor=seen, watching=sorted(watching)
                    )
                )
                self.wakeup.set()
            await trio.sleep(self.tick_s)

    async def _deliver(self, http: httpx.AsyncClient) -> None:
        while True:
            now = trio.current_time()
            outbox = self.cluster.state.webhook_outbox
            heads: dict[str, int] = {}  # webhook -> its oldest delivery
            for seq in sorted(outbox):
                heads.setdefault(outbox[seq].webhook, seq)
            due = [seq for hook, seq in heads.items() if self.next_at.get(hook, 0.0) <= now]
            if due:
                async with trio.open_nursery() as nursery:
                    for seq in due:
                        nursery.start_soon(self._send, http, seq)
                continue
            wait = min((self.next_at[h] for h in heads if h in self.next_at), default=None)
            self.wakeup = trio.Event()
            with trio.move_on_at(wait if wait is not None else trio.current_time() + 3600):
                await self.wakeup.wait()

    async def _send(self, http: httpx.AsyncClient, seq: int) -> None:
        state = self.cluster.state
        delivery = state.webhook_outbox.get(seq)
        hook = state.webhooks.get(delivery.webhook) if delivery else None
        if delivery is None or hook is None:
            return
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson", **hook.headers}
        try:
            r = await http.post(hook.url, content=payload(self.cluster, delivery.task_uids), headers=headers)
            ok, why = 200 <= r.status_code < 300, f"answered {r.status_code}"
        except (httpx.HTTPError, OSError) as e:  # unreachable, refused, timeout, bad url
            ok, why = False, f"{type(e).__name__}: {e}"
        if ok:
            self.attempts.pop(seq, None)
            self.next_at.pop(hook.uuid, None)
            await self.cluster.journal.append(WebhookDelivered(seq=seq))
            return
        n = self.attempts[seq] = self.attempts.get(seq, 0) + 1
        if n >= MAX_ATTEMPTS:
            log.warning("webhook.delivery_dropped", uuid=hook.uuid, tasks=delivery.task_uids, attempts=n, error=why)
            self.attempts.pop(seq, None)
            self.next_at.pop(hook.uuid, None)
            await self.cluster.journal.append(WebhookDelivered(seq=seq))
            return
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (n - 1))
        self.next_at[hook.uuid] = trio.current_time() + delay
        log.warning("webhook.delivery_failed", uuid=hook.uuid, attempt=n, retry_in_s=delay, error=why)
