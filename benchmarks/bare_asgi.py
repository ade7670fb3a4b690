"""Figure A, the floor: a raw ASGI app on hypercorn.trio answering every request with the
canned node's fixed search body (no framework, no fan-out, no merge).

    python benchmarks/bare_asgi.py --port 0      # prints `READY <port>`
"""

from __future__ import annotations

import argparse
import os
import sys

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contextlib

from canned_node import search_body

BODY = msgspec.json.encode(search_body(0))
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
}
RESPONSE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    while True:  # drain the request body
        msg = await receive()
        if not msg.get("more_body"):
            break
    await send(START)
    await send(RESPONSE)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=3600.0)
    args = p.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.errorlog = None
    config.backlog = 1024

    async def run() -> None:
        with trio.move_on_after(args.max_seconds):
            async with trio.open_nursery() as n:
                binds = await n.start(serve, app, config)
                print(f"READY {binds[0].rsplit(':', 1)[1]}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run)


if __name__ == "__main__":
    main()
