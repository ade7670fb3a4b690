"""The application context: what a request handler needs of the daemon.

One `Miroir` per daemon. The daemon builds it, sets `journal` once the journal is
replayed and its writer runs, then `engine` (the cluster, engine/cluster.py) and
`ready`. Route modules reach it with `current_miroir()`.
"""

from __future__ import annotations

from quart import current_app

from miroir.config import Config
from miroir.core.model import MiroirState
from miroir.engine.cluster import Cluster
from miroir.store.journal import Journal


class Miroir:
    """State shared by the HTTP front end and the daemon.

    Ownership: the daemon owns the journal (opens and closes it) and the cluster's
    services (engine/services.py); this object only points at them.
    """

    def __init__(self, config: Config):
        self.config = config
        self.journal: Journal[MiroirState] | None = None
        # Set when the journal is replayed and the writer runs; /_miroir/ready reports it.
        self.ready = False
        # The cluster, once the journal is replayed (None before: routes answer 503).
        self.engine: Cluster | None = None
        self.bound_port: int | None = None


def current_miroir() -> Miroir:
    """The context of the app handling the current request."""
    miroir: Miroir = current_app.config["MIROIR"]
    return miroir
