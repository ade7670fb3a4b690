"""Configuration: `miroir.toml` decoded into msgspec Structs.

Defaults follow ../shared/design/miroir.md. `load_config` reads the TOML file, applies
environment overrides (secrets, data dir) and validates; `config_from_dict` validates a
config built in memory (e.g. by `miroir dev`). Both raise `ConfigError` whose message
starts with the key path (`nodes[1].url: ...`), so the CLI can print it as one line.
Pure apart from reading the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    bind: str = "127.0.0.1:7700"
    max_body_bytes: int = 100 * 1024 * 1024  # Meilisearch's default payload limit
    shutdown_grace_ms: int = 10_000
    # Idle client connections are closed after this (actix's default keep-alive).
    keep_alive_ms: int = 5_000
    # Open client connections at most; more wait in the listen backlog.
    max_connections: int = 10_000


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    master_key: str | None = None
    node_master_key: str | None = None
    admin_key: str | None = None


class ClusterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    shards: int = 48
    replication_factor: int = 1
    # Owners of a shard that must take a write (design §4.5, core/batches.py): `one`
    # (the others get a journaled hint), `majority` (floor(RF/2)+1 in some group), `all`.
    write_consistency: Literal["one", "majority", "all"] = "one"


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    url: str
    group: str = "g0"
    weight: float = 1.0  # relative capacity (placement 2 gives it this share of its group)


class StoreConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./miroir-data"
    snapshot_every_records: int = 10_000


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval_ms: int = 1_000
    timeout_ms: int = 2_000  # generous: a node busy indexing still answers, just later
    unhealthy_threshold: int = 3
    recovery_threshold: int = 2
    max_backlog_bytes: int = 64 * 1024 * 1024


class ScatterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    node_timeout_ms: int = 5_000
    hedge_after_ms: int | None = None
    unavailable_shard_policy: Literal["partial", "error"] = "partial"


class RebalancerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_concurrent_migrations: int = 2
    docs_per_second: int = 0  # 0 = unthrottled
    page_size: int = 1_000


class TasksConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Meilisearch's own limits (v1.2+): at 1M kept tasks, delete the oldest 100k finished.
    max_kept: int = 1_000_000
    delete_batch: int = 100_000


class DumpsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dir: str | None = None  # where POST /dumps writes; default `<store.data_dir>/dumps`


class SnapshotsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dir: str | None = None  # where POST /snapshots writes; default `<store.data_dir>/snapshots`


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    cluster: ClusterConfig = msgspec.field(default_factory=ClusterConfig)
    nodes: list[NodeConfig] = msgspec.field(default_factory=list)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    scatter: ScatterConfig = msgspec.field(default_factory=ScatterConfig)
    rebalancer: RebalancerConfig = msgspec.field(default_factory=RebalancerConfig)
    tasks: TasksConfig = msgspec.field(default_factory=TasksConfig)
    dumps: DumpsConfig = msgspec.field(default_factory=DumpsConfig)
    snapshots: SnapshotsConfig = msgspec.field(default_factory=SnapshotsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)


# ---------------------------------------------------------------------------------------
# Loading and validation

DEFAULT_CONFIG_FILE = "miroir.toml"

# Environment variables that override the file. Secrets come from the environment so that
# the config file can be world-readable (e.g. shipped by configuration management).
ENV_CONFIG = "MIROIR_CONFIG"
ENV_DATA_DIR = "MIROIR_DATA_DIR"
ENV_SECRETS = {
    "MIROIR_MASTER_KEY": "master_key",
    "MIROIR_NODE_MASTER_KEY": "node_master_key",
    "MIROIR_ADMIN_KEY": "admin_key",
}

# Node ids end up in routing scores and in the journal; keep them printable and stable.
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_GROUP_RE = _NODE_ID_RE


class ConfigError(Exception):
    """A user mistake in the configuration; the message names the key path."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse_bind(bind: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port). Port 0 means "pick a free port"."""
    if bind.startswith("["):
        host, sep, port_s = bind[1:].partition("]:")
        if not sep:
            raise ValueError("expected `[ipv6]:port`")
    else:
        host, sep, port_s = bind.rpartition(":")
        if not sep:
            raise ValueError("expected `host:port`, e.g. `127.0.0.1:7700`")
        if ":" in host:
            raise ValueError("an IPv6 address must be written `[addr]:port`")
    if not host:
        raise ValueError("missing host, e.g. `127.0.0.1:7700` or `0.0.0.0:7700`")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"port `{port_s}` must be an integer in 0..65535")
    if bind.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"`{host}` is not an IPv6 address") from None
    return host, int(port_s)


def _path_of(location: str) -> str:
    """msgspec's `$.nodes[1].url` -> `nodes[1].url`."""
    return location.removeprefix("$").removeprefix(".")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _translate(err: msgspec.ValidationError) -> ConfigError:
    """Turn msgspec's message into `key.path: problem` wording for operators."""
    text = str(err)
    msg, sep, loc = text.rpartition(" - at `")
    if sep:
        path = _path_of(loc.rstrip("`"))
    else:
        msg, path = text, ""
    m = re.fullmatch(r"Object contains unknown field `(.+)`", msg)
    if m:
        return ConfigError(f"{_join(path, m.group(1))}: unknown key")
    m = re.fullmatch(r"Object missing required field `(.+)`", msg)
    if m:
        return ConfigError(f"{_join(path, m.group(1))}: missing required key")
    m = re.fullmatch(r"Expected `(.+)`, got `(.+)`", msg)
    if m:
        want = {"object": "table", "array": "array", "str": "string", "int": "integer"}
        w, g = (want.get(x, x) for x in m.groups())
        return ConfigError(f"{path or '<root>'}: expected {w}, got {g}")
    m = re.fullmatch(r"Invalid enum value (.+)", msg)
    if m and (choices := _choices(path)):
        return ConfigError(f"{path}: {m.group(1)} is not one of {', '.join(repr(c) for c in choices)}")
    return ConfigError(f"{path or '<root>'}: {msg[0].lower() + msg[1:] if msg else 'invalid'}")


def _choices(path: str) -> tuple[Any, ...]:
    """The values a `section.key` of Literal type admits (for the error message)."""
    section, _, key = path.partition(".")
    struct = typing.get_type_hints(Config).get(section)
    if struct is None or not key or "." in key or not isinstance(struct, type):
        return ()
    hint = typing.get_type_hints(struct).get(key)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def _positive(errors: list[str], path: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        errors.append(f"{path}: must be >= {minimum}, got {value}")


def _check_url(url: str) -> str | None:
    """Problem with a node URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as e:
        return f"`{url}` is not a valid URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"`{url}` must start with http:// or https://"
    if not parts.hostname:
        return f"`{url}` has no host"
    if parts.query or parts.fragment:
        return f"`{url}` must not have a query or fragment"
    del port
    return None


def validate(config: Config) -> Config:
    """Semantic checks msgspec's types cannot express. Raises ConfigError (first problem)."""
    errors: list[str] = []
    try:
        parse_bind(config.server.bind)
    except ValueError as e:
        errors.append(f"server.bind: `{config.server.bind}`: {e}")
    _positive(errors, "server.max_body_bytes", config.server.max_body_bytes)
    _positive(errors, "server.shutdown_grace_ms", config.server.shutdown_grace_ms, 0)
    _positive(errors, "server.keep_alive_ms", config.server.keep_alive_ms)
    _positive(errors, "server.max_connections", config.server.max_connections)
    for name in ("master_key", "node_master_key", "admin_key"):
        key = getattr(config.auth, name)
        if key is not None and not key:
            errors.append(f"auth.{name}: must not be empty (omit it to disable)")
    _positive(errors, "cluster.shards", config.cluster.shards)
    _positive(errors, "cluster.replication_factor", config.cluster.replication_factor)

    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, int] = {}
    groups: dict[str, int] = {}
    for i, node in enumerate(config.nodes):
        where = f"nodes[{i}]"
        if not _NODE_ID_RE.match(node.id):
            errors.append(
                f"{where}.id: `{node.id}` must be 1-64 characters of letters, digits, `_`, `-`, `.`"
                " starting with a letter or digit"
            )
        elif node.id in seen_ids:
            errors.append(f"{where}.id: duplicate node id `{node.id}` (also nodes[{seen_ids[node.id]}])")
        else:
            seen_ids[node.id] = i
        if not 0 < node.weight <= 1_000_000:
            errors.append(f"{where}.weight: {node.weight} must be above 0 and at most 1000000")
        problem = _check_url(node.url)
        if problem:
            errors.append(f"{where}.url: {problem}")
        else:
            norm = node.url.rstrip("/").lower()
            if norm in seen_urls:
                errors.append(f"{where}.url: `{node.url}` is also nodes[{seen_urls[norm]}].url")
            seen_urls.setdefault(norm, i)
        if not _GROUP_RE.match(node.group):
            errors.append(f"{where}.group: `{node.group}` must be 1-64 letters, digits, `_`, `-`, `.`")
        groups[node.group] = groups.get(node.group, 0) + 1
    rf = config.cluster.replication_factor
    for group, count in sorted(groups.items()):
        if rf > count:
            errors.append(
                f"cluster.replication_factor: {rf} is larger than group `{group}` ({count} node"
                f"{'s' if count != 1 else ''}); each group needs at least RF nodes"
            )

    if not config.store.data_dir:
        errors.append("store.data_dir: must not be empty")
    _positive(errors, "store.snapshot_every_records", config.store.snapshot_every_records)
    _positive(errors, "health.interval_ms", config.health.interval_ms)
    _positive(errors, "health.timeout_ms", config.health.timeout_ms)
    _positive(errors, "health.unhealthy_threshold", config.health.unhealthy_threshold)
    _positive(errors, "health.recovery_threshold", config.health.recovery_threshold)
    _positive(errors, "health.max_backlog_bytes", config.health.max_backlog_bytes, 0)
    _positive(errors, "scatter.node_timeout_ms", config.scatter.node_timeout_ms)
    if config.scatter.hedge_after_ms is not None:
        _positive(errors, "scatter.hedge_after_ms", config.scatter.hedge_after_ms)
    _positive(errors, "rebalancer.max_concurrent_migrations", config.rebalancer.max_concurrent_migrations)
    _positive(errors, "rebalancer.docs_per_second", config.rebalancer.docs_per_second, 0)
    _positive(errors, "rebalancer.page_size", config.rebalancer.page_size)
    # An automatic deletion of fewer than 2 tasks could only delete the previous one.
    _positive(errors, "tasks.max_kept", config.tasks.max_kept, 2)
    _positive(errors, "tasks.delete_batch", config.tasks.delete_batch, 2)
    if config.tasks.delete_batch > config.tasks.max_kept >= 2:
        errors.append(
            f"tasks.delete_batch: {config.tasks.delete_batch} is larger than tasks.max_kept ({config.tasks.max_kept})"
        )
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else errors[0] + f" (and {len(errors) - 1} more)")
    return config


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Decode and validate a config given as plain data (TOML-shaped dict)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"<root>: expected table, got {type(d).__name__}")
    try:
        config = msgspec.convert(dict(d), Config)
    except msgspec.ValidationError as e:
        raise _translate(e) from None
    return validate(config)


def _apply_env(d: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Environment overrides. An empty variable counts as unset (systemd `Environment=X=`)."""
    d = dict(d)
    for var, key in ENV_SECRETS.items():
        if env.get(var):
            auth = d.get("auth")
            auth = dict(auth) if isinstance(auth, dict) else {}
            auth[key] = env[var]
            d["auth"] = auth
    if env.get(ENV_DATA_DIR):
        store = d.get("store")
        store = dict(store) if isinstance(store, dict) else {}
        store["data_dir"] = env[ENV_DATA_DIR]
        d["store"] = store
    return d


def resolve_config_path(path: str | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """--config, else $MIROIR_CONFIG, else ./miroir.toml when it exists, else None (defaults)."""
    if path:
        return Path(path)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_config(path: str | None, env: Mapping[str, str] = os.environ) -> Config:
    """Read, override from `env`, validate. Raises ConfigError on any user mistake."""
    file = resolve_config_path(path, env)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file `{file}` not found") from None
        except IsADirectoryError:
            raise ConfigError(f"config file `{file}` is a directory") from None
        except OSError as e:
            raise ConfigError(f"config file `{file}` cannot be read: {e.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"config file `{file}` is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file `{file}`: invalid TOML: {e}") from None
    return config_from_dict(_apply_env(data, env))
