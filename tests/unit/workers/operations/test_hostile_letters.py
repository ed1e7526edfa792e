"""One hostile letter never breaks the operators' view, refusals are grouped by reason and queue, and
what a replay would launder (malformed bytes, a stranger's message) is not sent back.

The letters are built in memory (rows as the sides' ``dead_letters`` tables give them back, and
broker copies written straight into a fake Redis), and the commands' own functions render them.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from dramatiq.brokers.redis import RedisBroker

from contracts.senders import OPERATOR
from shared.dead_letters import BODY_BYTES, fit_body
from shared.keys import KeyRing, SigningKey
from shared.signatures import Signer
from workers.cli import dlq_command
from workers.cli.exit_codes import ExitCode
from workers.operations.dead_letter_queue import UNRECORDED, DeadLetter, DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterRecord
from workers.operations.dead_letter_repair import DeadLetterRepair, why_not_replayable
from workers.operations.redis_queues import RedisQueues

FINANCE_COMMANDS = "finance.commands"
DATAVERSE_COMMANDS = "dataverse.commands"

#: label -> a body anyone could have put on a queue.
HOSTILE_BODIES: dict[str, str] = {
    "deeply nested": "[" * 100_000,
    "deeply nested, closed": "[" * 100_000 + "]" * 100_000,
    "nested payload": '{"contract": "create_projects", "payload": ' + "[" * 5_000 + "]" * 5_000 + "}",
    "not json": "this is not json {",
    "not utf-8, kept escaped": "\\xff\\xfe\\x00garbage",
    "terminal escapes": "\x1b[2J\x1b[31mred\x07 and a NUL \x00 and a lone surrogate \ud800",
    "json array": "[1, 2, 3]",
    "json string": '"\\u001b[2J"',
    "wrong types": json.dumps({"contract": 5, "correlation_id": {"a": [1, 2]}, "version": {"x": 1}, "payload": "rows"}),
    "huge digits": "1" * 10_000,
    "empty": "",
    "huge": json.dumps({"contract": "create_projects", "payload": {"rows": ["x" * 1000] * 600}}),
}


class Ledgers:
    """The sides' dead-letter rows, in memory; what repairs mark is kept."""

    def __init__(self, records: Iterable[DeadLetterRecord]) -> None:
        self.records = list(records)
        self.resolved: list[tuple[str, str]] = []
        self.superseded: list[str] = []

    def dead(self) -> list[DeadLetterRecord]:
        return [record for record in self.records if record.dead and record.message_id not in dict(self.resolved)]

    def history(self, message_ids: Iterable[str]) -> list[DeadLetterRecord]:
        wanted = set(message_ids)
        return [record for record in self.records if record.message_id in wanted]

    def message_ids(self) -> set[str]:
        return {record.message_id for record in self.records}

    def resolve(self, record: DeadLetterRecord, outcome: str, operator: str, replayed_body: str | None = None) -> bool:
        self.resolved.append((record.message_id, outcome))
        return True

    def supersede(self, record: DeadLetterRecord, error: BaseException, operator: str) -> None:
        self.superseded.append(record.message_id)


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def record(self, operator: str, action: str, target: str, count: int, details: dict[str, Any]) -> None:
        self.entries.append({"operator": operator, "action": action, "target": target, "count": count, "details": details})


def row(
    body: str,
    *,
    error_type: str = "InvalidContract",
    error: str = "envelope: Invalid JSON",
    queue: str = FINANCE_COMMANDS,
    contract: str | None = None,
    message_id: str | None = None,
    minutes_ago: int = 0,
) -> DeadLetterRecord:
    return DeadLetterRecord(
        side="finance" if queue == FINANCE_COMMANDS else "dataverse", row_id=1, message_id=message_id or str(uuid.uuid4()),
        queue_name=queue, actor_name=f"receive_{queue.replace('.', '_')}", contract=contract, correlation_id=None,
        error_kind="permanent", error_type=error_type, error=error, traceback="Traceback...\n  \x1b[31mboom\n",
        attempts=1, body=body, dead_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
    )


def good_body(message_id: str, code: str = "TAXI") -> str:
    return json.dumps(
        {
            "message_id": message_id, "contract": "create_transaction_categories", "version": 1, "source": "upstream",
            "legal_entity": None, "correlation_id": f"c:{code}", "causation_id": None,
            "occurred_at": datetime.now(UTC).isoformat(), "payload": {"rows": [{"category": code, "name": code.title()}]},
        }
    )


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    broker = RedisBroker(client=fakeredis.FakeRedis(server=fakeredis.FakeServer()), middleware=[])
    for name in (FINANCE_COMMANDS, DATAVERSE_COMMANDS):
        broker.declare_queue(name)
    yield broker
    broker.close()


def put_dead_bytes(broker: RedisBroker, queue: str, raw: bytes) -> None:
    """Bytes in a queue's dead letters, as anyone with access to Redis can write them."""
    redis_id = str(uuid.uuid4())
    broker.client.hset(f"dramatiq:{queue}.XQ.msgs", redis_id, raw)
    broker.client.zadd(f"dramatiq:{queue}.XQ", {redis_id: datetime.now(UTC).timestamp() * 1000})


@contextmanager
def commands_on(ledgers: Ledgers, broker: RedisQueues | None) -> Iterator[None]:
    """``dualwrite dlq`` reading these rows and this broker."""

    @contextmanager
    def command(_settings: Any, *, need_broker: bool) -> Iterator[tuple[Ledgers, RedisQueues | None]]:
        yield ledgers, broker

    saved = dlq_command._command
    dlq_command._command = command
    try:
        yield
    finally:
        dlq_command._command = saved


def run(capsys: pytest.CaptureFixture[str], action: Any, **args: Any) -> tuple[int, str, str]:
    capsys.readouterr()
    status = action(argparse.Namespace(**args), None)
    captured = capsys.readouterr()
    return int(status), captured.out, captured.err


def test_every_hostile_body_is_listed_grouped_and_shown(capsys: pytest.CaptureFixture[str]) -> None:
    records = [row(fit_body(body), error=f"{label}: refused") for label, body in HOSTILE_BODIES.items()]
    ledgers = Ledgers(records)

    with commands_on(ledgers, None):
        status, out, _ = run(capsys, dlq_command.run_list, json=False)
        assert status == ExitCode.OK and "InvalidContract" in out
        assert all(line.isprintable() for line in out.splitlines())

        status, out, _ = run(capsys, dlq_command.run_list, json=True)
        assert status == ExitCode.OK
        listed = json.loads(out)
        ids = {letter["message_id"] for group in listed["groups"] for letter in group["letters"]}
        assert ids == {record.message_id for record in records}

        for record, label in zip(records, HOSTILE_BODIES):
            status, out, _ = run(capsys, dlq_command.run_show, message_id=record.message_id, json=True)
            assert status == ExitCode.OK, label
            shown = json.loads(out)
            assert shown["message_id"] == record.message_id and shown["error"] == f"{label}: refused"
            if shown["envelope_problem"] is not None:  # shown as text, capped
                assert isinstance(shown["envelope"], str) and len(shown["envelope"]) < 2200, label
                assert shown["envelope"].isprintable(), label

            status, out, _ = run(capsys, dlq_command.run_show, message_id=record.message_id, json=False)
            assert status == ExitCode.OK, label
            assert all(line.isprintable() for line in out.splitlines()), label
            assert f"{label}: refused" in out


def test_a_body_that_is_not_json_is_shown_as_its_first_characters_with_why(capsys: pytest.CaptureFixture[str]) -> None:
    deep = row("[" * 100_000)
    wrong = row(HOSTILE_BODIES["wrong types"], contract=None)

    with commands_on(Ledgers([deep, wrong]), None):
        shown = json.loads(run(capsys, dlq_command.run_show, message_id=deep.message_id, json=True)[1])
        assert shown["envelope"] == "[" * 2048 + "… (97,952 more characters, 100,000 in all)"
        assert "nested deeper than 64 levels" in shown["envelope_problem"]
        assert "the first 2,048 of 100,000 characters" in shown["envelope_problem"]

        other = json.loads(run(capsys, dlq_command.run_show, message_id=wrong.message_id, json=True)[1])
        assert other["envelope"]["contract"] == 5 and other["envelope_problem"] is None
        assert other["version"] == {"x": 1} and other["contract"] is None
        human = run(capsys, dlq_command.run_show, message_id=wrong.message_id, json=False)[1]
        assert "contract     None v?" in human


def test_broker_copies_of_any_bytes_are_letters_of_their_own(broker: RedisBroker, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = [
        b"[" * 100_000,
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        json.dumps({"message_id": {"a": 1}, "args": {"not": "a list"}, "message_timestamp": 1e300}).encode(),
        json.dumps({"message_id": "x" * 500, "args": [5], "actor_name": ["x"]}).encode(),
        json.dumps({"message_id": "", "args": ["[" * 3000]}).encode(),
    ]
    for raw in hostile:
        put_dead_bytes(broker, FINANCE_COMMANDS, raw)
    queue = DeadLetterQueue(Ledgers([]), RedisQueues(broker))

    letters = queue.letters()

    assert len(letters) == len(hostile) and len({letter.message_id for letter in letters}) == len(hostile)
    assert all(letter.record is None and letter.in_broker for letter in letters)
    assert all(len(letter.message_id) <= 36 for letter in letters)
    [group] = queue.groups()
    assert group.cause.error_type == UNRECORDED and len(group.letters) == len(hostile)
    with commands_on(Ledgers([]), RedisQueues(broker)):
        assert run(capsys, dlq_command.run_list, json=False)[0] == ExitCode.OK
        assert run(capsys, dlq_command.run_list, json=True)[0] == ExitCode.OK
        for letter in letters:
            status, out, _ = run(capsys, dlq_command.run_show, message_id=letter.message_id, json=True)
            assert status == ExitCode.OK and json.loads(out)["in_broker"] is True
            assert run(capsys, dlq_command.run_show, message_id=letter.message_id, json=False)[0] == ExitCode.OK


def test_refusals_form_one_group_per_reason_and_queue_apart_from_ordinary_failures(capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        # strangers choose the text and the contract: neither splits their group
        row(good_body(str(uuid.uuid4())), error_type="Unauthenticated", error="unsigned message", contract="create_projects"),
        row("{}", error_type="Unauthenticated", error="unknown signing key 'k-1'", contract="anything-1"),
        row("{}", error_type="Unauthenticated", error="unknown signing key 'k-2'", queue=DATAVERSE_COMMANDS),
        row("{}", error_type="Forbidden", error="finance may not write queue 'finance.commands'"),
        row("\\xff", error_type="Malformed", error="not a dramatiq message: not UTF-8"),
        row("{}", error_type="ConflictingDuplicate", error="message already applied with other bytes"),
        # an ordinary invalid message of the same contract is a group of its own
        row("{}", error_type="InvalidContract", error="envelope: Invalid JSON", contract="create_projects"),
    ]
    queue = DeadLetterQueue(Ledgers(records), None)

    groups = {(group.reason, tuple(group.queues)): group for group in queue.groups()}

    assert set(groups) == {
        ("unauthenticated", (FINANCE_COMMANDS,)),
        ("unauthenticated", (DATAVERSE_COMMANDS,)),
        ("forbidden", (FINANCE_COMMANDS,)),
        ("malformed", (FINANCE_COMMANDS,)),
        ("conflicting duplicate", (FINANCE_COMMANDS,)),
        (None, (FINANCE_COMMANDS,)),
    }
    unauthenticated = groups[("unauthenticated", (FINANCE_COMMANDS,))].as_json()
    assert (unauthenticated["count"], unauthenticated["reason"], unauthenticated["contract"]) == (2, "unauthenticated", None)
    assert unauthenticated["pattern"] == "refused: unauthenticated" and unauthenticated["error_type"] == "Unauthenticated"
    assert {letter["reason"] for letter in unauthenticated["letters"]} == {"unauthenticated"}
    ordinary = groups[(None, (FINANCE_COMMANDS,))].as_json()
    assert (ordinary["reason"], ordinary["contract"], ordinary["error_type"]) == (None, "create_projects", "InvalidContract")

    with commands_on(Ledgers(records), None):
        status, out, _ = run(capsys, dlq_command.run_list, json=False)
        assert status == ExitCode.OK
        for reason in ("unauthenticated", "forbidden", "malformed", "conflicting duplicate"):
            assert f"refused: {reason}" in out
        assert "--trust-sender" in out
        shown = json.loads(run(capsys, dlq_command.run_show, message_id=records[0].message_id, json=True)[1])
        assert (shown["reason"], shown["group_id"]) == ("unauthenticated", unauthenticated["group_id"])
        assert "refused      unauthenticated" in run(capsys, dlq_command.run_show, message_id=records[0].message_id, json=False)[1]


def operator_signer() -> Signer:
    return Signer(KeyRing(None, [SigningKey.generate(OPERATOR)]), OPERATOR)


def sent(broker: RedisBroker, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in broker.client.hvals(f"dramatiq:{queue}.msgs")]


def test_malformed_letters_are_never_sent_back_and_strangers_only_on_the_operators_word(broker: RedisBroker, registry) -> None:
    malformed = row("\\xff\\xfe garbage", error_type="Malformed", error="not a dramatiq message: not UTF-8")
    forged_id = str(uuid.uuid4())
    forged = row(good_body(forged_id, "FORGED"), error_type="Unauthenticated", error="unsigned message", message_id=forged_id)
    forbidden_id = str(uuid.uuid4())
    forbidden = row(good_body(forbidden_id, "OTHER"), error_type="Forbidden", error="x may not", message_id=forbidden_id)
    ledgers, audit = Ledgers([malformed, forged, forbidden]), Audit()
    queue = DeadLetterQueue(ledgers, RedisQueues(broker))
    repair = DeadLetterRepair(ledgers, RedisQueues(broker), registry, audit, "dana", signer=operator_signer())

    # Without the operator's word, nothing is sent, nothing marked, nothing audited
    report = repair.replay(queue.letters(), "all")
    assert report.done == [] and report.refused == []
    why = {skipped.message_id: skipped.why for skipped in report.skipped}
    assert "can only be purged" in why[malformed.message_id]
    assert "--trust-sender" in why[forged_id] and "unauthenticated" in why[forged_id]
    assert "--trust-sender" in why[forbidden_id] and "forbidden" in why[forbidden_id]
    assert report.as_json()["skipped"][0]["reason"] in {"malformed", "unauthenticated", "forbidden"}
    assert sent(broker, FINANCE_COMMANDS) == [] and ledgers.resolved == [] and audit.entries == []

    # With it, the strangers' messages go (signed by the operator); malformed bytes still do not
    report = repair.replay(queue.letters(), "all", trust_sender=True)
    assert sorted(report.done) == sorted([forged_id, forbidden_id])
    assert [skipped.message_id for skipped in report.skipped] == [malformed.message_id]
    assert sorted(message["message_id"] for message in sent(broker, FINANCE_COMMANDS)) == sorted([forged_id, forbidden_id])
    assert all(message["options"]["dualwrite_key"].startswith("operator-") for message in sent(broker, FINANCE_COMMANDS))
    [entry] = audit.entries
    assert entry["details"]["trust_sender"] is True and entry["count"] == 2
    assert [skipped["message_id"] for skipped in entry["details"]["skipped"]] == [malformed.message_id]


def test_a_letter_without_a_recorded_reason_needs_the_operators_word_and_an_ordinary_one_does_not(broker: RedisBroker) -> None:
    put_dead_bytes(broker, FINANCE_COMMANDS, b"[1, 2]")
    ordinary = row(good_body(str(uuid.uuid4())))
    [orphan, recorded] = sorted(DeadLetterQueue(Ledgers([ordinary]), RedisQueues(broker)).letters(), key=lambda letter: letter.record is not None)

    assert "--trust-sender" in why_not_replayable(orphan)
    assert why_not_replayable(orphan, trust_sender=True) is None
    assert why_not_replayable(recorded) is None


def test_a_body_cut_when_recorded_is_replayed_from_the_broker_copy_or_not_at_all() -> None:
    huge = good_body(str(uuid.uuid4()))[:-1] + ', "padding": "' + "x" * BODY_BYTES + '"}'
    record = row(fit_body(huge))

    without_copy = DeadLetter(record.message_id, FINANCE_COMMANDS, record, (), broker_checked=True)

    assert without_copy.body_cut and "was cut when recorded" in why_not_replayable(without_copy, trust_sender=True)


def test_an_edit_of_malformed_bytes_or_of_a_strangers_message_is_refused(broker: RedisBroker, registry) -> None:
    from workers.operations.dead_letter_repair import Correction, NotReplayable

    malformed = row("garbage", error_type="Malformed", error="not JSON")
    forged_id = str(uuid.uuid4())
    forged = row(good_body(forged_id), error_type="Unauthenticated", error="unsigned message", message_id=forged_id)
    ledgers, audit = Ledgers([malformed, forged]), Audit()
    repair = DeadLetterRepair(ledgers, RedisQueues(broker), registry, audit, "dana", signer=operator_signer())
    letters = {letter.message_id: letter for letter in DeadLetterQueue(ledgers, None).letters()}
    correction = Correction({"rows": [{"category": "TAXI", "name": "Taxi"}]}, source="fix.json")

    with pytest.raises(NotReplayable, match="can only be purged"):
        repair.edit(letters[malformed.message_id], correction, "m", trust_sender=True)
    with pytest.raises(NotReplayable, match="--trust-sender"):
        repair.edit(letters[forged_id], correction, "m")

    assert sent(broker, FINANCE_COMMANDS) == [] and audit.entries == []
    report = repair.edit(letters[forged_id], correction, "m", trust_sender=True)
    assert report.done == [forged_id] and audit.entries[0]["details"]["trust_sender"] is True
