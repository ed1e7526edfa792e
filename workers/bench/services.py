"""The servers and processes of a bench run: throwaway databases, the broker, worker processes.

Everything here is undone by :meth:`BenchServices.clean_up`, which runs even after Ctrl-C or a
failure: worker processes are stopped (SIGTERM, then SIGKILL of their process group), the Redis db
is flushed or the RabbitMQ vhost deleted (``workers.bench.brokers``), and the databases are
dropped unless ``--keep``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.side import SideSpec
from shared.side_database import SideDatabase
from workers.bench.brokers import BenchBroker, BrokerUnavailable, bench_broker
from workers.bench.options import DATABASE_NAMES, BenchOptions

Progress = Callable[[str], None]


class BenchFailed(Exception):
    """The run could not finish (a worker died, a message was dead-lettered, a deadline passed)."""


class ServicesUnavailable(BenchFailed):
    """The broker (Redis, RabbitMQ) or PostgreSQL could not be reached."""


#: A PostgreSQL advisory lock held through a run: one bench at a time per server, since every run
#: drops and recreates the same databases (and flushes the same Redis db).
BENCH_LOCK = 0x6477_6231


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the bench process dies (Linux), so no worker outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerProcess:
    """One subprocess (a side's ``dualwrite worker``, or the no-op baseline) with its log file."""

    def __init__(self, role: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.role = role
        self.command = command
        self.log_path = log_path
        self._log = log_path.open("wb")
        # A session of its own: Ctrl-C in the terminal reaches the bench, which stops the workers itself.
        self.popen = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        status = self.popen.poll()
        if status is not None:
            raise BenchFailed(f"the {self.role} process exited with status {status}; its log: {self.log_path}\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM (the worker drains and relays), then SIGKILL of the whole process group after ``grace`` s."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # the process and any child it left behind
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
        finally:
            self._log.close()


class BenchServices:
    """The broker, the three throwaway databases, and the processes a run started."""

    def __init__(self, options: BenchOptions, workdir: Path, progress: Progress, broker: BenchBroker | None = None) -> None:
        self.options = options
        self.broker = broker or bench_broker(options)
        self.workdir = workdir
        self.progress = progress
        self.processes: list[WorkerProcess] = []
        #: Whether any process was started (its log is worth keeping after a failure).
        self.started_any = False
        self.databases: dict[str, SideDatabase] = {}
        self._created_databases = False
        self._claim = None  # (engine, connection) holding BENCH_LOCK

    @property
    def touched(self) -> bool:
        """Whether the run changed anything that clean-up undoes."""
        return self.started_any or self._created_databases or self.broker.touched

    # -- servers --------------------------------------------------------------------------------

    def _admin_engine(self):  # noqa: ANN202
        url = make_url(self.options.postgres_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)

    def check_reachable(self) -> None:
        try:
            self.broker.check_reachable()
        except BrokerUnavailable as error:
            raise ServicesUnavailable(str(error)) from None
        engine = self._admin_engine()
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - whatever the driver raises, the server is not usable
            reason = str(getattr(error, "orig", None) or error).strip()
            raise ServicesUnavailable(f"PostgreSQL at {self.options.as_json()['postgres_url']} cannot be reached: {reason}") from None
        finally:
            engine.dispose()

    def claim_server(self) -> None:
        """Hold the bench's advisory lock on the PostgreSQL server until clean-up; BenchFailed when another
        run holds it, or when anything is connected to the bench databases (a run of an older bench)."""
        engine = self._admin_engine()
        connection = engine.connect()
        try:
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": BENCH_LOCK}):
                raise BenchFailed(
                    "another dualwrite bench is running against this PostgreSQL server (it holds the bench's advisory lock); "
                    "its databases and broker db would be dropped and flushed under it: wait until it ends"
                )
            names = list(DATABASE_NAMES.values())
            connected = connection.execute(
                text("SELECT datname, count(*) FROM pg_stat_activity WHERE datname = ANY(:names) GROUP BY datname ORDER BY datname"),
                {"names": names},
            ).all()
            if connected:
                shown = ", ".join(f"{name} ({count})" for name, count in connected)
                raise BenchFailed(
                    f"something is connected to the bench databases ({shown}): another bench run, or a client of a --keep run; "
                    "it would lose them when this run drops them"
                )
        except BaseException:
            connection.close()
            engine.dispose()
            raise
        self._claim = (engine, connection)

    def release_server(self) -> None:
        if self._claim is not None:
            engine, connection = self._claim
            self._claim = None
            try:
                connection.close()  # the session ends: its advisory lock goes with it
            finally:
                engine.dispose()

    def prepare_broker(self) -> str:
        """A clean place on the broker: the Redis db flushed, or a throwaway RabbitMQ vhost; says which."""
        try:
            return self.broker.prepare()
        except (BrokerUnavailable, OSError) as error:
            raise ServicesUnavailable(f"{self.broker.label}: {error}") from None

    def recreate_databases(self, specs: dict[str, SideSpec]) -> None:
        """Drop and create the three databases, then migrate each to its schema head (before any worker starts)."""
        engine = self._admin_engine()
        try:
            with engine.connect() as connection:
                for name in DATABASE_NAMES.values():
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        self._created_databases = True
        from shared import migrations  # `dualwrite db upgrade`: workers refuse a schema behind its migrations

        for side, spec in specs.items():
            database = SideDatabase.open(side, self.options.database_url(side), spec.metadata, spec.messaging, pool_size=2)
            migrations.upgrade(database)
            self.databases[side] = database

    def drop_databases(self) -> None:
        for database in self.databases.values():
            database.dispose()
        self.databases.clear()
        engine = self._admin_engine()
        try:
            with engine.connect() as connection:
                for name in DATABASE_NAMES.values():
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    # -- processes ------------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        """The DUALWRITE_* settings of the worker processes: this run's broker and databases."""
        options = self.options
        # Three sides on one machine would fight over one metrics port: the bench serves none.
        env = {k: v for k, v in os.environ.items() if k != "DUALWRITE_METRICS_PORT"}
        env.update(
            {
                "DUALWRITE_BROKER_URL": self.broker.url,
                "DUALWRITE_FINANCE_DB_URL": options.database_url("finance"),
                "DUALWRITE_DATAVERSE_DB_URL": options.database_url("dataverse"),
                "DUALWRITE_BRIDGE_DB_URL": options.database_url("bridge"),
                "DUALWRITE_IMPORT_INTERVAL_SECONDS": str(options.import_interval),
                # The run's own development key ring, shared by the workers and the bench's publisher.
                "DUALWRITE_KEYS_DIR": str(self.keys_dir),
                "DUALWRITE_LOG_LEVEL": options.worker_log_level,
                "DUALWRITE_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    @property
    def keys_dir(self) -> Path:
        return self.workdir / "keys"

    def start(self, role: str, command: list[str], env: dict[str, str] | None = None) -> WorkerProcess:
        process = WorkerProcess(role, command, env or self.worker_env(), self.workdir / f"{role}.log")
        self.processes.append(process)
        self.started_any = True
        return process

    def start_worker(self, side: str) -> WorkerProcess:
        options = self.options
        command = [
            sys.executable, "-m", "workers", "worker", side,
            "--threads", str(options.threads), "--processes", str(options.processes),
        ]
        return self.start(side, command)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop(self, process: WorkerProcess) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    # -- the end --------------------------------------------------------------------------------

    def clean_up(self) -> list[str]:
        """Stop every process, flush Redis or delete the vhost, drop the databases (unless --keep); returns what went wrong."""
        problems = []
        for process in list(self.processes):
            try:
                self.stop(process)
            except Exception as error:  # noqa: BLE001 - clean-up carries on whatever happens
                problems.append(f"stopping the {process.role} process: {error}")
        if self.broker.touched:  # only a db or vhost this run has used
            try:
                self.broker.clean_up()
            except Exception as error:  # noqa: BLE001
                what = "flushing" if self.broker.kind == "redis" else "deleting the vhost of"
                problems.append(f"{what} {self.broker.shown_url}: {error}")
        if self.options.keep:
            for database in self.databases.values():
                database.dispose()
        elif self._created_databases:
            try:
                self.drop_databases()
            except Exception as error:  # noqa: BLE001
                problems.append(f"dropping the bench databases: {error}")
        try:
            self.release_server()
        except Exception as error:  # noqa: BLE001
            problems.append(f"releasing the bench's lock on PostgreSQL: {error}")
        return problems


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float, what: str, check: Callable[[], None] | None = None) -> None:
    """Poll ``condition`` every ``interval`` s until true; ``check`` runs each round and may raise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            raise BenchFailed(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)
