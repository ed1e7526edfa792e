"""Two dead letters with one message id (a real failure, and a stranger's message refused under the
same id) are two letters, each paired with exactly its own broker copy, on the embedded default,
Redis + PostgreSQL and RabbitMQ + PostgreSQL.

Message ids are the senders' to choose. The side records the digest of the exact bytes the broker
held with each letter's reason (``dead_letters.copy_digest``), and ``dualwrite dlq`` pairs rows and
copies by it: purging one letter leaves the other with its own row, reason and bytes, to be replayed
and applied; replaying one moves only it. The message id alone is ambiguous while both are dead: the
commands stop (exit 3) naming the letter ids to choose from.

On Redis and RabbitMQ the commands are run as an operator runs them; on the embedded default the
listing and showing are, and the repairs run in the workers' process (where that broker lives).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from contracts.catalog import default_registry
from contracts.envelope import Envelope
from contracts.queues import FINANCE_COMMANDS
from contracts.senders import OPERATOR
from shared.signatures import Signer, key_ring
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operated, operated_embedded  # noqa: F401 - the fixtures
from tests.integration.support import BRIDGE, FINANCE, FOUR_CLASSES
from workers.cli.exit_codes import ExitCode
from workers.operations.audit import AuditLog
from workers.operations.dead_letter_queue import AmbiguousId, DeadLetter, DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterLedgers
from workers.operations.dead_letter_repair import DeadLetterRepair

WAIT = 30.0
QUEUE = FINANCE_COMMANDS


@dataclass(frozen=True)
class Pair:
    """A real letter and the stranger's one under its message id: the letter ids, bodies and rows' digests."""

    message_id: str
    code: str
    real: str
    impostor: str
    real_body: str
    impostor_body: str
    real_digest: str
    impostor_digest: str


class Operator(ABC):
    """What the scenario asks of an operator, the same on every backend."""

    def __init__(self, system: OperatedSystem) -> None:
        self.system = system

    @abstractmethod
    def purge(self, name: str) -> list[str]:
        """Purge the letter named (a message or letter id); the letter ids purged."""

    @abstractmethod
    def replay(self, name: str) -> list[str]:
        """Replay the letter named; the letter ids sent."""

    @abstractmethod
    def refuses_ambiguous(self, message_id: str, letters: set[str]) -> None:
        """Naming the message id alone is refused, the letters to choose from named; nothing done."""

    @abstractmethod
    def copies(self) -> dict[str, str]:
        """The broker's dead-letter copies on the queue: digest -> envelope."""


class CommandLine(Operator):
    """`dualwrite dlq ...`, as an operator runs it against Redis or RabbitMQ."""

    def purge(self, name: str) -> list[str]:
        purged = self.system.dualwrite("dlq", "purge", name, "--yes", "--as", "olga", "--json")
        assert purged.status == ExitCode.OK, purged.err
        return purged.json["letters"]

    def replay(self, name: str) -> list[str]:
        replayed = self.system.dualwrite("dlq", "replay", name, "--as", "olga", "--json")
        assert replayed.status == ExitCode.OK, replayed.err
        assert replayed.json["refused"] == [] and replayed.json["skipped"] == []
        return replayed.json["letters"]

    def refuses_ambiguous(self, message_id: str, letters: set[str]) -> None:
        correction = self.system.runtime.settings.data_dir / "correction.json"
        correction.write_text(json.dumps({"rows": [expense_category("FIXED")]}))
        for argv in (["show", message_id], ["replay", message_id], ["purge", message_id, "--yes"], ["edit", message_id, str(correction)]):
            refused = self.system.dualwrite("dlq", *argv)
            assert refused.status == ExitCode.INVALID_INPUT, (argv, refused.err)
            assert f"message id {message_id} names 2 dead letters" in refused.err, argv
            assert "letter id" in refused.err and all(letter in refused.err for letter in letters), argv

    def copies(self) -> dict[str, str]:
        return {copy.digest: copy.body for copy in self.system.broker_queues.dead_letters(QUEUE.name)}


class InProcess(Operator):
    """The same operations in the workers' process, where the embedded broker lives."""

    def __init__(self, system: OperatedSystem) -> None:
        super().__init__(system)
        self.ledgers = DeadLetterLedgers({side.value: system.database(side) for side in system.runtime.sides})
        self.queue = DeadLetterQueue(self.ledgers, system.broker_queues)
        signer = Signer(key_ring(system.runtime.settings), OPERATOR)
        self.repair = DeadLetterRepair(
            self.ledgers, system.broker_queues, default_registry(), AuditLog(system.database(BRIDGE)), "olga", signer=signer
        )

    def _letter(self, name: str) -> DeadLetter:
        letter = self.queue.find(name)
        assert letter is not None, name
        return letter

    def purge(self, name: str) -> list[str]:
        return self.repair.purge([self._letter(name)], name).letters

    def replay(self, name: str) -> list[str]:
        report = self.repair.replay([self._letter(name)], name)
        assert report.refused == [] and report.skipped == []
        return report.letters

    def refuses_ambiguous(self, message_id: str, letters: set[str]) -> None:
        try:
            self.queue.find(message_id)
        except AmbiguousId as error:
            assert all(letter in str(error) for letter in letters)
        else:
            raise AssertionError("the message id alone was not refused")
        # `dlq show` from outside reads the SQLite files: ambiguous there too
        shown = self.system.dualwrite("dlq", "show", message_id)
        assert shown.status == ExitCode.INVALID_INPUT and all(letter in shown.err for letter in letters), shown.err

    def copies(self) -> dict[str, str]:
        return {copy.digest: copy.body for copy in self.system.broker_queues.dead_letters(QUEUE.name)}


def expense_category(code: str) -> dict[str, str]:
    return {"expense_category": code, "name": code.title(), "shared_category": "HOTEL"}


def real_and_impostor(system: OperatedSystem, code: str) -> tuple[Envelope, str]:
    """A real message that dies (HOTEL is not enabled for expense yet), then a stranger's message
    under its id (signed by Dataverse, which finance's command queue does not hear): refused."""
    real = system.publish("create_expense_categories", [expense_category(code)], legal_entity="USMF", correlation_id=f"real:{code}")
    impostor = json.loads(real.model_dump_json())
    impostor["payload"] = {"rows": [expense_category(f"{code}-EVIL")]}
    impostor["correlation_id"] = f"impostor:{code}"
    body = json.dumps(impostor)
    system.put_raw(QUEUE, body, message_id=str(real.message_id), sender="dataverse")
    return real, body


def pairs_of_letters(system: OperatedSystem) -> tuple[Pair, Pair]:
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    wait_until(lambda: system.shared_categories().get("HOTEL") == FOUR_CLASSES, timeout=WAIT, what="HOTEL in finance")
    sent = [real_and_impostor(system, code) for code in ("HOTEL-A", "HOTEL-B")]
    system.wait_for_dead_letters(4)
    pairs = []
    for (real, impostor_body), code in zip(sent, ("HOTEL-A", "HOTEL-B")):
        rows = {row.error_type: row for row in system.dead_letters(FINANCE) if row.message_id == str(real.message_id)}
        assert set(rows) == {"BusinessRuleViolation", "Forbidden"}, rows
        assert all(row.copy_digest and len(row.copy_digest) == 64 for row in rows.values())
        assert rows["BusinessRuleViolation"].copy_digest != rows["Forbidden"].copy_digest
        pairs.append(
            Pair(
                str(real.message_id), code, f"finance:{rows['BusinessRuleViolation'].id}", f"finance:{rows['Forbidden'].id}",
                rows["BusinessRuleViolation"].body, impostor_body,
                rows["BusinessRuleViolation"].copy_digest, rows["Forbidden"].copy_digest,
            )
        )
    return pairs[0], pairs[1]


def check_listing(system: OperatedSystem, a: Pair, b: Pair) -> None:
    """Four letters of two message ids, each with a letter id of its own and its own reason."""
    listing = system.dualwrite("dlq", "list", "--json")
    assert listing.status == ExitCode.OK, listing.err
    letters = {letter["letter"]: (group["error_type"], letter) for group in listing.json["groups"] for letter in group["letters"]}
    assert set(letters) == {a.real, a.impostor, b.real, b.impostor}
    for pair in (a, b):
        assert letters[pair.real][0] == "BusinessRuleViolation" and letters[pair.real][1]["reason"] is None
        assert letters[pair.impostor][0] == "Forbidden" and letters[pair.impostor][1]["reason"] == "forbidden"
        assert {letters[pair.real][1]["message_id"], letters[pair.impostor][1]["message_id"]} == {pair.message_id}
    expected = None if system.backend == "embedded" else True
    assert {letter["in_broker"] for _, letter in letters.values()} == {expected}


def check_shown(system: OperatedSystem, pair: Pair, letter: str) -> dict[str, Any]:
    """`dlq show LETTER`: that letter's own reason, envelope and digest."""
    shown = system.dualwrite("dlq", "show", letter, "--json")
    assert shown.status == ExitCode.OK, shown.err
    document = shown.json
    assert (document["letter"], document["message_id"], document["dead"]) == (letter, pair.message_id, True)
    if letter == pair.real:
        assert document["error_type"] == "BusinessRuleViolation" and document["reason"] is None
        assert document["envelope"]["payload"]["rows"][0]["expense_category"] == pair.code
        assert document["copy_digest"] == pair.real_digest
    else:
        assert document["error_type"] == "Forbidden" and document["reason"] == "forbidden"
        assert document["envelope"] == json.loads(pair.impostor_body)
        assert document["copy_digest"] == pair.impostor_digest
    # the message's history names both letters, each row with its own letter id
    assert {row["letter"] for row in document["history"]} == {pair.real, pair.impostor}
    printed = system.dualwrite("dlq", "show", letter)
    assert printed.status == ExitCode.OK and f"letter {letter}" in printed.out
    return document


def dataverse_expense_categories(system: OperatedSystem) -> set[str]:
    return {row[1] for row in system.dataverse_expense_categories()}


def one_message_id_two_letters(system: OperatedSystem, operator: Operator) -> None:
    # Given two real letters, each with a stranger's refused message under its message id
    a, b = pairs_of_letters(system)

    # Then each row is paired with exactly its own broker copy: the bytes it recorded the digest of
    if system.backend != "embedded":
        check_listing(system, a, b)
    copies = operator.copies()
    assert set(copies) == {a.real_digest, a.impostor_digest, b.real_digest, b.impostor_digest}
    assert copies[a.real_digest] == a.real_body and copies[a.impostor_digest] == a.impostor_body
    for pair in (a, b):
        for letter in (pair.real, pair.impostor):
            check_shown(system, pair, letter)

    # And a message id alone is refused while it names both, with the letter ids to choose from
    for pair in (a, b):
        operator.refuses_ambiguous(pair.message_id, {pair.real, pair.impostor})
    assert system.dualwrite("audit", "--json").json == []

    # When the stranger's letter of A is purged by its letter id
    assert operator.purge(a.impostor) == [a.impostor]

    # Then only its copy left the broker; A's real letter keeps its row, reason and bytes
    copies = operator.copies()
    assert set(copies) == {a.real_digest, b.real_digest, b.impostor_digest}
    assert copies[a.real_digest] == a.real_body
    outcomes = {f"finance:{row.id}": row.outcome for row in system.dead_letters(FINANCE)}
    assert (outcomes[a.impostor], outcomes[a.real], outcomes[b.real], outcomes[b.impostor]) == ("purged", None, None, None)
    shown = check_shown(system, a, a.real)
    assert shown["in_broker"] is (None if system.backend == "embedded" else True)
    # and A's message id now names one dead letter: the real one
    assert system.dualwrite("dlq", "show", a.message_id, "--json").json["letter"] == a.real

    # When the cause is fixed and B's real letter alone is replayed, by its letter id
    system.publish("enable_expense_on_shared_category", [{"category": "HOTEL", "expense_type": "hotel"}])
    system.settle()
    assert operator.replay(b.real) == [b.real]

    # Then B is applied once, and only its copy moved: B's stranger keeps its copy, row and reason
    wait_until(lambda: b.code in dataverse_expense_categories(system), timeout=WAIT, what=f"{b.code} in Dataverse")
    system.settle()
    assert system.applied(FINANCE, b.message_id) == 1
    copies = operator.copies()
    assert set(copies) == {a.real_digest, b.impostor_digest}
    assert copies[b.impostor_digest] == b.impostor_body
    outcomes = {f"finance:{row.id}": row.outcome for row in system.dead_letters(FINANCE)}
    assert (outcomes[b.real], outcomes[b.impostor], outcomes[a.real]) == ("replayed", None, None)
    check_shown(system, b, b.impostor)

    # When A's real letter, left alone by the purge, is replayed by its message id
    assert operator.replay(a.message_id) == [a.real]

    # Then it is applied once; nothing of the strangers' ever was
    wait_until(lambda: a.code in dataverse_expense_categories(system), timeout=WAIT, what=f"{a.code} in Dataverse")
    system.settle()
    assert system.applied(FINANCE, a.message_id) == 1
    assert not {f"{a.code}-EVIL", f"{b.code}-EVIL"} & dataverse_expense_categories(system)

    # And B's stranger is the one letter left, in the broker with its own bytes, purged by its message id
    assert operator.copies() == {b.impostor_digest: b.impostor_body}
    assert operator.purge(b.message_id) == [b.impostor]
    assert operator.copies() == {}
    outcomes = [row.outcome for row in system.dead_letters(FINANCE)]
    assert sorted(outcomes) == ["purged", "purged", "replayed", "replayed"]
    audit = system.dualwrite("audit", "--json").json
    assert [(entry["action"], entry["details"]["letters"]) for entry in reversed(audit)] == [
        ("purge", [a.impostor]), ("replay", [b.real]), ("replay", [a.real]), ("purge", [b.impostor]),
    ]


def test_two_letters_with_one_message_id_are_purged_and_replayed_apart(operated: OperatedSystem) -> None:
    one_message_id_two_letters(operated, CommandLine(operated))


def test_two_letters_with_one_message_id_are_purged_and_replayed_apart_on_the_embedded_default(
    operated_embedded: OperatedSystem,
) -> None:
    one_message_id_two_letters(operated_embedded, InProcess(operated_embedded))
