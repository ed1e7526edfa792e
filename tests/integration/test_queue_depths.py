"""``dualwrite queues`` on real Redis and RabbitMQ: ready, delayed, in flight and dead, per queue.

Only finance runs here, so messages for Dataverse wait ready on their queue; a retry waits in the
delay queue for a minute; a handler is held after its commit so its message stays in flight.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import Envelope, Side
from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, table_map
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operator_environment, settings_for
from tests.integration.support import load_test_companies
from workers.cli import main
from workers.cli.exit_codes import ExitCode
from workers.cli.queues_command import watch
from workers.runtime import Runtime

TRANSACTION_CATEGORIES_TO_FINANCE = table_map("msdyn_transactioncategories").inbound


@pytest.fixture(
    params=[
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def finance_only(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[OperatedSystem]:
    """The finance worker alone, retrying a transient failure only after a minute."""
    with ExitStack() as cleanup:
        settings = settings_for(request, request.param, tmp_path / "data", cleanup)
        settings = settings.model_copy(update={"min_backoff_ms": 60_000, "max_backoff_ms": 60_000})
        runtime = Runtime(settings, [Side.FINANCE])
        try:
            runtime.create_tables()
            load_test_companies(runtime)
            runtime.start()
            operator_environment(monkeypatch, settings)
            system = OperatedSystem(runtime, request.param, capsys)
            yield system
            system.broker_queues.close()
        finally:
            runtime.stop()


def row_of(document: dict[str, Any], queue_name: str) -> dict[str, Any]:
    return next(row for row in document["queues"] if row["queue"] == queue_name)


def test_queues_shows_ready_delayed_in_flight_and_dead_messages(finance_only: OperatedSystem) -> None:
    system = finance_only
    redis = system.backend == "redis"

    # Given a message for Dataverse, whose worker is not running
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    # And an approval of a report finance does not hold (yet): retried, in a minute
    system.publish("approve_expense_reports", [{"report_id": "ER-1", "approver": "maria"}], legal_entity="USMF")
    # And a message of an unknown contract, dead at once
    system.put_raw(FINANCE_COMMANDS, '{"contract": "create_unicorns"}', message_id=str(uuid.uuid4()))
    # And a carried transaction category whose handler is held after its commit
    held, release = threading.Event(), threading.Event()

    def hold(_message: Any) -> None:
        held.set()
        release.wait(30)

    system.consumer(Side.FINANCE, TRANSACTION_CATEGORIES_TO_FINANCE).after_commit = hold
    system.put_raw(TRANSACTION_CATEGORIES_TO_FINANCE, carried_category_body())
    try:
        assert held.wait(30), "the carried category was not handled"
        wait_until(lambda: system.dead_letter_count() == 1, timeout=30, what="the unknown contract dead-lettered")
        wait_until(lambda: _delayed_or_fetched(system), timeout=30, what="the approval waiting for its retry")

        # When the operator looks at the queues
        command = system.dualwrite("queues", "--json")

        # Then each queue shows what it holds, with its map and direction
        assert command.status == ExitCode.OK
        queues = command.json
        waiting = row_of(queues, DATAVERSE_COMMANDS.name)
        assert (waiting["ready"], waiting["direction"], waiting["table_map"]) == (1, "upstream -> dataverse", None)
        finance = row_of(queues, FINANCE_COMMANDS.name)
        assert (finance["ready"], finance["dead"]) == (0, 1)
        carried = row_of(queues, TRANSACTION_CATEGORIES_TO_FINANCE.name)
        assert (carried["table_map"], carried["direction"]) == ("msdyn_transactioncategories", "bridge -> finance")
        if redis:
            assert waiting["oldest_ready_age_seconds"] >= 0
            assert finance["delayed"] == 1  # the retry, held by the worker until due, still in .DQ.msgs
            assert carried["in_flight"] == 1 and carried["ready"] == 0
            assert waiting["consumers"] is None
        else:
            # AMQP counts neither delivered-unacked messages nor the age of a ready one
            assert waiting["oldest_ready_age_seconds"] is None and carried["in_flight"] is None
            assert waiting["consumers"] == 0 and finance["consumers"] == 1
            assert isinstance(finance["delayed"], int)

        # And the table for people says what "in flight" means on this broker
        table = system.dualwrite("queues").out
        assert DATAVERSE_COMMANDS.name in table and "IN FLIGHT" in table
        assert ("not acked yet" if redis else "not known on RabbitMQ") in table
    finally:
        release.set()


def _delayed_or_fetched(system: OperatedSystem) -> bool:
    """The approval was tried once and now waits for its retry (an inbox-free, dead-letter-free wait)."""
    counts = system.broker_queues.counts([FINANCE_COMMANDS.name])[FINANCE_COMMANDS.name]
    worker = system.runtime.worker
    held_by_worker = any(consumer.delay_queue.qsize() for consumer in worker.consumers.values()) if worker else False
    return bool(counts.delayed) or held_by_worker


def carried_category_body() -> str:
    return Envelope(
        message_id=uuid.uuid4(), contract="msdyn_transactioncategories", version=1, source=Side.BRIDGE,
        correlation_id="categories:held", occurred_at=datetime.now(UTC),
        payload={"rows": [{"category": "TAXI", "name": "Taxi", "description": None}]},
    ).model_dump_json()


def test_queues_refuses_the_embedded_broker_and_a_watch_of_zero_seconds(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DUALWRITE_BROKER_URL", "embedded://")

    assert main(["queues"]) == ExitCode.CONFIGURATION
    assert "embedded broker lives inside one process" in capsys.readouterr().err
    assert main(["queues", "--watch", "0"]) == ExitCode.USAGE


def test_watch_refreshes_until_told_to_stop(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[int] = []

    watch(lambda: shown.append(len(shown)), 0, clear=False, rounds=3)

    assert shown == [0, 1, 2]
