"""A Redis server of one's own, to restart, freeze and take away while workers run on it.

``PrivateRedis`` runs ``redis-server`` on a free port of 127.0.0.1 in a temporary directory, with
the append-only file on and fsynced at every write (``appendfsync always``), as a deployment that
must not lose an enqueued message runs it: a restart then brings back every queue, acks set and
message hash as they were. Nothing else is persisted (no RDB snapshots).

Faults it plays::

    with PrivateRedis() as server:          # started; stopped and removed at the end
        server.url                          # redis://127.0.0.1:PORT/0
        server.restart()                    # SHUTDOWN (AOF flushed), then the same port and dir again
        server.pause(30)                    # down for 30 s (connections refused), then back
        server.pause(30, frozen=True)       # SIGSTOP for 30 s (connections hang), then SIGCONT
        with server.outage(frozen=False):   # unreachable while the block runs, back after it
            ...

The process is stopped (SIGKILL if need be) when the block ends, when ``stop`` is called, or at
the latest when the interpreter exits, so a failed test leaves no server behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import redis

from shared.waiting import wait_until
from workers.faults import Outages, free_port

#: How long a start or a stop may take before it counts as failed (a loaded 2-core machine).
START_TIMEOUT = 30.0


class PrivateRedisError(Exception):
    """The private server would not start or stop (its log's last lines are in the message)."""


class PrivateRedis(Outages):
    """One ``redis-server`` on ``127.0.0.1:port``, data in ``directory`` (both picked if not given)."""

    def __init__(self, *, port: int | None = None, directory: Path | None = None, executable: str = "redis-server") -> None:
        self.port = port or free_port()
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="dualwrite-redis-"))
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False
        atexit.register(self.close)

    @property
    def url(self) -> str:
        """The URL of its db 0 (``url_of(db)`` for another)."""
        return self.url_of(0)

    def url_of(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, db: int = 0) -> redis.Redis:
        """A client that gives up quickly (2 s), for the caller's checks; the caller closes it."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2, socket_connect_timeout=2)

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> "PrivateRedis":
        """Start (or start again, on the same port and directory: the AOF is replayed); returns when it answers PING."""
        if self.running:
            return self
        command = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.frozen = False
        try:
            wait_until(self._answers, timeout=START_TIMEOUT, interval=0.05, what=f"private Redis on port {self.port} answering")
        except Exception as error:
            self._kill()
            raise PrivateRedisError(f"{error}\n{self._log_tail()}") from None
        return self

    def stop(self) -> None:
        """``SHUTDOWN`` (the AOF is complete on disk), then wait for the process to end."""
        process = self.process
        if process is None:
            return
        if self.frozen:
            self.unfreeze()
        if process.poll() is None:
            client = self.client()
            try:
                client.shutdown(nosave=False)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass  # it closes the connection as it goes: the usual answer
            finally:
                client.close()
            try:
                process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise PrivateRedisError(f"private Redis on port {self.port} did not shut down\n{self._log_tail()}") from None
        self.process = None

    def restart(self) -> None:
        """Stop (``SHUTDOWN``) and start again with the same port and data: what a Redis restart does to clients."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, commands hang unanswered (a frozen VM, a network black hole)."""
        if self.process is not None and not self.frozen:
            self.process.send_signal(signal.SIGSTOP)
            self.frozen = True

    def unfreeze(self) -> None:
        """SIGCONT: the frozen server answers what waited."""
        if self.process is not None and self.frozen:
            self.process.send_signal(signal.SIGCONT)
            self.frozen = False

    def go_down(self) -> None:
        """Unreachable for an outage (:meth:`Outages.outage`)."""
        self.stop()

    def come_back(self) -> None:
        self.start()

    def close(self) -> None:
        """Stop the server (killing it if it will not stop) and remove its directory, if we made it."""
        try:
            if self.running:
                try:
                    self.stop()
                except PrivateRedisError:
                    pass
            self._kill()
        finally:
            if self._own_directory:
                shutil.rmtree(self.directory, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def _answers(self) -> bool:
        if not self.running:
            raise PrivateRedisError(f"private Redis on port {self.port} exited with {self.process.returncode if self.process else None}")
        client = self.client()
        try:
            return bool(client.ping())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGCONT)  # a frozen process does not die until it runs
                process.kill()
            except ProcessLookupError:
                pass
            process.wait(timeout=START_TIMEOUT)
        self.frozen = False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        atexit.unregister(self.close)
