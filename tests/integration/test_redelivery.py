"""At-least-once delivery, exactly-once effects: a redelivered or retried message acts once."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from contracts.queues import table_map
from tests.integration.support import BRIDGE, DATAVERSE, FINANCE, FOUR_CLASSES, System
from workers.dataverse import tables as dataverse

HOTEL = [{"category": "HOTEL", "name": "Hotel"}]


class FailsFirst:
    """Wraps a handler: raises a transient error on the first ``failures`` calls, then runs it."""

    def __init__(self, handler: Any, failures: int = 1, error: type[Exception] = RuntimeError) -> None:
        self.handler = handler
        self.failures = failures
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, message: Any, uow: Any) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call <= self.failures:
            raise self.error(f"simulated transient failure #{call}")
        self.handler(message, uow)


@pytest.mark.parametrize("timing", ["after the first was applied", "while the first is in flight"])
def test_the_same_message_delivered_twice_has_one_effect(system: System, timing: str) -> None:
    # Given an upstream command with a fixed message id
    message_id = uuid.uuid4()

    # When the same message (same message id) arrives twice
    system.publish("create_transaction_categories", HOTEL, message_id=message_id, correlation_id="tc:twice")
    if timing == "after the first was applied":
        system.settle()
        assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    system.publish("create_transaction_categories", HOTEL, message_id=message_id, correlation_id="tc:twice")
    system.settle()

    # Then Dataverse applied it once and emitted the table map message once
    assert system.applied(DATAVERSE, message_id) == 1
    assert system.count(DATAVERSE, dataverse.transaction_categories) == 1
    [carried] = system.outbox_caused_by(DATAVERSE, message_id)
    assert carried.sent_at is not None
    assert system.sends[carried.message_id] == 1

    # And downstream, the bridge and finance each applied exactly one message: four shared categories
    assert system.applied(BRIDGE, carried.message_id) == 1
    assert len(system.inbox(BRIDGE)) == 1
    assert len(system.inbox(FINANCE)) == 1
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    assert sum(system.sends.values()) == 2  # dataverse -> bridge, bridge -> finance
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_retried_message_has_one_effect(system: System) -> None:
    # Given finance's handler of msdyn_transactioncategories fails once with a transient error
    consumer = system.consumer(FINANCE, table_map("msdyn_transactioncategories").inbound)
    flaky = FailsFirst(consumer.endpoint.handlers["msdyn_transactioncategories"])
    consumer.endpoint.handlers["msdyn_transactioncategories"] = flaky

    # When a transaction category is created in Dataverse
    system.publish("create_transaction_categories", HOTEL, correlation_id="tc:retried")
    system.settle()

    # Then dramatiq retried the message, and its effect happened once
    assert flaky.calls == 2
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    [received] = system.inbox(FINANCE)
    assert received.correlation_id == "tc:retried"
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_transient_failure_that_never_passes_is_dead_lettered_after_its_retries(system: System) -> None:
    # Given finance's handler of msdyn_transactioncategories always fails with a transient error
    consumer = system.consumer(FINANCE, table_map("msdyn_transactioncategories").inbound)
    broken = FailsFirst(consumer.endpoint.handlers["msdyn_transactioncategories"], failures=1_000, error=TimeoutError)
    consumer.endpoint.handlers["msdyn_transactioncategories"] = broken

    # When a transaction category is created in Dataverse
    system.publish("create_transaction_categories", HOTEL, correlation_id="tc:never")
    system.settle()

    # Then finance tried it once plus its retries, then dead-lettered it as transient, writing nothing
    attempts = 1 + system.runtime.settings.max_retries
    assert broken.calls == attempts
    [letter] = system.dead_letters(FINANCE)
    assert (letter.error_kind, letter.error_type, letter.attempts) == ("transient", "TimeoutError", attempts)
    assert letter.error == f"simulated transient failure #{attempts}"
    assert letter.correlation_id == "tc:never"
    assert system.shared_categories() == {}
    assert system.inbox(FINANCE) == []
    [in_broker] = system.broker_dead_letters(table_map("msdyn_transactioncategories").inbound)
    assert in_broker["message_id"] == letter.message_id
