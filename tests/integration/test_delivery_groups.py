"""Messages of one queue that arrive while another is being applied are applied together, in one
transaction, each as the message it is: its own inbox row, its own outcome, applied once.

A hook after the first message's commit holds that message until the others wait for the queue's
turn (``Consumer.waiting``); released, the waiting ones form one group (``shared.delivery_groups``).
Deliveries applied in one unit of work share its start time in the inbox: that is how the tests
see a group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from contracts.queues import DATAVERSE_COMMANDS
from contracts.registry import Decoded
from shared.consumer import Consumer
from shared.waiting import Timeout, wait_until
from tests.integration.operators import fresh_tables, settings_for
from tests.integration.support import (
    DATAVERSE,
    FOUR_CLASSES,
    System,
    given_transaction_categories,
    load_test_companies,
)
from workers.runtime import Runtime


class HoldFirst:
    """``after_commit`` hook: holds the first message applied until ``others`` deliveries wait."""

    def __init__(self, consumer: Consumer, others: int) -> None:
        self.consumer = consumer
        self.others = others
        self.held: str | None = None
        self.waited_for: int = 0

    def __call__(self, message: Decoded[Any]) -> None:
        if self.held is not None:
            return
        self.held = str(message.envelope.message_id)
        try:
            wait_until(lambda: self.consumer.waiting() >= self.others, timeout=20, what="deliveries waiting")
        except Timeout:
            pass  # the test's assertion on ``waited_for`` says what happened
        self.waited_for = self.consumer.waiting()


def hold_first_command(system: System, others: int) -> HoldFirst:
    consumer = system.consumer(DATAVERSE, DATAVERSE_COMMANDS)
    hook = HoldFirst(consumer, others)
    consumer.after_commit = hook
    return hook


def create_categories(system: System, *categories: str) -> list[str]:
    """One create_transaction_categories command per category; their message ids."""
    return [
        str(system.publish("create_transaction_categories", [{"category": c, "name": c.title()}]).message_id)
        for c in categories
    ]


def inbox_starts(system: System, message_ids: list[str]) -> dict[str, Any]:
    """Each message's inbox rows on Dataverse, by id: when its unit of work started."""
    inbox = system.database(DATAVERSE).messaging.inbox
    rows = system.inbox(DATAVERSE, inbox.c.message_id.in_(message_ids))
    assert sorted(row.message_id for row in rows) == sorted(message_ids), "each message applied once"
    return {row.message_id: row.started_at for row in rows}


@pytest.fixture
def rabbitmq_system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    """The three workers on RabbitMQ and PostgreSQL (``system`` runs on the embedded default and Redis)."""
    with ExitStack() as cleanup:
        settings = settings_for(request, "rabbitmq", tmp_path / "data", cleanup, reset_schema=False)
        runtime = Runtime(settings)
        cleanup.callback(runtime.stop)
        fresh_tables(request, "rabbitmq")(runtime)
        load_test_companies(runtime)
        runtime.start()
        yield System(runtime, "rabbitmq")


def test_commands_that_wait_for_the_queue_are_applied_together_each_once(system: System) -> None:
    applied_together_each_once(system)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_commands_that_wait_for_the_queue_are_applied_together_each_once_on_rabbitmq(rabbitmq_system: System) -> None:
    applied_together_each_once(rabbitmq_system)


def applied_together_each_once(system: System) -> None:
    # Given Dataverse holding the first of four commands right after its commit
    hook = hold_first_command(system, others=3)

    # When four transaction categories are created, one command each
    ids = create_categories(system, "HOTEL", "TAXI", "MEAL", "FUEL")
    system.settle()

    # Then the three that waited were applied in one transaction, the held one in its own
    assert hook.waited_for == 3
    starts = inbox_starts(system, ids)
    together = [message_id for message_id in ids if message_id != hook.held]
    assert len({starts[message_id] for message_id in together}) == 1
    assert starts[hook.held] != starts[together[0]]
    # And each category went the whole way once: finance holds its four shared categories
    assert system.shared_categories() == {code: FOUR_CLASSES for code in ("FUEL", "HOTEL", "MEAL", "TAXI")}
    assert system.sends and all(count == 1 for count in system.sends.values()), system.sends
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_refused_command_in_a_group_fails_alone_and_the_others_are_applied(system: System) -> None:
    # Given TAXI, and Dataverse holding its next command right after its commit
    given_transaction_categories(system, "TAXI")
    hook = hold_first_command(system, others=3)

    # When HOTEL, MEAL, taxi (TAXI in another case: refused) and FUEL are created
    hotel, meal, taxi, fuel = create_categories(system, "HOTEL", "MEAL", "taxi", "FUEL")
    system.settle()

    # Then the group failed on taxi, and each of its commands was applied alone: taxi dead-lettered
    # with its own reason at its first attempt, the others applied once
    assert hook.waited_for == 3
    [letter] = system.dead_letters(DATAVERSE)
    assert letter.message_id == taxi
    assert (letter.error_kind, letter.error_type, letter.attempts) == ("permanent", "BusinessRuleViolation", 1)
    assert "transaction category 'taxi' differs only in case from the existing transaction category 'TAXI'" in letter.error
    inbox_starts(system, [hotel, meal, fuel])
    assert system.shared_categories() == {code: FOUR_CLASSES for code in ("FUEL", "HOTEL", "MEAL", "TAXI")}
    assert all(count == 1 for count in system.sends.values()), system.sends


def test_a_message_delivered_twice_into_one_group_is_applied_once(system: System) -> None:
    # Given Dataverse holding its first command right after its commit
    hook = hold_first_command(system, others=3)

    # When HOTEL is created, then TAXI is published twice under one message id, and MEAL
    [hotel] = create_categories(system, "HOTEL")
    wait_until(lambda: hook.held is not None, timeout=20, what="the first command held")
    taxi = system.publish("create_transaction_categories", [{"category": "TAXI", "name": "Taxi"}])
    system.publish(
        "create_transaction_categories", [{"category": "TAXI", "name": "Taxi"}], message_id=taxi.message_id
    )
    [meal] = create_categories(system, "MEAL")
    system.settle()

    # Then both deliveries of TAXI came in one group, and it was applied once and sent on once
    assert hook.waited_for == 3
    inbox_starts(system, [hotel, str(taxi.message_id), meal])
    assert system.shared_categories() == {code: FOUR_CLASSES for code in ("HOTEL", "MEAL", "TAXI")}
    assert all(count == 1 for count in system.sends.values()), system.sends
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


class HoldFirstThenCrashOnce(HoldFirst):
    """Holds the first message as :class:`HoldFirst` does, then crashes once after the commit of
    ``victim`` (a group member): its worker dies before the relay sends what it emitted."""

    def __init__(self, consumer: Consumer, others: int, victim: str) -> None:
        super().__init__(consumer, others)
        self.victim = victim
        self.crashed = 0

    def __call__(self, message: Decoded[Any]) -> None:
        if self.held is None or str(message.envelope.message_id) != self.victim or self.crashed:
            super().__call__(message)
            return
        self.crashed += 1
        raise RuntimeError("worker died after the group's commit, before the relay sent")


#: The sweeper's timer would race the crash for the committed row: slowed down, it leaves the
#: sending to the crashed message's retried delivery.
@pytest.mark.settings(outbox_sweep_seconds=60)
def test_a_crash_after_a_groups_commit_loses_nothing_and_doubles_nothing(system: System) -> None:
    # Given Dataverse holding its first command, and crashing after the commit of the group's TAXI
    taxi = uuid.uuid4()
    consumer = system.consumer(DATAVERSE, DATAVERSE_COMMANDS)
    hook = HoldFirstThenCrashOnce(consumer, others=3, victim=str(taxi))
    consumer.after_commit = hook

    # When MEAL is created and held, then TAXI, FUEL and WINE wait, TAXI being the one that crashes
    create_categories(system, "MEAL")
    wait_until(lambda: hook.held is not None, timeout=20, what="MEAL held")
    system.publish("create_transaction_categories", [{"category": "TAXI", "name": "Taxi"}], message_id=taxi)
    fuel, wine = create_categories(system, "FUEL", "WINE")
    system.settle()

    # Then TAXI's delivery crashed once and was retried: a duplicate, which sent what it had emitted
    assert hook.waited_for == 3 and hook.crashed == 1
    starts = inbox_starts(system, [str(taxi), fuel, wine])
    assert len(set(starts.values())) == 1, "TAXI, FUEL and WINE were applied together"
    # And every category went the whole way once
    codes = ("FUEL", "MEAL", "TAXI", "WINE")
    assert system.shared_categories() == {code: FOUR_CLASSES for code in codes}
    assert all(count == 1 for count in system.sends.values()), system.sends
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}
