"""Dead letters read from the sides' rows and checked against the broker's copies (embedded Redis)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from dramatiq.brokers.redis import RedisBroker

from contracts.senders import OPERATOR
from shared.keys import KeyRing, SigningKey
from shared.publisher import dramatiq_message
from shared.signatures import Signer
from workers.operations.dead_letter_queue import UNRECORDED, AmbiguousId, DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterRecord
from workers.operations.dead_letter_repair import DeadLetterRepair
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

    def resolve(self, record: DeadLetterRecord, outcome: str, operator: str, replayed_body: str | None = None) -> bool:
        at = self.records.index(record)
        self.records[at] = DeadLetterRecord(**{**record.__dict__, "outcome": outcome, "resolved_by": operator})
        return True


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, int, dict]] = []

    def record(self, operator: str, action: str, target: str, count: int, details: dict) -> None:
        self.entries.append((action, target, count, details))


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    broker = RedisBroker(client=fakeredis.FakeRedis(server=fakeredis.FakeServer()), middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def kill(broker: RedisBroker, body: str, message_id: str | None = None) -> str:
    """Send a message and dead-letter it the way a worker does (fetch, then nack)."""
    message_id = message_id or str(uuid.uuid4())
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


def copy_of(broker: RedisBroker, body: str) -> str:
    """The digest of the one dead-letter copy in the broker carrying this envelope."""
    [digest] = [copy.digest for copy in RedisQueues(broker).dead_letters(QUEUE) if copy.body == body]
    return digest


def test_two_letters_with_one_message_id_each_get_their_own_copy_and_a_purge_takes_only_its_own(broker: RedisBroker) -> None:
    # Given a real letter, and a stranger's message refused under the same id, each with its copy in the broker
    message_id = str(uuid.uuid4())
    real_body, impostor_body = json.dumps({"contract": "create_projects", "n": 1}), json.dumps({"contract": "create_projects", "n": 666})
    kill(broker, real_body, message_id)
    kill(broker, impostor_body, message_id)
    real = DeadLetterRecord(**{**record(message_id, "P-1", minutes_ago=5).__dict__, "body": real_body, "copy_digest": copy_of(broker, real_body)})
    impostor = DeadLetterRecord(
        **{**real.__dict__, "row_id": 2, "error_type": "Forbidden", "error": "x may not write", "body": impostor_body,
           "copy_digest": copy_of(broker, impostor_body), "dead_at": datetime.now(UTC)}
    )
    ledgers = Ledgers([impostor, real])  # the order rows come in does not matter
    queue = DeadLetterQueue(ledgers, RedisQueues(broker))

    # Then each letter is paired with exactly its own copy, and has a letter id of its own
    letters = {letter.letter_id: letter for letter in queue.letters()}
    assert set(letters) == {"finance:1", "finance:2"}
    assert [copy.body for copy in letters["finance:1"].broker_copies] == [real_body]
    assert [copy.body for copy in letters["finance:2"].broker_copies] == [impostor_body]
    assert letters["finance:2"].reason == "forbidden" and letters["finance:1"].reason is None

    # And the message id alone is ambiguous: the error names both letters to choose from
    with pytest.raises(AmbiguousId) as ambiguous:
        queue.find(message_id[:8])
    assert "finance:1" in str(ambiguous.value) and "finance:2" in str(ambiguous.value) and "letter id" in str(ambiguous.value)
    assert queue.find("finance:2").record == impostor

    # When the stranger's letter is purged
    signer = Signer(KeyRing(None, [SigningKey.generate(OPERATOR)]), OPERATOR)
    repair = DeadLetterRepair(ledgers, RedisQueues(broker), None, Audit(), "dana", signer=signer)  # type: ignore[arg-type]
    report = repair.purge([letters["finance:2"]], "letter finance:2")

    # Then only its copy is gone: the real letter keeps its row, reason and bytes
    assert (report.done, report.letters) == ([message_id], ["finance:2"])
    assert [copy.body for copy in RedisQueues(broker).dead_letters(QUEUE)] == [real_body]
    [left] = queue.letters()
    assert (left.letter_id, left.record.error_type, left.in_broker, left.body) == ("finance:1", "BusinessRuleViolation", True, real_body)
    assert queue.find(message_id).letter_id == "finance:1"


def test_rows_recorded_before_digests_get_the_copy_carrying_their_own_envelope(broker: RedisBroker) -> None:
    message_id = str(uuid.uuid4())
    first, second = json.dumps({"contract": "create_projects", "n": 1}), json.dumps({"contract": "create_projects", "n": 2})
    kill(broker, first, message_id)
    kill(broker, second, message_id)
    older = DeadLetterRecord(**{**record(message_id, "P-1", minutes_ago=5).__dict__, "body": second})
    newer = DeadLetterRecord(**{**older.__dict__, "row_id": 2, "body": first, "error_type": "Unauthenticated", "dead_at": datetime.now(UTC)})

    letters = {letter.letter_id: letter for letter in DeadLetterQueue(Ledgers([older, newer]), RedisQueues(broker)).letters()}

    assert [copy.body for copy in letters["finance:1"].broker_copies] == [second]
    assert [copy.body for copy in letters["finance:2"].broker_copies] == [first]


def test_a_copy_no_row_claims_is_a_letter_of_its_own_even_under_a_recorded_message_id(broker: RedisBroker) -> None:
    message_id = str(uuid.uuid4())
    recorded, stray = json.dumps({"contract": "create_projects", "n": 1}), json.dumps({"contract": "create_projects", "n": 2})
    kill(broker, recorded, message_id)
    kill(broker, stray, message_id)
    row = DeadLetterRecord(**{**record(message_id, "P-1").__dict__, "body": recorded, "copy_digest": copy_of(broker, recorded)})
    queue = DeadLetterQueue(Ledgers([row]), RedisQueues(broker))

    letters = {letter.letter_id: letter for letter in queue.letters()}

    stray_id = f"broker:{copy_of(broker, stray)[:12]}"
    assert set(letters) == {"finance:1", stray_id}
    assert letters[stray_id].record is None and letters[stray_id].body == stray
    assert [copy.body for copy in letters["finance:1"].broker_copies] == [recorded]
    with pytest.raises(AmbiguousId, match=stray_id):
        queue.find(message_id)
    assert queue.find(stray_id[:15]).body == stray
