"""A message carries the rows of many business documents, and each document is still applied exactly
once and traced on its own: on the embedded default, Redis + PostgreSQL and RabbitMQ + PostgreSQL.

The expense flow's post command names two USPM reports (US-1, US-2), so finance's transaction emits
two parts for ``msdyn_expenses`` and they leave as one message; every hop after carries them on
together (the bridge, the approval jobs, the actuals). The tests break that batch in the ways
production can: a part resent alone by the sweeper after the pair was delivered (another grouping),
every message delivered twice by the broker, and one document's rows refused while the other's are
applied, then replayed from the dead-letter queue once the cause is fixed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import Middleware

from contracts.queues import DATAVERSE_SYSTEM_JOBS, table_map
from shared.errors import BusinessRuleViolation
from shared.outbox_marks import SentMarks
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operator_environment, settings_for
from tests.integration.support import BRIDGE, DATAVERSE, FINANCE
from tests.integration.test_expense_flow import (
    flow_settings,
    given_the_demo_setup,
    reconciled_and_written_back,
    then_the_books_are_right_to_the_cent,
    today,
    wait_until_reconciled,
    when_the_reports_are_created_submitted_and_approved,
    when_the_reports_are_posted,
)
from tests.integration.test_expense_redelivery import DeliverEveryMessageTwice
from workers.dataverse import tables as dv
from workers.finance.expense_report_handlers import report_correlation
from workers.operations.trace import SideDatabases, trace
from workers.runtime import Runtime

EXPENSES, ACTUALS = table_map("msdyn_expenses"), table_map("msdyn_actuals")
#: Every hop of a posted report up to finance's staging table, in order.
HOPS = (EXPENSES.outbound, EXPENSES.inbound, DATAVERSE_SYSTEM_JOBS, ACTUALS.outbound, ACTUALS.inbound)
US_1, US_2 = report_correlation("USPM", "US-1"), report_correlation("USPM", "US-2")
WAIT = 60.0


class Carried(Middleware):
    """The correlation ids of the parts of every message a worker processed, by queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_queue: dict[str, list[tuple[str, ...]]] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        envelope = json.loads(message.args[0])
        parts = envelope.get("parts") or [envelope]
        with self._lock:
            self.by_queue.setdefault(message.queue_name, []).append(tuple(part["correlation_id"] for part in parts))

    def together(self, queue_name: str, correlations: set[str]) -> bool:
        """Whether one message on the queue carried exactly these documents' parts."""
        return any(set(parts) == correlations for parts in self.by_queue.get(queue_name, []))


@pytest.fixture(
    params=[
        pytest.param("embedded"),
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def broker_name(request: pytest.FixtureRequest) -> str:
    return request.param


class Flow:
    """The three workers on one backend with the flow's settings and some middleware of the test's."""

    def __init__(self, request: pytest.FixtureRequest, broker_name: str, tmp_path: Path, cleanup: ExitStack,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.settings = flow_settings(settings_for(request, broker_name, tmp_path / "data", cleanup))
        self.name, self.cleanup, self.monkeypatch, self.capsys = broker_name, cleanup, monkeypatch, capsys

    def start(self, middleware: Iterable[Middleware] = ()) -> OperatedSystem:
        runtime = Runtime(self.settings)
        self.cleanup.callback(runtime.stop)
        system = OperatedSystem(runtime, self.name, self.capsys)
        for each in middleware:
            runtime.broker.add_middleware(each)
        runtime.create_tables()
        runtime.start()
        operator_environment(self.monkeypatch, self.settings)
        self.cleanup.callback(system.broker_queues.close)
        return system


@pytest.fixture
def flow(request: pytest.FixtureRequest, broker_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Iterator[Flow]:
    with ExitStack() as cleanup:
        yield Flow(request, broker_name, tmp_path, cleanup, monkeypatch, capsys)


def approved_reports(system: OperatedSystem) -> None:
    given_the_demo_setup(system)
    when_the_reports_are_created_submitted_and_approved(system)


def test_the_documents_of_one_transaction_cross_every_hop_in_one_message_and_each_is_traced(flow: Flow) -> None:
    carried = Carried()
    system = flow.start([carried])
    # Given three approved reports, two of them in USPM
    approved_reports(system)

    # When they are posted (one command per company) and the flow has run
    first_day = today()
    when_the_reports_are_posted(system)
    report = wait_until_reconciled(system)

    # Then the two USPM reports crossed every hop to finance's staging table in one message
    assert [queue.name for queue in HOPS if not carried.together(queue.name, {US_1, US_2})] == []
    # And the books are exactly those of the reports sent one by one
    then_the_books_are_right_to_the_cent(system, report, {first_day, today()})
    # And each report's trace shows its own hops, each applied once, on the side it was meant for
    databases = SideDatabases(system.database(FINANCE), system.database(DATAVERSE), system.database(BRIDGE))
    for correlation in (US_1, US_2):
        hops = [hop for hop in trace(databases, correlation).hops if hop.kind == "message"]
        applied = [hop.queue for hop in hops if hop.result == "applied" and hop.correlation_id == correlation]
        assert [queue.name for queue in HOPS if applied.count(queue.name) != 1] == [], (correlation, applied)


class ForgetsOnePart(SentMarks):
    """Once armed, the first message of several parts that is sent has its first part's note lost,
    as if the process died after that send: the sweeper then sends that part again, alone."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.forgotten: list[str] = []

    def sent(self, message_ids: Iterable[str], sent_at: datetime) -> None:
        ids = list(message_ids)
        if self.armed and not self.forgotten and len(ids) > 1:
            self.forgotten.append(ids[0])
            self.not_sending(ids[:1])
            ids = ids[1:]
        super().sent(ids, sent_at)


def test_a_part_resent_alone_after_its_batch_was_applied_is_applied_once(flow: Flow) -> None:
    system = flow.start()
    approved_reports(system)
    # Given finance loses the note of one part of the first batch it sends
    notes = ForgetsOnePart()
    system.database(FINANCE).sent_marks = notes
    notes.armed = True

    # When the reports are posted
    first_day = today()
    when_the_reports_are_posted(system)
    [forgotten] = wait_until(lambda: notes.forgotten, timeout=WAIT, what="a batch sent")
    wait_until(lambda: system.sends[forgotten] == 2, timeout=WAIT, what="the sweeper's resend of the part")

    # Then the bridge applied that part once, though it came twice in two different messages
    assert system.applied(BRIDGE, forgotten) == 1
    report = wait_until_reconciled(system)
    then_the_books_are_right_to_the_cent(system, report, {first_day, today()})
    assert [row for row in system.outbox(FINANCE) if row.sent_at is None] == []


def test_every_batch_delivered_twice_is_applied_once(flow: Flow) -> None:
    twice, carried = DeliverEveryMessageTwice(), Carried()
    system = flow.start([twice, carried])
    approved_reports(system)

    # When the reports are posted and the broker delivers every message twice
    first_day = today()
    when_the_reports_are_posted(system)
    report = wait_until_reconciled(system)

    # Then the batches were processed twice each and every part in them applied once
    assert carried.together(EXPENSES.inbound.name, {US_1, US_2})
    batches = [mid for mid, count in twice.processed.items() if count < 2]
    assert batches == []
    inbox = [row.message_id for side in (FINANCE, DATAVERSE, BRIDGE) for row in system.inbox(side)]
    assert sorted(inbox) == sorted(twice.carried)
    then_the_books_are_right_to_the_cent(system, report, {first_day, today()})


class RefusesReports:
    """Wraps the bridge's msdyn_expenses handler: refuses any message holding these reports' rows while broken."""

    def __init__(self, handler: Any, *reports: str) -> None:
        self.handler = handler
        self.reports = set(reports)
        self.broken = True
        self.refused = 0

    def __call__(self, message: Any, uow: Any) -> None:
        held = sorted({row.report_id for row in message.payload.rows} & self.reports)
        if self.broken and held:
            self.refused += 1
            raise BusinessRuleViolation(f"the test refuses {', '.join(held)} until it is fixed")
        self.handler(message, uow)


@pytest.mark.parametrize(
    "broker_name",  # the operator's replay reaches the broker from outside: not the embedded one
    [
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ],
)
def test_one_documents_refusal_leaves_the_others_applied_and_its_replay_applies_it_once(flow: Flow) -> None:
    system = flow.start()
    approved_reports(system)
    consumer = system.consumer(BRIDGE, EXPENSES.outbound)
    refusing = RefusesReports(consumer.endpoint.handlers[EXPENSES.name], "US-2")
    consumer.endpoint.handlers[EXPENSES.name] = refusing

    # When the reports are posted and the bridge refuses US-2's rows in the batch it shares with US-1
    first_day = today()
    when_the_reports_are_posted(system)
    system.wait_for_dead_letters(1)

    # Then US-1 went on alone (its actuals exist), US-2 did not, and the letter names US-2's part
    wait_until(lambda: system.count(DATAVERSE, dv.actuals, dv.actuals.c.expense_id.like("US-1-%")) > 0,
               timeout=WAIT, what="US-1's actuals")
    assert system.count(DATAVERSE, dv.expenses, dv.expenses.c.expense_id.like("US-2-%")) == 0
    [letter] = system.dead_letters(BRIDGE)
    assert letter.error_type == "PartsFailed"
    assert "1 of the message's 2 parts failed, the others were applied: part " in letter.error
    assert f"({US_2}): BusinessRuleViolation: the test refuses US-2 until it is fixed" in letter.error
    assert reconciled_and_written_back(system) is None

    # When the cause is fixed and the operator replays the letter
    refusing.broken = False
    replay = system.dualwrite("dlq", "replay", "--all", "--as", "alice", "--json")
    assert replay.status == 0, replay.err

    # Then US-2 is applied, US-1 is not applied again, and the books are right to the cent
    report = wait_until(lambda: reconciled_and_written_back(system), timeout=WAIT, what="reconcile ok")
    system.settle()
    assert [(row.outcome, row.resolved_by) for row in system.dead_letters(BRIDGE)] == [("replayed", "alice")]
    then_the_books_are_right_to_the_cent(system, report, {first_day, today()})


@pytest.mark.parametrize("broker_name", ["embedded"])
def test_a_batch_whose_every_document_fails_on_its_own_too_is_dead_lettered_with_its_own_reason(flow: Flow) -> None:
    system = flow.start()
    approved_reports(system)
    consumer = system.consumer(BRIDGE, EXPENSES.outbound)
    consumer.endpoint.handlers[EXPENSES.name] = RefusesReports(consumer.endpoint.handlers[EXPENSES.name], "US-1", "US-2")

    # When the reports are posted and the bridge refuses the rows of both USPM reports
    when_the_reports_are_posted(system)
    system.wait_for_dead_letters(1)

    # Then the message is dead-lettered with the error it gave, nothing of it applied
    [letter] = system.dead_letters(BRIDGE)
    assert (letter.error_type, letter.error) == (
        "BusinessRuleViolation", "the test refuses US-1, US-2 until it is fixed")
    assert [row.correlation_id for row in system.inbox(BRIDGE) if row.queue_name == EXPENSES.outbound.name] == [
        report_correlation("DEMF", "DE-1")]
