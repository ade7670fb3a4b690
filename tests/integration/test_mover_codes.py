"""A node's refusal reaches the mover as a code (engine/mover.py `MoveFailed.code`), so the
rebalancer and the refill tell "already there" and "not there" from a real failure by
code, never by searching the message. Real devnode, real cluster and journal.
"""

from __future__ import annotations

import pytest
import trio

from miroir.config import config_from_dict
from miroir.engine import mover
from miroir.engine.services import create_cluster
from tests.support.devnodes import start_devnodes
from tests.support.journals import miroir_journal

KEY = "node-key-codes"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def devnode():
    with start_devnodes(1, master_key=KEY) as nodes:
        yield nodes[0]


async def test_refusals_carry_the_node_error_code(devnode, tmp_path):
    config = config_from_dict(
        {
            "auth": {"node_master_key": KEY},
            "cluster": {"shards": 2, "replication_factor": 1},
            "nodes": [{"id": "n1", "url": devnode.url, "group": "g0"}],
        }
    )
    journal = miroir_journal(tmp_path)
    journal.load()
    async with trio.open_nursery() as root:
        await root.start(journal.run)
        cluster = await create_cluster(config, journal)
        try:
            with trio.fail_after(WAIT_S):
                await mover.enqueue_and_wait(cluster, "n1", "POST", "/indexes", json={"uid": "codes", "primaryKey": "id"})
                # Accepted, then failed by the node's queue: the code comes from the task view.
                with pytest.raises(mover.MoveFailed) as failed:
                    await mover.enqueue_and_wait(cluster, "n1", "POST", "/indexes", json={"uid": "codes"})
                assert failed.value.code == "index_already_exists"
                # Refused at once (the node answers 4xx): the code comes from the error body.
                with pytest.raises(mover.MoveFailed) as refused:
                    await mover.enqueue_and_wait(cluster, "n1", "POST", "/indexes", json={"uid": "bad uid!"})
                assert refused.value.code == "invalid_index_uid"
                # Not answering is no refusal: no code.
                with pytest.raises(mover.MoveFailed) as missing:
                    await mover.call(cluster, "n9", "GET", "/indexes")
                assert missing.value.code is None
        finally:
            await cluster.fleet.aclose()
            await journal.aclose()
