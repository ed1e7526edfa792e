"""Prometheus metrics of one worker process: what it applied, what it refused, what it still has to send.

Counters are ours to keep: the consumer counts messages and rows applied and duplicates ignored;
the :class:`shared.middleware.metrics.DeadLetterMetrics` middleware counts dead letters once
dramatiq has decided a failure is final. Gauges are read from each side's database when Prometheus
scrapes, so they are right whatever process wrote the rows: the outbox backlog of every side, and
what a side adds through its :class:`SideGauge` (finance: the expense integration account balance
per legal entity). dramatiq's own metrics join the same registry (``shared.middleware.prometheus``).

Every :class:`Metrics` has its own registry, not prometheus_client's global one: the tests and the
demo assemble several runtimes in one process, each with its own figures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

from contracts.queues import Queue
from shared.logging import get_logger
from shared.side_database import SideDatabase

log = get_logger(__name__)

#: The ``table_map`` label of a queue that belongs to no table map (commands, system jobs).
NO_TABLE_MAP = "none"

Reading = tuple[tuple[str, ...], float]
"""One sample of a gauge: its label values and its value."""


@dataclass(frozen=True)
class SideGauge:
    """A figure a side reads from its own database at every scrape."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[Connection], Iterable[Reading]]


def _queue_labels(queue: Queue, contract: str | None) -> tuple[str, str, str, str]:
    return (queue.consumer.value, queue.name, queue.table_map or NO_TABLE_MAP, contract or "unknown")


@dataclass
class Metrics:
    """The registry of one runtime and the counters its consumers and middleware feed."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ("side", "queue", "table_map", "contract")
        self.messages_applied = Counter(
            "dualwrite_messages_applied", "Messages applied (committed with their inbox row)", labels, registry=self.registry
        )
        self.rows_applied = Counter(
            "dualwrite_rows_applied", "Rows of the messages applied", labels, registry=self.registry
        )
        self.duplicates_ignored = Counter(
            "dualwrite_duplicates_ignored",
            "Messages delivered again after they were applied, recognised by the inbox and ignored",
            labels,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "dualwrite_dead_letters",
            "Messages dead-lettered, by error kind (permanent at once, transient once retries ran out)",
            (*labels, "error_kind"),
            registry=self.registry,
        )

        self.refusals = Counter(
            "dualwrite_messages_refused",
            "Messages refused unheard (dead-lettered at once, nothing written): reason unauthenticated, "
            "forbidden, conflicting duplicate or malformed. Any increase deserves an alert",
            ("side", "queue", "reason"),
            registry=self.registry,
        )
        self.lost_resent = Counter(
            "dualwrite_lost_messages_resent",
            "Parts sent but never received (lost by the broker) that a repair sent again from the sender's "
            "outbox (workers/operations/lost_messages.py), by sending side, queue and receiving side",
            ("side", "queue", "receiver"),
            registry=self.registry,
        )

    def applied(self, queue: Queue, contract: str, rows: int) -> None:
        labels = _queue_labels(queue, contract)
        self.messages_applied.labels(*labels).inc()
        self.rows_applied.labels(*labels).inc(rows)

    def duplicate_ignored(self, queue: Queue, contract: str) -> None:
        self.duplicates_ignored.labels(*_queue_labels(queue, contract)).inc()

    def dead_lettered(self, queue: Queue, contract: str | None, error_kind: str) -> None:
        self.dead_letters.labels(*_queue_labels(queue, contract), error_kind).inc()

    def refused(self, queue: Queue, reason: str) -> None:
        self.refusals.labels(queue.consumer.value, queue.name, reason).inc()

    def resent_lost(self, sender: str, queue_name: str, receiver: str, parts: int) -> None:
        self.lost_resent.labels(sender, queue_name, receiver).inc(parts)

    def watch(self, databases: Iterable[tuple[SideDatabase, Iterable[SideGauge]]]) -> None:
        """Read the outbox backlog, and the side's own gauges, from these databases at every scrape."""
        self.registry.register(DatabaseGauges([(database, tuple(gauges)) for database, gauges in databases]))


class DatabaseGauges(Collector):
    """Gauges read from the sides' databases when Prometheus scrapes (never cached, never stale)."""

    def __init__(self, databases: list[tuple[SideDatabase, tuple[SideGauge, ...]]]) -> None:
        self.databases = databases

    def describe(self) -> list[Metric]:
        return []  # read on collect only: registering must not touch the databases

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily("dualwrite_database_readable", "1 when the side's database answered this scrape", labels=["side"])
        backlog = GaugeMetricFamily("dualwrite_outbox_backlog", "Outgoing messages committed but not yet sent", labels=["side"])
        oldest = GaugeMetricFamily(
            "dualwrite_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox message (0 when none)", labels=["side"]
        )
        own: dict[str, GaugeMetricFamily] = {}
        for database, gauges in self.databases:
            try:
                with database.engine.connect() as connection:
                    count, age = _outbox_backlog(connection, database)
                    readings = [(gauge, list(gauge.read(connection))) for gauge in gauges]
            except SQLAlchemyError as error:
                log.warning("metrics: database unreadable", side=database.side, error=str(error))
                readable.add_metric([database.side], 0)
                continue
            readable.add_metric([database.side], 1)
            backlog.add_metric([database.side], count)
            oldest.add_metric([database.side], age)
            for gauge, samples in readings:
                family = own.setdefault(gauge.name, GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels)))
                for labels, value in samples:
                    family.add_metric(list(labels), value)
        yield from (readable, backlog, oldest, *own.values())


def _outbox_backlog(connection: Connection, database: SideDatabase) -> tuple[int, float]:
    outbox = database.messaging.outbox
    count, first = connection.execute(
        select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
    ).one()
    if first is None:
        return count, 0.0
    first = first if first.tzinfo else first.replace(tzinfo=UTC)  # SQLite gives back naive UTC
    return count, max((datetime.now(UTC) - first).total_seconds(), 0.0)


@dataclass
class MetricsExporter:
    """The HTTP endpoint Prometheus scrapes: ``GET /metrics`` on one port, in a daemon thread."""

    server: WSGIServer
    thread: threading.Thread

    @classmethod
    def start(cls, registry: CollectorRegistry, address: str, port: int) -> "MetricsExporter":
        server, thread = start_http_server(port, addr=address, registry=registry)
        log.info("metrics served", address=address, port=server.server_port)
        return cls(server, thread)

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
