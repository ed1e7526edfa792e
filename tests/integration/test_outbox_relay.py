"""The outbox relay on its own: sent from memory after commit, marked sent by the next transaction,
swept only once a row is old enough, and never sent twice by one process while it is sending it.

The broker is left out (sends are recorded); the database is the backend's, SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import table_map
from shared.outbox import Outbox
from shared.outbox_batches import carried_parts
from shared.side import open_database
from shared.side_database import SideDatabase
from shared.unit_of_work import UnitOfWork
from shared.waiting import wait_until
from workers.runtime import SPECS

EXPENSES = table_map("msdyn_expenses")


@pytest.fixture
def cleanup() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def bridge_database(backend) -> Iterator[SideDatabase]:  # noqa: ANN001
    database = open_database(SPECS[Side.BRIDGE], backend.settings)
    database.create_tables()
    try:
        yield database
    finally:
        database.drop_tables()
        database.dispose()


class Sends(Counter[str]):
    """What a relay sent, by message id."""

    def __call__(self, queue_name: str, actor_name: str, message_id: str, body: str) -> None:
        self[message_id] += 1


def incoming() -> Envelope:
    return new_envelope(contract="msdyn_expenses", version=1, source=Side.FINANCE, payload={"rows": []}, correlation_id="c:1")


def carry_one(database: SideDatabase, cause: Envelope, *, relay_after_commit: bool) -> UnitOfWork:
    """A committed unit of work that wrote one outgoing message to the outbox."""
    with UnitOfWork(database, Side.BRIDGE, cause=cause, relay_after_commit=relay_after_commit) as uow:
        uow.emit(EXPENSES.inbound, "msdyn_expenses", 1, {"rows": []}, correlation_id="c:1")
        uow.commit()
    return uow


def sent_at(database: SideDatabase, message_id: str) -> object:
    outbox = database.messaging.outbox
    with database.engine.connect() as connection:
        return connection.scalar(select(outbox.c.sent_at).where(outbox.c.message_id == message_id))


def test_a_message_sent_from_memory_is_marked_sent_by_the_next_transaction_and_not_sent_again(bridge_database: SideDatabase) -> None:
    # Given a committed message, sent from memory right after its commit
    sends = Sends()
    relay = Outbox(bridge_database, sends, resend_after=0)
    uow = carry_one(bridge_database, incoming(), relay_after_commit=True)
    relay.send_committed(uow.outgoing)
    [message_id] = uow.emitted
    assert sends == {message_id: 1}
    assert sent_at(bridge_database, message_id) is None, "the mark waits for the next transaction"

    # When the side's next transaction commits (another message carried)
    carry_one(bridge_database, incoming(), relay_after_commit=False)

    # Then the first row is marked sent, and neither a sweep nor a full relay sends it again
    assert sent_at(bridge_database, message_id) is not None
    relay.relay()
    assert sends[message_id] == 1


def test_the_sweeper_leaves_young_rows_to_the_transaction_that_wrote_them_and_sends_old_ones_once(
    bridge_database: SideDatabase,
) -> None:
    # Given a committed message nobody sent (its process died after the commit)
    uow = carry_one(bridge_database, incoming(), relay_after_commit=False)
    [message_id] = uow.emitted

    # When a sweeper runs while the row is younger than its resend delay, nothing is sent
    patient = Sends()
    assert Outbox(bridge_database, patient, resend_after=3600).sweep() == 0
    assert not patient and sent_at(bridge_database, message_id) is None

    # Then once the row is old enough the sweeper sends it, once, and marks it sent
    sweeps = Sends()
    sweeper = Outbox(bridge_database, sweeps, resend_after=0)
    assert sweeper.sweep() == 1
    assert sweeper.sweep() == 0
    assert sweeps == {message_id: 1}
    assert sent_at(bridge_database, message_id) is not None


def test_a_redelivery_does_not_send_what_this_process_is_still_sending(bridge_database: SideDatabase) -> None:
    # Given a message committed by a first delivery that has not sent it yet
    sends = Sends()
    relay = Outbox(bridge_database, sends, resend_after=0)
    cause = incoming()
    uow = carry_one(bridge_database, cause, relay_after_commit=True)

    # When a second delivery of the same message relays what its cause left unsent, and a sweep runs
    assert relay.relay(caused_by=str(cause.message_id)) == 0
    assert relay.sweep() == 0

    # Then only the first delivery sends it: once
    relay.send_committed(uow.outgoing)
    assert sends == {uow.emitted[0]: 1}
    assert relay.backlog() == 0


def test_a_message_whose_send_failed_is_left_to_the_redelivery(bridge_database: SideDatabase) -> None:
    # Given a committed message whose send from memory fails (the broker is unreachable)
    def unreachable(queue_name: str, actor_name: str, message_id: str, body: str) -> None:
        raise ConnectionError("broker unreachable")

    cause = incoming()
    uow = carry_one(bridge_database, cause, relay_after_commit=True)
    with pytest.raises(ConnectionError):
        Outbox(bridge_database, unreachable).send_committed(uow.outgoing)

    # When the message is redelivered (the error made dramatiq retry it) and relays from the outbox
    sends = Sends()
    assert Outbox(bridge_database, sends).relay(caused_by=str(cause.message_id)) == 1

    # Then the outgoing message was sent once, and is marked sent
    assert sends == {uow.emitted[0]: 1}
    assert sent_at(bridge_database, uow.emitted[0]) is not None


# -- batches: when waiting parts leave together ----------------------------------------------------


class Messages(list[tuple[str, ...]]):
    """What a relay sent: the parts (outbox rows) each message carried."""

    def __call__(self, queue_name: str, actor_name: str, message_id: str, body: str) -> None:
        self.append(carried_parts(message_id, body))


def carry_expense(database: SideDatabase, expense_id: str) -> UnitOfWork:
    """A committed unit of work that wrote one document's part (one expense row) to the outbox."""
    cause = incoming()
    with UnitOfWork(database, Side.BRIDGE, cause=cause, relay_after_commit=True) as uow:
        uow.emit(EXPENSES.inbound, "msdyn_expenses", 1, {"rows": [{"expense_id": expense_id}]},
                 correlation_id=f"expense-report:{expense_id}", legal_entity="USPM")
        uow.commit()
    return uow


def test_an_idle_process_sends_each_part_at_once_as_it_was_written(bridge_database: SideDatabase) -> None:
    messages = Messages()
    relay = Outbox(bridge_database, messages, linger=3600)

    # When one message is applied at a time, its part leaves before the next is applied
    for expense_id in ("E-1", "E-2"):
        with relay.applying():
            uow = carry_expense(bridge_database, expense_id)
            relay.send_committed(uow.outgoing)
            assert messages[-1] == (uow.emitted[0],)

    # Then two messages left, one part each
    assert len(messages) == 2


def test_under_load_parts_wait_for_the_others_and_leave_together_when_the_process_is_idle(
    bridge_database: SideDatabase, cleanup: ExitStack
) -> None:
    messages = Messages()
    relay = Outbox(bridge_database, messages, linger=3600)

    # Given three messages being applied at once (three worker threads)
    cleanup.callback(relay.flush)  # the linger thread ends
    with relay.applying(), relay.applying(), relay.applying():
        committed = [carry_expense(bridge_database, f"E-{n}") for n in range(3)]
        # When each commits and hands its part to the outbox while the others are still at work
        for uow in committed:
            relay.send_committed(uow.outgoing)
        # Then nothing has left yet
        assert messages == []

    # And once none is applied any more, the three parts leave as one message, in commit order
    assert messages == [tuple(uow.emitted[0] for uow in committed)]
    # And every part is marked sent by the next transaction, none sent again by a sweep
    assert Outbox(bridge_database, Messages(), resend_after=0).sweep() == 0
    assert all(sent_at(bridge_database, uow.emitted[0]) is not None for uow in committed)


def test_under_sustained_load_waiting_parts_leave_after_the_linger(bridge_database: SideDatabase) -> None:
    messages = Messages()
    relay = Outbox(bridge_database, messages, linger=0.05)

    # Given two messages being applied for as long as the test lasts (the process never idles)
    with relay.applying(), relay.applying():
        committed = [carry_expense(bridge_database, f"E-{n}") for n in range(2)]
        for uow in committed:
            relay.send_committed(uow.outgoing)

        # Then the parts leave together once they have waited the linger, the load notwithstanding
        wait_until(lambda: messages, timeout=10, what="the lingering parts sent")
        assert messages == [tuple(uow.emitted[0] for uow in committed)]
    relay.flush()  # the linger thread ends


def test_a_stopping_side_sends_what_waits_before_its_final_relay(bridge_database: SideDatabase) -> None:
    messages = Messages()
    relay = Outbox(bridge_database, messages, linger=3600)
    with relay.applying(), relay.applying():
        uow = carry_expense(bridge_database, "E-1")
        relay.send_committed(uow.outgoing)
        assert messages == []

        # When the side stops while a message is still being applied
        assert relay.final_relay() == 0

        # Then the waiting part left, once; and nothing waits from then on
        assert messages == [(uow.emitted[0],)]
        later = carry_expense(bridge_database, "E-2")
        relay.send_committed(later.outgoing)
        assert messages[-1] == (later.emitted[0],)
