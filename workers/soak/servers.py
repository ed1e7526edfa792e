"""The private servers of a soak and its worker processes.

The soak restarts its broker and PostgreSQL, so it never runs on the machine's shared servers: it
starts a PostgreSQL cluster (``workers.faults.private_postgres``) and a Redis server with an
append-only file fsynced at every write (``workers.faults.private_redis``) or a RabbitMQ node
(``workers.faults.private_rabbitmq``), each on a free port in a temporary directory, and removes
them at the end. On top of them it reuses the bench's pieces: ``BenchServices`` makes the three
databases and migrates them, flushes the Redis db or makes a vhost (on the private node, through
its own ``rabbitmqctl``), starts the workers as processes and stops them at the end.

Workers run with the product's settings except the Import from staging interval (``--import-interval``,
as the bench) and JSON logs to one file per start (``<side>-<n>.log`` in the run's directory).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.bench.brokers import BenchBroker, RabbitmqBench, RedisBench, VhostAdmin, parse_list_queues
from workers.bench.options import BenchOptions
from workers.bench.services import BenchServices, Progress, ServicesUnavailable, WorkerProcess
from workers.soak.options import SoakOptions


#: Starts of a private server before the soak gives up (exit 4).
START_ATTEMPTS = 3


class PrivateNodeAdmin(VhostAdmin):
    """The bench's vhost admin on the soak's own RabbitMQ node: its ``rabbitmqctl -n NODE``."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.how = f"rabbitmqctl -n {node.node}"

    def add_vhost(self, vhost: str, user: str) -> None:
        self.node.ctl("add_vhost", vhost)
        self.node.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        self.node.ctl("delete_vhost", vhost)

    def queue_counts(self, vhost: str) -> dict[str, tuple[int, int]]:
        output = self.node.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
        return parse_list_queues(output)


class PrivateServers:
    """PostgreSQL and the broker of one soak, private to it: started, restarted at will, removed."""

    def __init__(self, broker: str, progress: Progress) -> None:
        self.kind = broker
        self.progress = progress
        self.postgres: Any = None
        self.broker: Any = None

    @property
    def broker_label(self) -> str:
        return "RabbitMQ" if self.kind == "amqp" else "Redis"

    def start(self) -> None:
        from workers.faults.private_postgres import PrivatePostgres

        self.postgres = self._started(PrivatePostgres, lambda server: server.remove(), "PostgreSQL")
        self.progress(f"private PostgreSQL cluster on port {self.postgres.port} ({self.postgres.directory})")
        if self.kind == "amqp":
            from workers.faults.private_rabbitmq import PrivateRabbitmq

            self.progress("starting a private RabbitMQ node (10-30 s)")
            self.broker = self._started(PrivateRabbitmq, lambda server: server.close(), "RabbitMQ")
            self.progress(f"private RabbitMQ node {self.broker.node} on port {self.broker.port} ({self.broker.directory})")
        else:
            from workers.faults.private_redis import PrivateRedis

            self.broker = self._started(PrivateRedis, lambda server: server.close(), "Redis")
            self.progress(f"private Redis on port {self.broker.port}, append-only file fsynced at every write ({self.broker.directory})")

    def _started(self, make: Callable[[], Any], remove: Callable[[Any], None], label: str) -> Any:
        """A private server, started; tried again on another free port when the first start fails (the
        port picked was taken meanwhile by another process: a race the kernel's pick cannot rule out)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            server = make()
            try:
                return server.start()
            except Exception as error:  # noqa: BLE001 - any: the binaries are missing, or the port was taken
                try:
                    remove(server)
                except Exception:  # noqa: BLE001 - clean-up of a server that never ran
                    pass
                if attempt == START_ATTEMPTS:
                    raise ServicesUnavailable(f"cannot start the soak's private {label}: {error}") from None
                self.progress(f"the private {label} did not start ({str(error).splitlines()[0][:200]}); trying another port")
        raise AssertionError("unreachable")

    def restart_broker(self) -> None:
        self.broker.restart()

    def restart_postgres(self) -> None:
        self.postgres.restart()

    def terminate_connections(self, databases: list[str]) -> int:
        return sum(self.postgres.terminate_connections(name) for name in databases)

    @property
    def postgres_url(self) -> str:
        return self.postgres.url

    @property
    def broker_base_url(self) -> str:
        """Redis: the private server's db 0; RabbitMQ: the node without a vhost (the bench adds its own)."""
        if self.kind == "amqp":
            return f"amqp://guest:guest@127.0.0.1:{self.broker.port}"
        return self.broker.url

    def close(self) -> list[str]:
        problems = []
        if self.broker is not None:
            try:
                self.broker.close()
            except Exception as error:  # noqa: BLE001 - clean-up carries on
                problems.append(f"removing the private {self.broker_label}: {error}")
        if self.postgres is not None:
            try:
                self.postgres.remove()
            except Exception as error:  # noqa: BLE001
                problems.append(f"removing the private PostgreSQL cluster: {error}")
        return problems


def bench_options(options: SoakOptions, servers: PrivateServers) -> BenchOptions:
    """The bench's options for the soak's workers on the private servers."""
    broker_url = servers.broker_base_url
    return BenchOptions(
        reports=options.reports,
        lines=options.lines_per_report,
        legal_entities=options.legal_entities,
        projects=options.projects,
        threads=options.threads,
        processes=options.processes,
        import_interval=options.import_interval,
        redis_url=broker_url if options.broker == "redis" else BenchOptions().redis_url,
        amqp_url=broker_url if options.broker == "amqp" else BenchOptions().amqp_url,
        postgres_url=servers.postgres_url,
        timeout=options.timeout,
        keep=options.keep,
        worker_log_level=options.worker_log_level,
        broker=options.broker,
        light=0,
        idle_seconds=0,
    )


def soak_broker(options: BenchOptions, servers: PrivateServers) -> BenchBroker:
    if options.broker == "amqp":
        return RabbitmqBench(options, admin=PrivateNodeAdmin(servers.broker))
    return RedisBench(options)


class SoakServices(BenchServices):
    """The bench's services with a log file per worker start: a side killed and started again keeps both logs."""

    def __init__(self, options: BenchOptions, workdir: Path, progress: Progress, broker: BenchBroker) -> None:
        super().__init__(options, workdir, progress, broker)
        self.starts: dict[str, int] = {}
        self.workers: dict[str, WorkerProcess] = {}

    def start_worker(self, side: str) -> WorkerProcess:
        self.starts[side] = self.starts.get(side, 0) + 1
        command = [
            sys.executable, "-m", "workers", "worker", side,
            "--threads", str(self.options.threads), "--processes", str(self.options.processes),
        ]
        process = WorkerProcess(side, command, self.worker_env(), self.workdir / f"{side}-{self.starts[side]}.log")
        self.processes.append(process)
        self.started_any = True
        self.workers[side] = process
        return process

    def forget(self, process: WorkerProcess) -> None:
        """A worker that is gone (killed, or exited): out of the running set, its log closed."""
        if process in self.processes:
            self.processes.remove(process)
        try:
            process.stop(grace=0)
        except Exception:  # noqa: BLE001 - already dead: only the log file to close
            pass
