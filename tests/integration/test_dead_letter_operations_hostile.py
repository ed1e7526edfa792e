"""Hostile dead letters never break ``dualwrite dlq``, refusals are their own groups, and a replay
does not launder what the trust boundary refused, on the embedded default and on PostgreSQL.

The letters are recorded in Dataverse's ``dead_letters`` table the way its workers record them
(``shared.dead_letters.record_dead_letter``): bodies nested 100,000 deep, not UTF-8, not objects,
with fields of the wrong types or 1 MiB long; ids and names longer than their columns; and the
refusals of the trust boundary (unauthenticated, forbidden, malformed). The commands are run as
an operator runs them (tests/integration/operators.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from contracts.queues import DATAVERSE_COMMANDS
from contracts.senders import OPERATOR
from contracts.catalog import default_registry
from shared.dead_letters import DeadLetter, record_dead_letter
from shared.errors import BusinessRuleViolation, Forbidden, InvalidContract, Malformed, PermanentError, Unauthenticated
from shared.signatures import Signer, key_ring
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operated, operated_embedded  # noqa: F401 - the fixtures
from tests.integration.support import BRIDGE, DATAVERSE
from workers.cli.exit_codes import ExitCode
from workers.dataverse import tables as dataverse_tables
from workers.operations.audit import AuditLog
from workers.operations.dead_letter_queue import DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterLedgers
from workers.operations.dead_letter_repair import DeadLetterRepair

WAIT = 30.0
QUEUE = DATAVERSE_COMMANDS


def category_body(message_id: str, code: str) -> str:
    """A create_transaction_categories envelope Dataverse would apply, had its sender been heard."""
    return json.dumps(
        {
            "message_id": message_id, "contract": "create_transaction_categories", "version": 1, "source": "upstream",
            "legal_entity": None, "correlation_id": f"hostile:{code}", "causation_id": None,
            "occurred_at": datetime.now(UTC).isoformat(), "payload": {"rows": [{"category": code, "name": code.title()}]},
        }
    )


def record(system: OperatedSystem, body: str, error: PermanentError, **fields: object) -> str:
    """Record a dead letter as Dataverse's ledger does; its id as the row holds it."""
    message_id = str(fields.pop("message_id", uuid.uuid4()))
    envelope = fields.pop("envelope", {})
    record_dead_letter(
        system.database(DATAVERSE),
        DeadLetter(
            message_id=message_id, queue_name=str(fields.pop("queue_name", QUEUE.name)), actor_name=QUEUE.actor_name,
            body=body, error=error, traceback=None, attempts=1, **envelope, **fields,  # type: ignore[arg-type]
        ),
    )
    table = system.database(DATAVERSE).messaging.dead_letters
    return system.rows(DATAVERSE, select(table.c.message_id).order_by(table.c.id.desc()).limit(1))[0].message_id


def record_hostile_letters(system: OperatedSystem) -> dict[str, str]:
    """label -> message id of each letter recorded."""
    trusted_id, forged_id, forbidden_id = (str(uuid.uuid4()) for _ in range(3))
    return {
        "deep": record(system, "[" * 100_000, InvalidContract("envelope: Invalid JSON: recursion limit exceeded")),
        "not utf-8": record(system, "\\xff\\xfe\x00garbage \x1b[2J", Malformed("not a dramatiq message: not UTF-8")),
        "array": record(system, "[1, 2, 3]", InvalidContract("envelope: Input should be an object")),
        "wrong types": record(
            system, json.dumps({"contract": 5, "correlation_id": {"a": [1]}, "version": "two", "payload": []}),
            InvalidContract("envelope.contract: Input should be a valid string"),
        ),
        "long": record(
            system, "{}", BusinessRuleViolation("row refused: " + "e" * 50_000), message_id="x" * 500,
            queue_name="q" * 300, envelope={"contract": "k" * 300, "correlation_id": "c" * 1000},
        ),
        "huge": record(system, json.dumps({"contract": "create_projects", "payload": "x" * (1 << 20)}), InvalidContract("too big")),
        "trusted": record(system, category_body(trusted_id, "TRUSTED"), Unauthenticated("unsigned message"), message_id=trusted_id),
        "forged": record(system, category_body(forged_id, "FORGED"), Unauthenticated("unknown signing key 'k-1'"), message_id=forged_id),
        "forbidden": record(system, category_body(forbidden_id, "FORBIDDEN"), Forbidden("finance may not write queue 'dataverse.commands'"), message_id=forbidden_id),
    }


def dataverse_categories(system: OperatedSystem) -> set[str]:
    return {row.category for row in system.rows(DATAVERSE, select(dataverse_tables.transaction_categories.c.category))}


def check_listing_and_show(system: OperatedSystem, ids: dict[str, str]) -> dict[str, dict]:
    """``dlq list`` (both ways) and ``dlq show`` (both ways) of every letter; the groups by reason."""
    human = system.dualwrite("dlq", "list")
    assert human.status == ExitCode.OK, human.err
    assert all(line.isprintable() for line in human.out.splitlines())
    for reason in ("unauthenticated", "forbidden", "malformed"):
        assert f"refused: {reason}" in human.out
    assert "--trust-sender" in human.out

    listing = system.dualwrite("dlq", "list", "--json")
    assert listing.status == ExitCode.OK, listing.err
    groups = listing.json["groups"]
    assert {letter["message_id"] for group in groups for letter in group["letters"]} == set(ids.values())
    refused = {group["reason"]: group for group in groups if group["reason"]}
    assert set(refused) == {"unauthenticated", "forbidden", "malformed"}
    assert refused["unauthenticated"]["count"] == 2 and refused["unauthenticated"]["queues"] == [QUEUE.name]
    assert {letter["message_id"] for letter in refused["unauthenticated"]["letters"]} == {ids["trusted"], ids["forged"]}
    assert refused["malformed"]["pattern"] == "refused: malformed" and refused["malformed"]["contract"] is None
    ordinary = [group for group in groups if group["reason"] is None]
    assert sum(group["count"] for group in ordinary) == 5  # deep, array, wrong types, long, huge
    assert {group["error_type"] for group in ordinary} == {"InvalidContract", "BusinessRuleViolation"}

    for label, message_id in ids.items():
        shown = system.dualwrite("dlq", "show", message_id, "--json")
        assert shown.status == ExitCode.OK, (label, shown.err)
        assert shown.json["message_id"] == message_id
        printed = system.dualwrite("dlq", "show", message_id)
        assert printed.status == ExitCode.OK, (label, printed.err)
        assert all(line.isprintable() for line in printed.out.splitlines()), label

    deep = system.dualwrite("dlq", "show", ids["deep"], "--json").json
    assert "nested deeper than" in deep["envelope_problem"] and len(deep["envelope"]) < 2200
    huge = system.dualwrite("dlq", "show", ids["huge"], "--json").json
    assert huge["body_cut_from"] > 1 << 20 and huge["envelope_problem"].startswith("not JSON")
    # the long id is found by its first characters, and every value was cut to its column
    long = system.dualwrite("dlq", "show", "xxxxxxxx", "--json").json
    assert long["message_id"] == ids["long"] and len(ids["long"]) == 36
    assert (len(long["queue"]), len(long["contract"]), len(long["correlation_id"])) == (128, 64, 200)
    assert long["error"].startswith("row refused: eee")
    assert system.dualwrite("dlq", "show", ids["trusted"], "--json").json["reason"] == "unauthenticated"
    return refused


def test_hostile_letters_are_listed_and_strangers_replayed_only_on_the_operators_word(operated: OperatedSystem, tmp_path: Path) -> None:
    system = operated
    ids = record_hostile_letters(system)
    refused = check_listing_and_show(system, ids)

    # Malformed bytes, a letter whose body was cut and whose broker copy is gone, and a stranger's
    # message are not sent back: nothing is sent, marked or audited
    for label, why in (("not utf-8", "can only be purged"), ("huge", "was cut when recorded"), ("forged", "--trust-sender")):
        replay = system.dualwrite("dlq", "replay", ids[label], "--json")
        assert replay.status == ExitCode.INVALID_INPUT, (label, replay.err)
        [skipped] = replay.json["skipped"]
        assert why in skipped["why"] and why in replay.err and replay.json["count"] == 0
    correction = tmp_path / "fix.json"
    correction.write_text(json.dumps({"rows": [{"category": "FIXED", "name": "Fixed"}]}))
    edit = system.dualwrite("dlq", "edit", ids["not utf-8"], str(correction))
    assert edit.status == ExitCode.INVALID_INPUT and "can only be purged" in edit.err
    edit = system.dualwrite("dlq", "edit", ids["forged"], str(correction))
    assert edit.status == ExitCode.INVALID_INPUT and "--trust-sender" in edit.err
    assert system.dualwrite("audit", "--json").json == []
    assert {row.outcome for row in system.dead_letters(DATAVERSE)} == {None}

    # A group with strangers in it: only with --trust-sender are they sent, and the operator is on record
    group = system.dualwrite("dlq", "replay", "--group", refused["unauthenticated"]["group_id"], "--json")
    assert group.status == ExitCode.INVALID_INPUT and len(group.json["skipped"]) == 2
    trusted = system.dualwrite("dlq", "replay", ids["trusted"], "--trust-sender", "--as", "eve", "--json")
    assert trusted.status == ExitCode.OK, trusted.err
    assert trusted.json["message_ids"] == [ids["trusted"]] and trusted.json["skipped"] == []
    wait_until(lambda: "TRUSTED" in dataverse_categories(system), timeout=WAIT, what="the trusted letter applied")
    system.settle()
    assert "FORGED" not in dataverse_categories(system) and system.applied(DATAVERSE, ids["trusted"]) == 1
    [entry] = system.dualwrite("audit", "--json").json
    assert (entry["operator"], entry["action"], entry["count"]) == ("eve", "replay", 1)
    assert entry["details"]["trust_sender"] is True

    # And malformed bytes are purged, as they can be
    purge = system.dualwrite("dlq", "purge", "--group", refused["malformed"]["group_id"], "--yes", "--json")
    assert purge.status == ExitCode.OK and purge.json["message_ids"] == [ids["not utf-8"]]
    listing = system.dualwrite("dlq", "list", "--json").json
    assert {group["reason"] for group in listing["groups"]} == {None, "unauthenticated", "forbidden"}


def test_hostile_letters_are_listed_from_the_embedded_files_and_strangers_replayed_only_on_the_operators_word(
    operated_embedded: OperatedSystem,
) -> None:
    system = operated_embedded
    ids = record_hostile_letters(system)
    refused = check_listing_and_show(system, ids)
    assert system.dualwrite("dlq", "replay", ids["trusted"], "--trust-sender").status == ExitCode.CONFIGURATION

    # In the workers' process (the embedded broker lives there), the same repairs
    ledgers = DeadLetterLedgers({side.value: system.database(side) for side in system.runtime.sides})
    queue = DeadLetterQueue(ledgers, system.broker_queues)
    signer = Signer(key_ring(system.runtime.settings), OPERATOR)
    repair = DeadLetterRepair(ledgers, system.broker_queues, default_registry(), AuditLog(system.database(BRIDGE)), "eve", signer=signer)
    letters = {letter.message_id: letter for letter in queue.letters()}

    report = repair.replay([letters[ids["not utf-8"]], letters[ids["trusted"]]], "messages")
    assert report.done == [] and {skipped.message_id for skipped in report.skipped} == {ids["not utf-8"], ids["trusted"]}
    report = repair.replay([letters[ids["not utf-8"]], letters[ids["trusted"]]], "messages", trust_sender=True)
    assert report.done == [ids["trusted"]] and [skipped.message_id for skipped in report.skipped] == [ids["not utf-8"]]
    wait_until(lambda: "TRUSTED" in dataverse_categories(system), timeout=WAIT, what="the trusted letter applied")
    system.settle()
    [entry] = system.dualwrite("audit", "--json").json
    assert entry["details"]["trust_sender"] is True and entry["count"] == 1
    unauthenticated = system.dualwrite("dlq", "list", "--json").json["groups"]
    assert [group["count"] for group in unauthenticated if group["group_id"] == refused["unauthenticated"]["group_id"]] == [1]
