"""A crash anywhere loses nothing and doubles nothing.

(a) After the handler's commit, before the outbox relay sends: the outgoing message is committed
    but unsent; the retry (or the sweeper) sends it, once.
(b) Before the commit, after the handler's writes: everything rolls back, effects and outgoing
    messages alike; the retry does it all, once.
(c) After the relay sent a committed message from memory, before the row was marked sent: the
    sweeper sends it again once it is ``outbox_resend_after_seconds`` old; the receiver applies it once.

"Sent exactly once" is counted at the relays (every send of every side, by message id) and at
the receivers (one inbox row per message id).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.envelope import Side
from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, Queue, table_map
from contracts.registry import Decoded
from shared.outbox_marks import SentMarks
from shared.waiting import wait_until
from tests.integration.support import (
    BRIDGE,
    DATAVERSE,
    FINANCE,
    FOUR_CLASSES,
    System,
    given_expense_enabled,
    given_transaction_categories,
)
from workers.dataverse import tables as dataverse
from workers.finance import tables as finance

TRANSACTION_CATEGORIES = table_map("msdyn_transactioncategories")
EXPENSE_CATEGORIES = table_map("msdyn_expensecategories")


class Crash(RuntimeError):
    """The simulated crash; an unclassified error, so dramatiq retries the message."""


def assert_every_message_sent_once_and_received_once(system: System) -> None:
    """Every outbox row of every side was sent, exactly once, and its receiver applied it once."""
    receivers = {TRANSACTION_CATEGORIES.outbound.name: BRIDGE, EXPENSE_CATEGORIES.outbound.name: BRIDGE,
                 TRANSACTION_CATEGORIES.inbound.name: FINANCE, EXPENSE_CATEGORIES.inbound.name: DATAVERSE}
    for side in (DATAVERSE, FINANCE, BRIDGE):
        for row in system.outbox(side):
            assert row.sent_at is not None, f"{side} outbox row {row.message_id} never sent"
            assert system.sends[row.message_id] == 1, f"{row.message_id} sent {system.sends[row.message_id]} times"
            assert system.applied(receivers[row.queue_name], row.message_id) == 1
    assert all(count == 1 for count in system.sends.values()), system.sends


# -- (a) crash after commit, before the relay ----------------------------------------------------

#: The outbox sweeper's timer would race the crash hook for the committed row; slowed down, it
#: leaves the sending to the retried delivery, which must relay what the crashed one committed.
RETRY_RELAYS = pytest.mark.settings(outbox_sweep_seconds=60)


class CrashAfterCommit:
    """An ``after_commit`` hook: the first time, notes what is committed and unsent, then crashes."""

    def __init__(self, system: System, side: Side) -> None:
        self.system = system
        self.side = side
        self.calls = 0
        self.unsent_at_crash: list[str] = []
        self.sent_before_crash = 0

    def __call__(self, message: Decoded[Any]) -> None:
        self.calls += 1
        if self.calls > 1:
            return
        caused = self.system.outbox_caused_by(self.side, message.envelope.message_id)
        self.unsent_at_crash = [row.message_id for row in caused if row.sent_at is None]
        self.sent_before_crash = sum(self.system.sends[m] for m in self.unsent_at_crash)
        raise Crash("worker died after commit, before the relay sent")


@RETRY_RELAYS
@pytest.mark.parametrize(
    ("side", "queue"),
    [(DATAVERSE, DATAVERSE_COMMANDS), (BRIDGE, TRANSACTION_CATEGORIES.outbound)],
    ids=["dataverse-command", "bridge-carrier"],
)
def test_a_crash_after_commit_before_the_relay_sends_loses_nothing_and_doubles_nothing(
    system: System, side: Side, queue: Queue
) -> None:
    # Given a worker that dies right after committing a message, before relaying its outbox
    crash = CrashAfterCommit(system, side)
    system.consumer(side, queue).after_commit = crash

    # When a transaction category is created in Dataverse
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}], correlation_id="tc:crash-a")
    system.settle()

    # Then at the crash the outgoing message was committed and not yet sent
    assert crash.calls == 2, "the crashed message was retried"
    assert len(crash.unsent_at_crash) == 1 and crash.sent_before_crash == 0

    # And afterwards every message was sent exactly once and applied once: four shared categories
    assert crash.unsent_at_crash[0] in system.sends
    assert_every_message_sent_once_and_received_once(system)
    assert sum(system.sends.values()) == 2
    assert system.count(DATAVERSE, dataverse.transaction_categories) == 1
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


@RETRY_RELAYS
def test_a_crash_after_finance_commits_an_expense_category_still_reaches_dataverse_once(system: System) -> None:
    # Given HOTEL enabled for expense, and finance dies after committing its next command
    given_transaction_categories(system, "HOTEL")
    given_expense_enabled(system, {"HOTEL": "hotel"})
    sent_so_far = sum(system.sends.values())
    crash = CrashAfterCommit(system, FINANCE)
    system.consumer(FINANCE, FINANCE_COMMANDS).after_commit = crash

    # When finance creates the expense category HOTEL for USPM
    system.publish(
        "create_expense_categories",
        [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}],
        legal_entity="USPM",
    )
    system.settle()

    # Then msdyn_expensecategories carried it once, and Dataverse holds it once
    assert len(crash.unsent_at_crash) == 1 and crash.sent_before_crash == 0
    assert_every_message_sent_once_and_received_once(system)
    assert sum(system.sends.values()) == sent_so_far + 2
    assert system.count(FINANCE, finance.expense_categories) == 1
    assert system.dataverse_expense_categories() == [("USPM", "HOTEL", "HOTEL", "hotel")]


# -- (b) crash before commit, after the writes ---------------------------------------------------


class CrashBeforeCommit:
    """Wraps a handler: the first time it does all its writes, then crashes before the commit.

    On the retry, before the handler runs again, it notes what the crashed attempt left behind:
    rows of ``watched`` and outbox rows, read in the retry's own transaction (on SQLite another
    connection would wait for the write lock that transaction holds).
    """

    def __init__(self, side: Side, handler: Any, watched: Any, *, emits: bool) -> None:
        self.side = side
        self.handler = handler
        self.watched = watched
        self.emits = emits
        self.calls = 0
        self.seen_on_retry: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def __call__(self, message: Decoded[Any], uow: Any) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == 2:
            outbox = uow.database.messaging.outbox
            self.seen_on_retry = (
                uow.connection.scalar(select(func.count()).select_from(self.watched)),
                uow.connection.scalar(select(func.count()).select_from(outbox)),
            )
        self.handler(message, uow)
        if call == 1:
            assert bool(uow.emitted) is self.emits
            assert uow.connection.scalar(select(func.count()).select_from(self.watched)) > 0, "the handler wrote"
            raise Crash("worker died after the handler's writes, before the commit")


def test_a_crash_before_commit_writes_nothing_sends_nothing_and_the_retry_does_it_once(system: System) -> None:
    # Given Dataverse's handler crashes once after its writes, before its commit
    consumer = system.consumer(DATAVERSE, DATAVERSE_COMMANDS)
    crash = CrashBeforeCommit(
        DATAVERSE, consumer.endpoint.handlers["create_transaction_categories"], dataverse.transaction_categories, emits=True
    )
    consumer.endpoint.handlers["create_transaction_categories"] = crash

    # When a transaction category is created
    command = system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}], correlation_id="tc:crash-b")
    system.settle()

    # Then the crashed attempt left nothing: no category, no outbox row, nothing sent
    assert crash.calls == 2
    assert crash.seen_on_retry == (0, 0)

    # And the retry did it all once: one category, one outgoing message sent once, four shared categories
    assert system.applied(DATAVERSE, command.message_id) == 1
    assert system.count(DATAVERSE, dataverse.transaction_categories) == 1
    [carried] = system.outbox_caused_by(DATAVERSE, command.message_id)
    assert system.sends[carried.message_id] == 1
    assert_every_message_sent_once_and_received_once(system)
    assert sum(system.sends.values()) == 2
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_crash_before_finance_commits_shared_categories_leaves_none_half_written(system: System) -> None:
    # Given finance's handler of msdyn_transactioncategories crashes once after writing the categories
    consumer = system.consumer(FINANCE, TRANSACTION_CATEGORIES.inbound)
    crash = CrashBeforeCommit(
        FINANCE, consumer.endpoint.handlers["msdyn_transactioncategories"], finance.shared_categories, emits=False
    )
    consumer.endpoint.handlers["msdyn_transactioncategories"] = crash

    # When two transaction categories are created in Dataverse
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}, {"category": "RAIL", "name": "Rail"}])
    system.settle()

    # Then the crashed attempt left no shared category behind; the retry wrote all eight once
    assert crash.calls == 2
    assert crash.seen_on_retry == (0, 0)
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES, "RAIL": FOUR_CLASSES}
    assert len(system.inbox(FINANCE)) == 1
    assert_every_message_sent_once_and_received_once(system)


# -- (c) crash after the send from memory, before the row is marked sent -------------------------


class ForgetsFirstNote(SentMarks):
    """The side's notes of what it sent, losing the first one: the process died right after that send."""

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[str] = []

    def sent(self, message_ids: Iterable[str], sent_at: datetime) -> None:
        if self.forgotten:
            super().sent(message_ids, sent_at)
            return
        self.forgotten.extend(message_ids)
        self.not_sending(self.forgotten)


def test_a_crash_after_the_send_before_the_row_is_marked_sent_resends_it_and_the_receiver_applies_it_once(
    system: System,
) -> None:
    # Given Dataverse's process dies right after sending its first outgoing message, before the
    # note that marks its outbox row sent is written
    notes = ForgetsFirstNote()
    system.database(DATAVERSE).sent_marks = notes

    # When a transaction category is created in Dataverse
    command = system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}], correlation_id="tc:crash-c")

    # Then the sweeper sends the unmarked row again once it is old enough, and marks it sent
    wait_until(lambda: notes.forgotten, timeout=20, what="the first send from memory")
    [carried] = system.outbox_caused_by(DATAVERSE, command.message_id)
    assert notes.forgotten == [carried.message_id]
    wait_until(lambda: system.sends[carried.message_id] == 2, timeout=20, what="the sweeper's resend")
    system.settle()
    [carried] = system.outbox_caused_by(DATAVERSE, command.message_id)
    assert carried.sent_at is not None

    # And the bridge applied the message once, finance once: four shared categories, nothing dead
    assert system.applied(BRIDGE, carried.message_id) == 1
    assert len(system.inbox(BRIDGE)) == 1 and len(system.inbox(FINANCE)) == 1
    assert system.count(DATAVERSE, dataverse.transaction_categories) == 1
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}
    # And every other message went out once, from memory
    assert all(count == 1 for message_id, count in system.sends.items() if message_id != carried.message_id)
