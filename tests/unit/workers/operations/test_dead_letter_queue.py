"""Dead letters read from the sides' rows and checked against the broker's copies (embedded Redis)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from dramatiq.brokers.redis import RedisBroker

from shared.publisher import dramatiq_message
from workers.operations.dead_letter_queue import UNRECORDED, DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterRecord
from workers.operations.redis_queues import RedisQueues

QUEUE = "finance.commands"


class Ledgers:
    """The sides' dead-letter rows, in memory."""

    def __init__(self, records: Iterable[DeadLetterRecord]) -> None:
        self.records = list(records)

    def dead(self) -> list[DeadLetterRecord]:
        return [record for record in self.records if record.dead]

    def history(self, message_ids: Iterable[str]) -> list[DeadLetterRecord]:
        wanted = set(message_ids)
        return [record for record in self.records if record.message_id in wanted]

    def message_ids(self) -> set[str]:
        return {record.message_id for record in self.records}


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    broker = RedisBroker(client=fakeredis.FakeRedis(server=fakeredis.FakeServer()), middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def kill(broker: RedisBroker, body: str) -> str:
    """Send a message and dead-letter it the way a worker does (fetch, then nack)."""
    message_id = str(uuid.uuid4())
    broker.enqueue(dramatiq_message(QUEUE, "receive_finance_commands", message_id, body))
    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    consumer.nack(next(consumer))
    consumer.close()
    return message_id


def record(message_id: str, project: str, minutes_ago: int = 0) -> DeadLetterRecord:
    return DeadLetterRecord(
        side="finance", row_id=1, message_id=message_id, queue_name=QUEUE,
        actor_name="receive_finance_commands", contract="create_projects", correlation_id="c",
        error_kind="permanent", error_type="BusinessRuleViolation", error=f"project {project!r} is closed",
        traceback=None, attempts=1, body=json.dumps({"contract": "create_projects"}),
        dead_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
    )


def test_rows_of_one_cause_form_one_group_and_a_missing_broker_copy_is_flagged(broker: RedisBroker) -> None:
    kept = kill(broker, "{}")
    expired = str(uuid.uuid4())  # its broker copy is gone
    queue = DeadLetterQueue(Ledgers([record(kept, "P-1", minutes_ago=5), record(expired, "P-2")]), RedisQueues(broker))

    [group] = queue.groups()

    assert len(group.letters) == 2 and group.cause.pattern == "project '<value>' is closed"
    assert {letter.message_id: letter.in_broker for letter in group.letters} == {kept: True, expired: False}
    assert group.first_seen < group.last_seen
    assert group.as_json()["not_in_broker"] == 1


def test_a_broker_copy_without_a_row_is_listed_under_its_own_cause(broker: RedisBroker) -> None:
    orphan = kill(broker, json.dumps({"contract": "create_projects", "payload": {}}))
    queue = DeadLetterQueue(Ledgers([]), RedisQueues(broker))

    [group] = queue.groups()

    assert (group.cause.error_type, group.cause.contract) == (UNRECORDED, "create_projects")
    assert [letter.message_id for letter in group.letters] == [orphan]
    assert queue.find(orphan[:8]).record is None


def test_without_the_broker_letters_are_listed_unchecked() -> None:
    message_id = str(uuid.uuid4())
    queue = DeadLetterQueue(Ledgers([record(message_id, "P-1")]), None)

    [letter] = queue.letters()

    assert letter.in_broker is None and letter.message_id == message_id


def test_a_refused_stranger_reusing_a_real_letters_id_does_not_hide_it() -> None:
    message_id = str(uuid.uuid4())
    real = record(message_id, "P-1", minutes_ago=5)
    forged = DeadLetterRecord(
        **{**real.__dict__, "row_id": 2, "error_type": "Unauthenticated", "error": "unknown signing key 'x'",
           "dead_at": datetime.now(UTC)}
    )
    queue = DeadLetterQueue(Ledgers([real, forged]), None)

    letters = queue.letters()

    assert sorted(letter.record.error_type for letter in letters) == ["BusinessRuleViolation", "Unauthenticated"]
    assert len(queue.groups()) == 2
