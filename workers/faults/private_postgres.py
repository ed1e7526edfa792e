"""A PostgreSQL cluster of one's own, to stop, restart and kill connections of at will.

The machine's shared PostgreSQL is never restarted: other runs use it. A fault test (or
``dualwrite soak``) starts a private cluster instead, in a temporary directory, on a free port, and
removes it afterwards. ``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the
``postgres`` user (``runuser``); as anyone else, as that user.

API (stable: the soak imports it)::

    with PrivatePostgres() as cluster:          # initdb + start; stopped and removed on the way out
        url = cluster.create_database("finance")  # postgresql://postgres@127.0.0.1:PORT/finance
        cluster.url                             # the maintenance database's URL (``postgres``)
        cluster.database_url("finance")         # a database's URL, without creating it
        cluster.terminate_connections("finance")  # pg_terminate_backend on its other backends: how many
        cluster.stop()                          # fast shutdown (``mode="immediate"``: a crash, recovery on start)
        cluster.start()
        cluster.restart(down_seconds=5)         # stop, stay down that long, start
        cluster.pause(5)                        # the same: unreachable for 5 s, then back
        cluster.running                         # whether it accepts connections now
        cluster.port, cluster.directory

Every call blocks until done (``pg_ctl -w``; about a second each). The cluster trusts local
connections (no password) and listens on 127.0.0.1 only; ``fsync`` is off, which a clean or an
``immediate`` stop survives (only a crash of the machine would not).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from workers.faults import free_port, port_open

#: How long one ``pg_ctl`` start or stop may take before it is an error.
PG_CTL_TIMEOUT_SECONDS = 60


def postgres_bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``$DUALWRITE_POSTGRES_BIN``, the newest Debian cluster's, or the PATH's."""
    configured = os.environ.get("DUALWRITE_POSTGRES_BIN")
    if configured:
        return Path(configured)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
    if debian:
        return Path(debian[-1])
    found = shutil.which("pg_ctl")
    if found is None:
        raise FileNotFoundError("no PostgreSQL server binaries (pg_ctl): set DUALWRITE_POSTGRES_BIN")
    return Path(found).parent


class PrivatePostgres:
    """One private cluster: made by :meth:`start` the first time, removed by :meth:`remove` (or ``with``)."""

    def __init__(self, port: int | None = None, *, user: str = "postgres") -> None:
        self.port = port or free_port()
        self.user = user
        self.bin_dir = postgres_bin_dir()
        self.directory = Path(tempfile.mkdtemp(prefix="dualwrite-pg-"))
        self.data = self.directory / "data"
        self._made = False

    # -- what it is ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The maintenance database's URL (connect here to create or drop databases)."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return port_open(self.port)

    # -- its life --------------------------------------------------------------------------------

    def start(self) -> "PrivatePostgres":
        """Start the cluster (made by ``initdb`` the first time); returns once it accepts connections."""
        if not self._made:
            self._make()
        self._pg_ctl(
            "start",
            "-l", str(self.directory / "server.log"),
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` (every connection terminated, a clean shutdown) or ``immediate`` (as a crash)."""
        if self.running or (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", mode)

    def restart(self, down_seconds: float = 0.0, *, mode: str = "fast") -> None:
        """Stop, stay down ``down_seconds``, start again."""
        self.stop(mode)
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start()

    def pause(self, seconds: float) -> None:
        """Unreachable for ``seconds`` (stopped), then back: as :meth:`restart`."""
        self.restart(down_seconds=seconds)

    def remove(self) -> None:
        """Stop it (at once) and delete its directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- what runs in it -------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropped first if it exists); its URL."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def terminate_connections(self, database: str) -> int:
        """``pg_terminate_backend`` on every connection to ``database`` but this call's own: how many ended.

        What the server does to them is what a DBA's kill, a failover proxy or an idle-session
        timeout does: each client's next statement (or the one running) fails with
        ``terminating connection due to administrator command`` (SQLSTATE 57P01).
        """
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as admin:
            row = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0

    def __enter__(self) -> "PrivatePostgres":
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()

    # -- how ---------------------------------------------------------------------------------------

    def _make(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, self.user, self.user)
            shutil.chown(self.data, self.user, self.user)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync")
        self._made = True

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(PG_CTL_TIMEOUT_SECONDS), *args)

    def _run(self, *command: str) -> None:
        """Run a server command as the cluster's user (as root: through ``runuser``); its output on failure."""
        if os.geteuid() == 0:
            command = ("runuser", "-u", self.user, "--", *command)
        done = subprocess.run(
            command, cwd=self.directory, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_SECONDS + 30
        )
        if done.returncode != 0:
            log_file = self.directory / "server.log"
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed (exit {done.returncode}): {done.stdout}{done.stderr}\nserver log: {tail}"
            )
