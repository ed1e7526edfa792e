"""Untimed preparation: the set-up, categories and projects, then every report created, submitted and approved.

Everything goes through the normal commands (``workers.upstream.publish``), as an upstream system
would send it; the bench waits for each stage by polling the databases, never by sleeping blindly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dramatiq
from sqlalchemy import func, select

from contracts.envelope import Side
from contracts.queues import all_queues
from contracts.registry import ContractRegistry
from shared.keys import KeyRing
from shared.side_database import SideDatabase
from workers.bench import load
from workers.bench.load import BenchProject, BenchReport, Company
from workers.bench.services import BenchFailed, BenchServices
from workers.dataverse import tables as dv
from workers.finance import tables as fin
from workers.finance.expense_report_handlers import report_correlation
from workers import reference_data
from workers.upstream import publish

#: How often a wait reports progress.
PROGRESS_EVERY = 2.0


class Pipeline:
    """The bench's view of the running system: publish commands, read the databases, wait with a deadline."""

    def __init__(
        self,
        services: BenchServices,
        broker: dramatiq.Broker,
        registry: ContractRegistry,
        ring: KeyRing,
        *,
        timeout: float,
        progress: Callable[[str], None],
    ) -> None:
        self.services = services
        self.broker = broker
        self.registry = registry
        self.ring = ring
        self.timeout = timeout
        self.progress = progress
        self._last_dead_letter_check = 0.0
        #: The queues as ``dualwrite queues`` counts them, on this run's broker.
        self.queues = services.broker.queues(broker)

    def close(self) -> None:
        self.queues.close()

    def database(self, side: str) -> SideDatabase:
        return self.services.databases[side]

    def scalar(self, side: str, query: Any) -> Any:
        with self.database(side).engine.connect() as connection:
            return connection.scalar(query)

    def publish(self, contract: str, payload: dict[str, Any], correlation_id: str, legal_entity: str | None = None) -> None:
        publish(
            self.broker, self.registry, contract, payload, ring=self.ring, correlation_id=correlation_id, legal_entity=legal_entity
        )

    def check(self, *, dead_letters_every: float = 1.0) -> None:
        """Raise BenchFailed when a worker process died or a message was dead-lettered."""
        self.services.check_alive()
        now = time.monotonic()
        if now - self._last_dead_letter_check < dead_letters_every:
            return
        self._last_dead_letter_check = now
        for side, database in self.services.databases.items():
            table = database.messaging.dead_letters
            with database.engine.connect() as connection:
                first = connection.execute(
                    select(table.c.queue_name, table.c.contract, table.c.error_type, table.c.error).order_by(table.c.id).limit(1)
                ).first()
            if first is not None:
                raise BenchFailed(
                    f"{side} dead-lettered a {first.contract} message from {first.queue_name}: {first.error_type}: {first.error}"
                )

    def wait(self, what: str, done: Callable[[], int], total: int, *, interval: float = 0.1) -> None:
        """Poll ``done()`` until it reaches ``total``, printing progress; BenchFailed after the timeout."""
        start = time.monotonic()
        deadline = start + self.timeout
        last_shown = start
        while True:
            count = done()
            if count >= total:
                return
            self.check()
            now = time.monotonic()
            if now >= deadline:
                raise BenchFailed(f"{what}: {count:,} of {total:,} after {self.timeout:g} s (--timeout)")
            if now - last_shown >= PROGRESS_EVERY:
                self.progress(f"  {what}: {count:,}/{total:,}")
                last_shown = now
            time.sleep(interval)

    def idle(self) -> bool:
        """No message waiting or in flight on any queue, and no outbox row unsent.

        The queue counts are the operators' (``dualwrite queues``). On Redis they include the
        messages workers fetched and have not acked; AMQP does not count those, so on RabbitMQ the
        server's own count (ready plus unacked, every queue of the vhost but dead letters) must be
        0 too, asked after the other checks passed (``rabbitmqctl`` takes half a second).
        """
        counts = self.queues.counts([queue.name for queue in all_queues()]).values()
        if any(c.ready or c.delayed or c.in_flight for c in counts):
            return False
        if not all(self._backlog(database) == 0 for database in self.services.databases.values()):
            return False
        unsettled = self.services.broker.unsettled()
        return unsettled is None or unsettled == 0

    @staticmethod
    def _backlog(database: SideDatabase) -> int:
        outbox = database.messaging.outbox
        with database.engine.connect() as connection:
            return connection.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) or 0

    def wait_idle(self, what: str) -> None:
        """Wait until :meth:`idle` three checks running (a message applied between two checks shows in the next)."""
        self.wait(what, lambda: int(all(self.idle() for _ in range(3))), 1, interval=0.05)


def load_setup(pipeline: Pipeline, companies: list[Company], projects: dict[str, list[BenchProject]]) -> None:
    """Finance set-up (its companies in Dataverse too), transaction categories, expense use, expense categories
    per company, projects."""
    document = load.setup_document(companies)
    counts = reference_data.load_setup(document, {side: pipeline.database(side.value).engine for side in (Side.FINANCE, Side.DATAVERSE)})
    pipeline.progress(
        f"finance set-up loaded: {counts['legal_entities']} legal entities "
        f"({', '.join(f'{c.legal_entity} {c.currency}' for c in companies)}), {counts['exchange_rates']} exchange rates; "
        f"{counts[reference_data.DATAVERSE_COMPANIES]} companies in Dataverse"
    )

    categories = load.CATEGORIES
    pipeline.publish("create_transaction_categories", {"rows": load.transaction_category_rows()}, "bench:transaction-categories")
    shared = fin.shared_categories.c
    pipeline.wait(
        "shared categories in finance",
        lambda: pipeline.scalar("finance", select(func.count()).where(shared.transaction_class == "expense")),
        len(categories),
    )
    pipeline.publish("enable_expense_on_shared_category", {"rows": load.enable_expense_rows()}, "bench:shared-categories")
    pipeline.wait(
        "shared categories enabled for expense",
        lambda: pipeline.scalar("finance", select(func.count()).where(shared.can_be_used_in_expense.is_(True))),
        len(categories),
    )
    for company in companies:
        pipeline.publish(
            "create_expense_categories", {"rows": load.expense_category_rows()}, "bench:expense-categories", company.legal_entity
        )
    pipeline.wait(
        "expense categories in Dataverse",
        lambda: pipeline.scalar("dataverse", select(func.count()).select_from(dv.expense_categories)),
        len(categories) * len(companies),
    )
    for company in companies:
        pipeline.publish("create_projects", {"rows": load.project_rows(projects[company.legal_entity])}, "bench:projects", company.legal_entity)
    total_projects = sum(len(each) for each in projects.values())
    pipeline.wait(
        "projects in finance", lambda: pipeline.scalar("finance", select(func.count()).select_from(fin.projects)), total_projects
    )
    billable = sum(p.billable for each in projects.values() for p in each)
    pipeline.progress(
        f"set-up applied: {len(categories)} categories in {len(companies)} companies, "
        f"{total_projects} projects ({billable} billable)"
    )


def _by_company(reports: list[BenchReport]) -> dict[str, list[BenchReport]]:
    grouped: dict[str, list[BenchReport]] = {}
    for report in reports:
        grouped.setdefault(report.legal_entity, []).append(report)
    return grouped


def prepare_reports(pipeline: Pipeline, reports: list[BenchReport], lines: int) -> None:
    """Create, submit and approve every report; each stage waits until finance shows all of them."""
    total = len(reports)
    status = fin.expense_reports.c

    def count(*where: Any) -> Callable[[], int]:
        return lambda: pipeline.scalar("finance", select(func.count()).select_from(fin.expense_reports).where(*where))

    per_create = load.reports_per_create_message(lines)
    for legal_entity, group in _by_company(reports).items():
        for batch in load.chunks(group, per_create):
            pipeline.publish(
                "create_expense_reports",
                {"rows": [report.create_row() for report in batch]},
                f"bench:create:{batch[0].report_id}",
                legal_entity,
            )
    pipeline.wait("reports created", count(), total)

    for legal_entity, group in _by_company(reports).items():
        for batch in load.chunks(group, 500):
            pipeline.publish(
                "submit_expense_reports",
                {"rows": [{"report_id": r.report_id} for r in batch]},
                f"bench:submit:{batch[0].report_id}",
                legal_entity,
            )
    pipeline.wait("reports submitted", count(status.status == "submitted"), total)

    # Every approval of one report travels in one message: two messages approving different lines of
    # the same report, applied at the same moment, would each leave the other's lines unapproved.
    for legal_entity, group in _by_company(reports).items():
        for batch in load.chunks(group, 250):
            pipeline.publish(
                "approve_expense_reports",
                {"rows": [{"report_id": r.report_id, "approver": approver} for r in batch for approver in r.approvers]},
                f"bench:approve:{batch[0].report_id}",
                legal_entity,
            )
    pipeline.wait("reports approved", count(status.status == "approved"), total)


def post_report_messages(reports: list[BenchReport], per_message: int) -> list[tuple[str, list[BenchReport]]]:
    """The post commands: (legal entity, reports), at most ``per_message`` reports of one company each.

    Companies take turns, as the reports do, so every company's reports flow from the start.
    """
    queues = [load.chunks(group, per_message) for group in _by_company(reports).values()]
    messages: list[tuple[str, list[BenchReport]]] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        for queue in queues:
            if turn < len(queue):
                messages.append((queue[turn][0].legal_entity, queue[turn]))
    return messages


def post(pipeline: Pipeline, legal_entity: str, reports: list[BenchReport]) -> None:
    correlation = report_correlation(legal_entity, reports[0].report_id) if len(reports) == 1 else f"bench:post:{reports[0].report_id}"
    pipeline.publish("post_expense_reports", {"rows": [{"report_id": r.report_id} for r in reports]}, correlation, legal_entity)
