"""Configuration: `miroir.toml` decoded into msgspec Structs.

Defaults follow ../shared/design/miroir.md. Loading, environment overrides and
validation live in `load_config` (see below).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    bind: str = "127.0.0.1:7700"
    max_body_bytes: int = 100 * 1024 * 1024  # Meilisearch's default payload limit
    shutdown_grace_ms: int = 10_000


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    master_key: str | None = None
    node_master_key: str | None = None
    admin_key: str | None = None


class ClusterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    shards: int = 16
    replication_factor: int = 1


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    url: str
    group: str = "g0"


class StoreConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./miroir-data"
    snapshot_every_records: int = 10_000


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval_ms: int = 1_000
    timeout_ms: int = 500
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
    log: LogConfig = msgspec.field(default_factory=LogConfig)
