"""Starting the soak's private servers: a port taken meanwhile costs a retry on another port, not the run."""

from __future__ import annotations

import pytest

from workers.bench.services import ServicesUnavailable
from workers.soak.servers import START_ATTEMPTS, PrivateServers


class Server:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.removed = False

    def start(self) -> "Server":
        if self.fails:
            raise RuntimeError("could not bind IPv4 address \"127.0.0.1\": Address already in use")
        return self


def test_a_server_that_fails_to_start_is_removed_and_another_port_tried() -> None:
    made: list[Server] = []
    shown: list[str] = []

    def make() -> Server:
        made.append(Server(fails=len(made) == 0))
        return made[-1]

    def remove(server: Server) -> None:
        server.removed = True

    started = PrivateServers("redis", shown.append)._started(make, remove, "PostgreSQL")

    assert started is made[1] and made[0].removed and not made[1].removed
    assert shown == ["the private PostgreSQL did not start (could not bind IPv4 address \"127.0.0.1\": Address already in use); trying another port"]


def test_servers_that_never_start_make_the_run_unavailable() -> None:
    made: list[Server] = []

    def make() -> Server:
        made.append(Server(fails=True))
        return made[-1]

    with pytest.raises(ServicesUnavailable, match="cannot start the soak's private Redis: could not bind"):
        PrivateServers("redis", lambda _: None)._started(make, lambda server: None, "Redis")
    assert len(made) == START_ATTEMPTS
