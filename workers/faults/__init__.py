"""Private servers a fault test or ``dualwrite soak`` owns, restarts and pauses at will.

The machine's shared Redis, RabbitMQ and PostgreSQL are never restarted nor paused: other runs
use them. A fault is played on a server of one's own instead, started on a free port in a
temporary directory and removed afterwards (``private_redis``, ``private_rabbitmq``,
``private_postgres``). Each is a context manager with the same small API: ``start``, ``stop``,
``restart``, ``pause(seconds)`` (unreachable for that long, then back) and ``url``; the brokers
share ``outage`` and ``pause`` (:class:`Outages`).
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The lowest port a private server takes (below it: well-known and registered services' ports).
LOWEST_PORT = 10_000


def free_port() -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    Not one the kernel would pick (``bind(0)``): while a server is down, its clients keep
    connecting to its port, and a client connecting to a port of the ephemeral range on this
    machine, where nobody listens, can be given that very port as its own and connect to itself
    (a TCP simultaneous open). The port is then taken when the server starts again
    (``eaddrinuse``), and the client talks to itself. Seen here with a RabbitMQ node stopped for 30 s.
    """
    low = _ephemeral_ports()[0]
    candidates = list(range(LOWEST_PORT, max(low, LOWEST_PORT + 1000)))
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free TCP port below the ephemeral range")


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Outages:
    """``outage`` and ``pause`` for a private broker: unreachable (``go_down``: connections closed
    and refused) or frozen (``freeze``: SIGSTOP, connections hang), then back."""

    def go_down(self) -> None:
        raise NotImplementedError

    def come_back(self) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def unfreeze(self) -> None:
        raise NotImplementedError

    @contextmanager
    def outage(self, *, frozen: bool = False) -> Iterator[None]:
        """Unreachable while the block runs, back when it ends (``frozen``: hanging, not refusing)."""
        (self.freeze if frozen else self.go_down)()
        try:
            yield
        finally:
            (self.unfreeze if frozen else self.come_back)()

    def pause(self, seconds: float, *, frozen: bool = False) -> None:
        """Unreachable for ``seconds`` (see :meth:`outage`), then back; blocks meanwhile."""
        with self.outage(frozen=frozen):
            time.sleep(seconds)
