"""Config loading and validation: every user mistake names its key path (the
`miroir check-config` / `serve` runs are tests/integration/test_config_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from miroir.config import Config, ConfigError, config_from_dict, load_config, parse_bind
from tests.support.paths import REPO

NODES = [
    {"id": "n1", "url": "http://127.0.0.1:7701"},
    {"id": "n2", "url": "http://127.0.0.1:7702"},
]


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "miroir.toml"
    p.write_text(text)
    return str(p)


def error_of(d: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(d)
    return info.value.message


def test_defaults_are_valid():
    c = config_from_dict({})
    assert isinstance(c, Config)
    assert c.cluster.shards == 48 and c.cluster.replication_factor == 1
    assert c.server.max_body_bytes == 100 * 1024 * 1024
    # Meilisearch's own bound on its task queue.
    assert (c.tasks.max_kept, c.tasks.delete_batch) == (1_000_000, 100_000)


def test_example_file_shows_the_defaults():
    c = load_config(str(REPO / "miroir.toml"), env={})
    assert c.tasks == config_from_dict({}).tasks


def test_load_full_file(tmp_path):
    path = write(
        tmp_path,
        """
[server]
bind = "0.0.0.0:7777"
[cluster]
shards = 8
replication_factor = 2
[[nodes]]
id = "a"
url = "http://10.0.0.1:7700"
[[nodes]]
id = "b"
url = "https://b.example:7700/"
""",
    )
    c = load_config(path, env={})
    assert c.server.bind == "0.0.0.0:7777"
    assert [n.id for n in c.nodes] == ["a", "b"]
    assert c.nodes[0].group == "g0"


@pytest.mark.parametrize(
    ("d", "path", "words"),
    [
        ({"nodes": [NODES[0], {"id": "n1", "url": "http://h:1"}]}, "nodes[1].id", "duplicate"),
        ({"nodes": [NODES[0], {"id": "n2", "url": "ftp://h"}]}, "nodes[1].url", "http"),
        ({"nodes": [{"id": "n1", "url": "not a url"}]}, "nodes[0].url", "http"),
        ({"nodes": [{"id": "n1", "url": "http://h:99999"}]}, "nodes[0].url", "valid"),
        ({"nodes": [{"id": "n1"}]}, "nodes[0].url", "missing"),
        ({"nodes": [{"id": "bad id!", "url": "http://h"}]}, "nodes[0].id", "letters"),
        ({"nodes": [{"id": "n1", "url": "http://h", "zone": "x"}]}, "nodes[0].zone", "unknown key"),
        ({"nodes": NODES, "cluster": {"replication_factor": 3}}, "cluster.replication_factor", "g0"),
        ({"cluster": {"shards": 0}}, "cluster.shards", ">= 1"),
        ({"cluster": {"shards": "16"}}, "cluster.shards", "expected integer"),
        ({"cluster": {"shards": True}}, "cluster.shards", "expected integer"),
        ({"server": {"bind": "localhost"}}, "server.bind", "host:port"),
        ({"server": {"bind": "127.0.0.1:70000"}}, "server.bind", "0..65535"),
        ({"server": {"bind": ":7700"}}, "server.bind", "host"),
        ({"server": {"max_body_bytes": 0}}, "server.max_body_bytes", ">= 1"),
        ({"server": {"port": 1}}, "server.port", "unknown key"),
        ({"serverr": {}}, "serverr", "unknown key"),
        ({"nodes": {"id": "n1"}}, "nodes", "expected array"),
        ({"log": {"format": "xml"}}, "log.format", "xml"),
        ({"scatter": {"unavailable_shard_policy": "maybe"}}, "scatter.unavailable_shard_policy", "maybe"),
        ({"auth": {"master_key": ""}}, "auth.master_key", "empty"),
        ({"health": {"interval_ms": 0}}, "health.interval_ms", ">= 1"),
        ({"rebalancer": {"docs_per_second": -1}}, "rebalancer.docs_per_second", ">= 0"),
        ({"tasks": {"max_kept": 0}}, "tasks.max_kept", ">= 2"),
        ({"tasks": {"max_kept": "1M"}}, "tasks.max_kept", "expected integer"),
        ({"tasks": {"delete_batch": 1}}, "tasks.delete_batch", ">= 2"),
        ({"tasks": {"max_kept": 30, "delete_batch": 31}}, "tasks.delete_batch", "larger than tasks.max_kept"),
        ({"tasks": {"keep": 5}}, "tasks.keep", "unknown key"),
    ],
)
def test_broken_configs_name_the_key(d, path, words):
    message = error_of(d)
    assert message.startswith(path + ":"), message
    assert words in message


def test_rf_checked_per_group():
    nodes = [
        {"id": "a", "url": "http://h:1", "group": "g0"},
        {"id": "b", "url": "http://h:2", "group": "g0"},
        {"id": "c", "url": "http://h:3", "group": "g1"},
    ]
    message = error_of({"nodes": nodes, "cluster": {"replication_factor": 2}})
    assert "group `g1`" in message
    assert config_from_dict({"nodes": nodes[:2], "cluster": {"replication_factor": 2}}).cluster.replication_factor == 2


def test_parse_bind():
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:7700") == ("::1", 7700)
    with pytest.raises(ValueError):
        parse_bind("::1:7700")


def test_env_overrides_secrets_and_data_dir(tmp_path):
    path = write(tmp_path, '[auth]\nmaster_key = "from-file"\n[store]\ndata_dir = "/file"\n')
    env = {
        "MIROIR_MASTER_KEY": "from-env",
        "MIROIR_ADMIN_KEY": "admin",
        "MIROIR_NODE_MASTER_KEY": "nodes",
        "MIROIR_DATA_DIR": str(tmp_path / "d"),
    }
    c = load_config(path, env=env)
    assert (c.auth.master_key, c.auth.admin_key, c.auth.node_master_key) == ("from-env", "admin", "nodes")
    assert c.store.data_dir == str(tmp_path / "d")
    # An empty variable counts as unset.
    assert load_config(path, env={"MIROIR_MASTER_KEY": ""}).auth.master_key == "from-file"


def test_miroir_config_env_names_the_file(tmp_path):
    path = write(tmp_path, "[cluster]\nshards = 4\n")
    assert load_config(None, env={"MIROIR_CONFIG": path}).cluster.shards == 4


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"), env={})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[server\nbind = 1"), env={})
    with pytest.raises(ConfigError, match=r"^server\.shutdown_grace_ms: expected integer"):
        load_config(write(tmp_path, '[server]\nshutdown_grace_ms = "soon"\n'), env={})
