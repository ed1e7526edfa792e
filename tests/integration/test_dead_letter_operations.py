"""Operators repair dead letters with ``dualwrite queues``, ``dlq`` and ``audit``, on real Redis and RabbitMQ.

Each scenario publishes good and bad messages through the running workers, reads what the
commands report, fixes the cause the way an operator would (loads the missing set-up, enables the
shared category, corrects the payload), replays, and checks the business result: each message
applied exactly once, the dead-letter queues empty, the audit log holding the repair.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, table_map
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operated  # noqa: F401 - the fixture
from tests.integration.support import DATAVERSE, FINANCE, FOUR_CLASSES
from workers.cli.exit_codes import ExitCode
from workers.dataverse import tables as dataverse

WAIT = 30.0


def unknown_contract_body() -> tuple[str, str]:
    message_id = str(uuid.uuid4())
    return message_id, json.dumps(
        {
            "message_id": message_id,
            "contract": "create_unicorns",
            "version": 1,
            "source": "upstream",
            "legal_entity": None,
            "correlation_id": "unicorns",
            "causation_id": None,
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {"rows": [{"unicorn": "Sparkle"}]},
        }
    )


def expense_categories(system: OperatedSystem, legal_entity: str) -> set[str]:
    table = dataverse.expense_categories
    return {
        row.expense_category
        for row in system.rows(DATAVERSE, select(table.c.expense_category).where(table.c.legal_entity == legal_entity))
    }


def queue_row(queues: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in queues["queues"] if row["queue"] == name)


def test_dead_letters_by_cause_are_replayed_once_the_cause_is_fixed(operated: OperatedSystem) -> None:
    system = operated

    # Given finance holds the shared categories of HOTEL, not yet enabled for expense
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    wait_until(lambda: system.shared_categories().get("HOTEL") == FOUR_CLASSES, timeout=WAIT, what="HOTEL in finance")

    # When three expense categories are created on HOTEL, a broken publisher sends an unknown
    # contract, and a good message follows
    refused = [
        system.publish(
            "create_expense_categories",
            [{"expense_category": f"HOTEL-{n}", "name": f"Hotel {n}", "shared_category": "HOTEL"}],
            legal_entity="USMF",
            correlation_id=f"expense-category:HOTEL-{n}",
        )
        for n in range(3)
    ]
    unicorn_id, unicorn_body = unknown_contract_body()
    system.put_raw(FINANCE_COMMANDS, unicorn_body, message_id=unicorn_id)
    system.publish("create_transaction_categories", [{"category": "AIRFARE", "name": "Airfare"}])
    system.wait_for_dead_letters(4)
    wait_until(lambda: system.shared_categories().get("AIRFARE") == FOUR_CLASSES, timeout=WAIT, what="AIRFARE")

    # Then `queues` shows the four dead letters on finance's command queue, nothing waiting anywhere
    queues = system.dualwrite("queues", "--json").json
    assert queues["broker"] == system.backend
    commands = queue_row(queues, FINANCE_COMMANDS.name)
    assert (commands["dead"], commands["ready"], commands["delayed"]) == (4, 0, 0)
    assert (commands["table_map"], commands["direction"], commands["consumer"]) == (None, "upstream -> finance", "finance")
    assert commands["in_flight"] == (0 if system.backend == "redis" else None)
    assert commands["consumers"] == (None if system.backend == "redis" else 1)
    leg = queue_row(queues, table_map("msdyn_expensecategories").outbound.name)
    assert (leg["table_map"], leg["direction"], leg["dead"]) == ("msdyn_expensecategories", "finance -> bridge", 0)
    assert sum(row["dead"] for row in queues["queues"]) == 4

    # And `dlq list` groups them by cause: the three refusals in one group, the unknown contract in another
    listing = system.dualwrite("dlq", "list", "--json").json
    assert listing["broker_checked"] is True
    by_contract = {group["contract"]: group for group in listing["groups"]}
    assert set(by_contract) == {"create_expense_categories", "create_unicorns"}
    categories = by_contract["create_expense_categories"]
    assert (categories["count"], categories["error_type"], categories["error_kind"]) == (3, "BusinessRuleViolation", "permanent")
    assert "shared category '<value>' is not enabled for expense" in categories["pattern"]
    assert categories["queues"] == [FINANCE_COMMANDS.name]
    assert categories["first_seen"] <= categories["last_seen"]
    assert {letter["message_id"] for letter in categories["letters"]} == {str(e.message_id) for e in refused}
    assert all(letter["in_broker"] is True and letter["side"] == "finance" for letter in categories["letters"])
    unicorns = by_contract["create_unicorns"]
    assert (unicorns["count"], unicorns["error_type"]) == (1, "UnknownContract")

    # And `dlq show` gives the original envelope, the error, the traceback and the attempts
    first = refused[0]
    shown = system.dualwrite("dlq", "show", str(first.message_id)[:13], "--json").json
    assert shown["envelope"] == json.loads(first.model_dump_json())
    assert (shown["side"], shown["queue"], shown["contract"], shown["version"]) == ("finance", FINANCE_COMMANDS.name, "create_expense_categories", 1)
    assert (shown["error_type"], shown["attempts"], shown["dead"], shown["in_broker"]) == ("BusinessRuleViolation", 1, True, True)
    assert "shared category 'HOTEL' is not enabled for expense" in shown["error"]
    assert "BusinessRuleViolation" in shown["traceback"] and "Traceback" in shown["traceback"]
    assert shown["group_id"] == categories["group_id"]

    # When the operator enables HOTEL for expense and replays the group
    system.publish("enable_expense_on_shared_category", [{"category": "HOTEL", "expense_type": "hotel"}])
    system.settle()
    replay = system.dualwrite("dlq", "replay", "--group", categories["group_id"], "--as", "alice", "--json")

    # Then the three are sent back, each applied exactly once and carried to Dataverse
    assert replay.status == ExitCode.OK, replay.err
    assert replay.json["count"] == 3 and replay.json["refused"] == []
    assert "replayed 3/3" in replay.err  # the progress counter
    wanted = {"HOTEL-0", "HOTEL-1", "HOTEL-2"}
    wait_until(lambda: expense_categories(system, "USMF") >= wanted, timeout=WAIT, what="expense categories in Dataverse")
    system.settle()
    assert all(system.applied(FINANCE, envelope.message_id) == 1 for envelope in refused)

    # And only the unknown contract is left dead, on the broker as in the list
    listing = system.dualwrite("dlq", "list", "--json").json
    assert [group["contract"] for group in listing["groups"]] == ["create_unicorns"]
    assert queue_row(system.dualwrite("queues", "--json").json, FINANCE_COMMANDS.name)["dead"] == 1
    rows = system.dead_letters(FINANCE)
    assert sorted(row.outcome or "dead" for row in rows) == ["dead", "replayed", "replayed", "replayed"]
    replayed = next(row for row in rows if row.message_id == str(first.message_id))
    assert replayed.resolved_by == "alice" and json.loads(replayed.body) == json.loads(first.model_dump_json())

    # And the audit log says who replayed what, and how many
    [entry] = system.dualwrite("audit", "--json").json
    assert (entry["operator"], entry["action"], entry["target"], entry["count"]) == (
        "alice", "replay", f"group {categories['group_id']}", 3,
    )
    assert sorted(entry["details"]["message_ids"]) == sorted(str(e.message_id) for e in refused)

    # When the operator purges the unknown contract: refused without --yes off a terminal, done with it
    refused_purge = system.dualwrite("dlq", "purge", "--group", unicorns["group_id"])
    assert refused_purge.status == ExitCode.USAGE and "--yes" in refused_purge.err
    purge = system.dualwrite("dlq", "purge", "--group", unicorns["group_id"], "--yes", "--as", "bob", "--json")

    # Then the dead-letter queues are empty, the row kept as purged, and the audit log has both repairs
    assert purge.status == ExitCode.OK and purge.json["message_ids"] == [unicorn_id]
    assert system.dualwrite("dlq", "list", "--json").json["groups"] == []
    assert all(row["dead"] == 0 for row in system.dualwrite("queues", "--json").json["queues"])
    assert {row.outcome for row in system.dead_letters(FINANCE) if row.message_id == unicorn_id} == {"purged"}
    audit = system.dualwrite("audit", "--json").json
    assert [(e["operator"], e["action"], e["count"]) for e in audit] == [("bob", "purge", 1), ("alice", "replay", 3)]


def test_a_dead_v1_estimate_is_replayed_as_v2_once_its_project_exists(operated: OperatedSystem) -> None:
    system = operated
    given_hotel_is_an_expense_category_of(system, "USMF")

    # Given a v1 publisher estimated an expense on a project Dataverse did not know yet
    estimate = system.publish(
        "create_expense_estimates",
        [{"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
          "amount": "360.00", "currency": "USD"}],
        legal_entity="USMF",
        version=1,
        correlation_id="estimate:PRJ-US-100",
    )
    system.wait_for_dead_letters(1)
    shown = system.dualwrite("dlq", "show", str(estimate.message_id), "--json").json
    assert (shown["contract"], shown["version"], shown["error_type"]) == ("create_expense_estimates", 1, "BusinessRuleViolation")
    assert shown["envelope"]["payload"]["rows"][0]["amount"] == "360.00"

    # When the project is created and the operator replays the letter
    system.publish(
        "create_projects",
        [{"project_id": "PRJ-US-100", "name": "Rollout", "project_manager": "maria", "billable": True}],
        legal_entity="USMF",
    )
    system.settle()
    replay = system.dualwrite("dlq", "replay", str(estimate.message_id)[:8], "--json")
    assert replay.status == ExitCode.OK, replay.err

    # Then Dataverse applied it once, as version 2: one unit at the v1 total
    wait_until(lambda: system.count(DATAVERSE, dataverse.expense_estimates) == 1, timeout=WAIT, what="the estimate")
    system.settle()
    [inbox] = system.inbox(DATAVERSE, system.database(DATAVERSE).messaging.inbox.c.message_id == str(estimate.message_id))
    assert (inbox.contract, inbox.version) == ("create_expense_estimates", 2)
    [line] = system.rows(DATAVERSE, select(dataverse.expense_estimates))
    assert (line.quantity, line.unit_cost, line.amount) == (Decimal("1"), Decimal("360.00"), Decimal("360.00"))

    # And the letter's history keeps the v1 original beside the v2 that was replayed
    history = system.dualwrite("dlq", "show", str(estimate.message_id), "--json").json
    assert (history["dead"], history["outcome"], history["version"]) == (False, "replayed", 1)
    [row] = history["history"]
    assert row["replayed_envelope"]["version"] == 2
    assert row["replayed_envelope"]["payload"]["rows"][0]["unit_cost"] == "360.00"
    assert system.dualwrite("dlq", "list", "--json").json["groups"] == []


def test_a_letter_that_still_fails_stays_dead_and_an_edit_replays_it(operated: OperatedSystem, tmp_path: Path) -> None:
    system = operated

    # Given a broken publisher sent a transaction category without its name, and its broker copy expired
    message_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "message_id": message_id, "contract": "create_transaction_categories", "version": 1, "source": "upstream",
            "legal_entity": None, "correlation_id": "categories:broken", "causation_id": None,
            "occurred_at": datetime.now(UTC).isoformat(), "payload": {"rows": [{"category": "TAXI"}]},
        }
    )
    system.put_raw(DATAVERSE_COMMANDS, body, message_id=message_id)
    system.wait_for_dead_letters(1)
    with system.broker_queues.hold_dead_letters(DATAVERSE_COMMANDS.name) as held:
        assert held.remove(held.letters) == 1
    [group] = system.dualwrite("dlq", "list", "--json").json["groups"]
    assert (group["count"], group["not_in_broker"], group["letters"][0]["in_broker"]) == (1, 1, False)

    # When the operator replays it as it is
    replay = system.dualwrite("dlq", "replay", message_id, "--json")

    # Then it is not sent: it stays dead with the reason found now, the earlier row kept as history
    assert replay.status == ExitCode.FAILED
    [refusal] = replay.json["refused"]
    assert refusal["error_type"] == "InvalidContract" and "payload.rows.0.name" in refusal["error"]
    shown = system.dualwrite("dlq", "show", message_id, "--json").json
    assert shown["dead"] and [row["outcome"] for row in shown["history"]] == ["superseded", None]
    assert "refused on replay" in shown["traceback"]

    # When the operator corrects the payload and replays the edit
    correction = tmp_path / "taxi.json"
    correction.write_text(json.dumps({"rows": [{"category": "TAXI", "name": "Taxi"}]}))
    edit = system.dualwrite("dlq", "edit", message_id[:8], str(correction), "--as", "carol", "--json")

    # Then the corrected message is applied once, and the original is kept beside the edit
    assert edit.status == ExitCode.OK, edit.err
    wait_until(lambda: system.shared_categories().get("TAXI") == FOUR_CLASSES, timeout=WAIT, what="TAXI in finance")
    system.settle()
    assert system.applied(DATAVERSE, message_id) == 1
    [*_, latest] = system.dead_letters(DATAVERSE)
    assert latest.outcome == "edited" and latest.resolved_by == "carol"
    assert json.loads(latest.body)["payload"] == {"rows": [{"category": "TAXI"}]}
    assert json.loads(latest.replayed_body)["payload"] == {"rows": [{"category": "TAXI", "name": "Taxi", "description": None}]}
    assert system.dualwrite("dlq", "list", "--json").json["groups"] == []
    audit = system.dualwrite("audit", "--json").json
    assert [(e["action"], e["count"]) for e in audit] == [("edit", 1), ("replay", 0)]
    assert audit[1]["details"]["refused"][0]["message_id"] == message_id


def test_an_edit_that_does_not_validate_sends_nothing(operated: OperatedSystem, tmp_path: Path) -> None:
    system = operated
    message_id, body = unknown_contract_body()
    system.put_raw(FINANCE_COMMANDS, body, message_id=message_id)
    system.wait_for_dead_letters(1)

    # When the correction is still invalid
    correction = tmp_path / "still-bad.json"
    correction.write_text(json.dumps({"rows": [{"unicorn": "Sparkle"}]}))
    edit = system.dualwrite("dlq", "edit", message_id, str(correction))

    # Then nothing is sent or recorded, and the command says why
    assert edit.status == ExitCode.INVALID_INPUT and "create_unicorns" in edit.err
    [group] = system.dualwrite("dlq", "list", "--json").json["groups"]
    assert group["letters"][0]["in_broker"] is True
    assert system.dualwrite("audit", "--json").json == []


def given_hotel_is_an_expense_category_of(system: OperatedSystem, legal_entity: str) -> None:
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    wait_until(lambda: system.shared_categories().get("HOTEL") == FOUR_CLASSES, timeout=WAIT, what="HOTEL in finance")
    system.publish("enable_expense_on_shared_category", [{"category": "HOTEL", "expense_type": "hotel"}])
    system.settle()
    system.publish(
        "create_expense_categories",
        [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}],
        legal_entity=legal_entity,
    )
    wait_until(lambda: "HOTEL" in expense_categories(system, legal_entity), timeout=WAIT, what="HOTEL in Dataverse")
    system.settle()
    assert system.dead_letter_count() == 0
