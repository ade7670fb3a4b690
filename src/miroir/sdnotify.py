"""systemd's sd_notify protocol, without libsystemd.

With `Type=notify`, systemd passes NOTIFY_SOCKET (a unix datagram socket; a leading `@`
means the abstract namespace) and, with `WatchdogSec=`, WATCHDOG_USEC. Without
NOTIFY_SOCKET every call is a no-op, so the daemon calls these unconditionally.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import trio

from miroir.logsetup import get_logger

log = get_logger("miroir.sdnotify")


class SdNotifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None):
        self.address = address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SdNotifier:
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited
        # the environment must not ping on its parent's behalf.
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one datagram; False when disabled or systemd is gone (never raises)."""
        if self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                # Non-blocking: a stalled systemd must never stall the event loop.
                sock.connect(addr)
                sock.sendall(message.encode())
            return True
        except OSError as e:
            log.warning("sd_notify failed", message=message, error=str(e))
            return False

    def ready(self) -> bool:
        return self.notify(f"READY=1\nMAINPID={os.getpid()}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half the timeout, as sd_watchdog_enabled(3) advises."""
        if self.address is None or not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    async def watchdog(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ping the watchdog forever; returns at once when no watchdog is configured.

        It runs in the root nursery next to the HTTP server, so a wedged event loop stops
        the pings and systemd restarts us.
        """
        interval = self.watchdog_interval()
        task_status.started()
        if interval is None:
            return None
        while True:
            self.notify("WATCHDOG=1")
            await trio.sleep(interval)
