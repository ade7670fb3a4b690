"""The official client's key and tenant-token methods against a real `miroir serve`
process; keys survive `kill -9`; no secret ever reaches a log line.

Two devnode subprocesses (with their own node master key) and a `miroir serve` process
(JSON logs) with a master key: create, update and delete keys with `meilisearch.Client`,
search with a key and with `generate_tenant_token`'s token, SIGKILL Miroir, start it
again on the same journal and find the keys as they were (values derived again from the
master key). Every line Miroir and the devnodes wrote is then searched for every secret
used (the node master key included).
"""

from __future__ import annotations

import datetime as dt

import httpx
import meilisearch
import pytest
from meilisearch.errors import MeilisearchApiError

from tests.support.devnodes import start_devnodes
from tests.support.miroir_proc import Daemon

MASTER = "sdk-master-key-for-keys-0123456789"
NODE_KEY = "sdk-node-master-key-9876543210"
WAIT_S = 30.0


class _Miroir:
    def __init__(self, config, data_dir):
        self.config = config
        self.daemon = Daemon(config, env={"MIROIR_MASTER_KEY": MASTER, "MIROIR_NODE_MASTER_KEY": NODE_KEY})
        self.url = f"http://127.0.0.1:{self.daemon.wait_ready()}"

    def kill9(self) -> list[str]:
        self.daemon.kill()  # SIGKILL
        return self.daemon.drained()  # the last lines too, however slow the reader thread


def _config(tmp_path, nodes) -> object:
    lines = ['[server]', 'bind = "127.0.0.1:0"', '[store]', f'data_dir = "{tmp_path / "miroir"}"',
             '[cluster]', 'shards = 4', '[log]', 'format = "json"', 'level = "debug"']
    for i, n in enumerate(nodes):
        lines += ["[[nodes]]", f'id = "n{i + 1}"', f'url = "{n.url}"']
    path = tmp_path / "miroir.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sdk_keys_and_tenant_tokens_survive_kill_9(tmp_path):
    secrets: set[str] = {MASTER, NODE_KEY}
    logs: list[str] = []
    with start_devnodes(2, master_key=NODE_KEY) as nodes:
        config = _config(tmp_path, nodes)
        logs += _run(config, secrets)
        for n in nodes:
            logs += n.output().splitlines()
    assert sum('"request"' in line for line in logs) > 20, "no request log captured"
    leaked = {s[:6] + "…": [line[:160] for line in logs if s in line][:2] for s in secrets if any(s in line for line in logs)}
    assert not leaked, leaked


def _run(config, secrets: set[str]) -> list[str]:
    logs: list[str] = []
    miroir = _Miroir(config, None)
    try:
        url = miroir.url
        master = meilisearch.Client(url, MASTER)
        defaults = {k.name: k for k in master.get_keys().results}
        assert {"Default Search API Key", "Default Admin API Key", "Default Read-Only Admin API Key", "Default Chat API Key"} <= set(defaults)
        search_key = defaults["Default Search API Key"]
        admin_key = defaults["Default Admin API Key"]
        assert search_key.actions == ["search"] and search_key.indexes == ["*"] and search_key.expires_at is None
        secrets.update(k.key for k in defaults.values())

        # Documents through the default admin key (Meilisearch's back-end key).
        admin = meilisearch.Client(url, admin_key.key)
        books = admin.index("books")
        admin.wait_for_task(admin.create_index("books", {"primaryKey": "id"}).task_uid, timeout_in_ms=30_000)
        admin.wait_for_task(books.update_filterable_attributes(["genre", "id"]).task_uid, timeout_in_ms=30_000)
        docs = [{"id": i, "title": f"book {i}", "genre": "fantasy" if i % 3 == 0 else "crime"} for i in range(30)]
        admin.wait_for_task(books.add_documents(docs).task_uid, timeout_in_ms=30_000)

        kept = master.create_key({"name": "kept", "description": "d", "actions": ["search", "documents.get"], "indexes": ["books"], "expiresAt": None})
        patched = master.create_key({"actions": ["search"], "indexes": ["bo*"], "expiresAt": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()})
        gone = master.create_key({"uid": "01b4bc42-eb33-4041-b481-254d00cce834", "actions": ["*"], "indexes": ["*"], "expiresAt": None})
        secrets.update((kept.key, patched.key, gone.key))
        assert gone.uid == "01b4bc42-eb33-4041-b481-254d00cce834"
        updated = master.update_key(patched.key, {"name": "renamed", "description": "by value"})
        assert (updated.name, updated.description, updated.uid) == ("renamed", "by value", patched.uid)
        assert master.delete_key(gone.uid) == 204
        with pytest.raises(MeilisearchApiError) as e:
            master.get_key(gone.uid)
        assert e.value.code == "api_key_not_found" and e.value.status_code == 404
        assert master.get_key(kept.key).uid == kept.uid  # by value too

        with_key = meilisearch.Client(url, kept.key)
        assert with_key.index("books").search("book", {"limit": 100})["estimatedTotalHits"] == 30
        with pytest.raises(MeilisearchApiError) as e:
            with_key.index("books").update_settings({"rankingRules": ["words"]})
        assert e.value.code == "invalid_api_key" and e.value.status_code == 403

        token = master.generate_tenant_token(
            search_key.uid, {"books": {"filter": "genre = fantasy"}}, api_key=search_key.key,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        secrets.add(token)
        tenant = meilisearch.Client(url, token)
        hits = tenant.index("books").search("book", {"limit": 100, "filter": "id < 20"})["hits"]
        assert hits and {h["genre"] for h in hits} == {"fantasy"} and max(h["id"] for h in hits) < 20
        multi = tenant.multi_search([{"indexUid": "books", "q": "book", "limit": 100}])["results"][0]
        assert multi["estimatedTotalHits"] == 10
        facets = tenant.index("books").facet_search("genre")
        assert [f["value"] for f in facets["facetHits"]] == ["fantasy"]

        # Secrets sent where they could be echoed: a wrong key, a deleted key's value in a
        # path, a token on a route that takes none.
        assert httpx.get(f"{url}/keys/{gone.key}", headers={"Authorization": f"Bearer {MASTER}"}).status_code == 404
        assert httpx.get(f"{url}/version", headers={"Authorization": f"Bearer {gone.key}"}).status_code == 403
        assert httpx.get(f"{url}/indexes", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        logs += miroir.kill9()

        miroir = _Miroir(config, None)
        url = miroir.url
        master = meilisearch.Client(url, MASTER)
        after = {k.uid: k for k in master.get_keys().results}
        assert gone.uid not in after
        assert after[kept.uid].key == kept.key and after[kept.uid].name == "kept"
        assert (after[patched.uid].name, after[patched.uid].description) == ("renamed", "by value")
        assert {k.uid for k in defaults.values()} <= set(after)  # the default keys are not made again
        assert meilisearch.Client(url, kept.key).index("books").search("book")["estimatedTotalHits"] == 30
        hits = meilisearch.Client(url, token).index("books").search("", {"limit": 100})["hits"]
        assert len(hits) == 10 and {h["genre"] for h in hits} == {"fantasy"}
        with pytest.raises(MeilisearchApiError):
            meilisearch.Client(url, gone.key).get_indexes()
        logs += miroir.kill9()
    finally:
        miroir.daemon.kill()
    return logs
