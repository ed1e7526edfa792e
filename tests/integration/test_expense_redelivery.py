"""The expense flow survives what brokers and processes do: duplicates and restarts.

(a) Every message is delivered twice: a middleware enqueues each message a second time with the
    same message id, as an at-least-once broker may. Each is applied once, and the books come out
    exactly as in ``test_expense_flow``.
(b) The workers are stopped in the middle of the flow, once with the post commands still on their
    queue and once with a handler killed inside its transaction, and new workers start on the same
    databases and the same broker. Reconcile ends ok and nothing is doubled.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import Middleware

from contracts.actuals import RUN_SYSTEM_JOBS
from contracts.queues import DATAVERSE_SYSTEM_JOBS
from shared.outbox_batches import carried_parts
from shared.waiting import wait_until
from tests.integration.support import BRIDGE, DATAVERSE, FINANCE, System
from tests.integration.test_expense_flow import (
    WAIT,
    flow_settings,
    given_the_demo_setup,
    reconciled_and_written_back,
    running,
    then_the_books_are_right_to_the_cent,
    today,
    wait_until_reconciled,
    when_the_reports_are_created_submitted_and_approved,
    when_the_reports_are_posted,
)


class DeliverEveryMessageTwice(Middleware):
    """Enqueues every message a second time, same message id, right after the first."""

    def __init__(self) -> None:
        self._resending = threading.local()
        self._lock = threading.Lock()
        self.processed: Counter[str] = Counter()
        #: The parts (outbox rows) each processed message carried.
        self.carried: set[str] = set()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        # A retry's delayed enqueue is left alone: it comes back through here when it is due.
        if delay is not None or getattr(self._resending, "active", False):
            return
        self._resending.active = True
        try:
            broker.enqueue(message)
        finally:
            self._resending.active = False

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        with self._lock:
            self.processed[message.message_id] += 1
            self.carried.update(carried_parts(message.message_id, message.args[0]))


def applied_message_ids(system: System) -> list[str]:
    return [row.message_id for side in (FINANCE, DATAVERSE, BRIDGE) for row in system.inbox(side)]


def test_every_message_delivered_twice_is_applied_once(backend) -> None:  # noqa: ANN001
    twice = DeliverEveryMessageTwice()
    with running(flow_settings(backend.settings), backend.name, middleware=[twice]) as system:
        # Given the set-up and three approved reports, every message of it delivered twice
        given_the_demo_setup(system)
        when_the_reports_are_created_submitted_and_approved(system)

        # When the reports are posted, and every message of the flow is delivered twice too
        first_day = today()
        when_the_reports_are_posted(system)
        report = wait_until_reconciled(system)

        # Then every message was processed at least twice, and each part it carried applied exactly once
        assert twice.processed, "no message went through the broker"
        assert min(twice.processed.values()) >= 2, twice.processed
        applied = applied_message_ids(system)
        assert sorted(applied) == sorted(twice.carried)
        # And every outbox row was sent by its relay (at least once: on a loaded machine the
        # sweeper may legitimately send a row again; the receivers' inboxes make that harmless)
        outbox_ids = {row.message_id for side in (FINANCE, DATAVERSE, BRIDGE) for row in system.outbox(side)}
        assert outbox_ids and outbox_ids <= set(system.sends)
        # And the books are exactly those of a single delivery
        then_the_books_are_right_to_the_cent(system, report, {first_day, today()})


# -- (b) restarts --------------------------------------------------------------------------------


class Crash(RuntimeError):
    """The simulated death of a worker; unclassified, so the message is retried."""


class KilledMidTransaction:
    """Wraps a handler: its first call does its writes, waits until the workers are being stopped,
    then dies before the commit. The unit of work rolls back and the message goes back to the broker."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.reached = threading.Event()
        self.release = threading.Event()
        self.killed_message_id: str | None = None
        #: The parts (one per report) the killed message carried: each applied once in the end.
        self.killed_parts: list[str] = []
        self.crashed = False
        self._lock = threading.Lock()

    def __call__(self, message: Any, uow: Any) -> None:
        with self._lock:
            first = self.killed_message_id is None
            if first:
                self.killed_message_id = str(message.envelope.message_id)
                self.killed_parts = [part.message_id for part in message.parts]
        self.handler(message, uow)
        if first:
            self.reached.set()
            self.release.wait(timeout=WAIT)
            self.crashed = True
            raise Crash("worker stopped in the middle of its transaction")


class ShutdownStarted(Middleware):
    """Tells the test when a worker has begun to shut down."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.started.set()


def stop_with_a_handler_killed_mid_transaction(system: System, killed: KilledMidTransaction, shutdown: ShutdownStarted) -> None:
    wait_until(killed.reached.is_set, timeout=WAIT, what="the approval jobs under way")
    stopper = threading.Thread(target=system.runtime.stop, name="stopping the first workers")
    stopper.start()
    wait_until(shutdown.started.is_set, timeout=WAIT, what="the workers stopping")
    # The retry of the killed message may still be taken by a worker thread of the stopping
    # process (dramatiq lets each finish what it holds), or else by the new workers: either way once.
    killed.release.set()
    stopper.join(timeout=WAIT)
    assert not stopper.is_alive(), "the first workers did not stop"


@pytest.mark.parametrize("moment", ["post commands still queued", "approval job killed mid-transaction"])
def test_workers_restarted_mid_flow_finish_it_once(backend, moment: str) -> None:  # noqa: ANN001
    settings = flow_settings(backend.settings)
    shutdown = ShutdownStarted()
    with running(settings, backend.name, middleware=[shutdown]) as first:
        # Given three approved reports
        given_the_demo_setup(first)
        when_the_reports_are_created_submitted_and_approved(first)
        killed = None
        if moment == "approval job killed mid-transaction":
            consumer = first.consumer(DATAVERSE, DATAVERSE_SYSTEM_JOBS)
            killed = KilledMidTransaction(consumer.endpoint.handlers[RUN_SYSTEM_JOBS.name])
            consumer.endpoint.handlers[RUN_SYSTEM_JOBS.name] = killed

        # When the reports are posted and the workers are stopped with the flow under way
        first_day = today()
        when_the_reports_are_posted(first)
        if killed is None:
            first.runtime.stop()
        else:
            stop_with_a_handler_killed_mid_transaction(first, killed, shutdown)
        assert reconciled_and_written_back(first) is None, "the flow was over before the workers stopped"
        broker = first.runtime.broker

    # And new workers start on the same databases and the same broker
    embedded_broker = None if backend.real_services else broker
    with running(settings, backend.name, broker=embedded_broker) as second:
        report = wait_until_reconciled(second)

        # Then the flow finished, once
        if killed is not None:  # the killed message was rolled back, retried, and applied once
            assert killed.crashed
            assert [second.applied(DATAVERSE, part) for part in killed.killed_parts] == [1] * len(killed.killed_parts)
        then_the_books_are_right_to_the_cent(second, report, {first_day, today()})
