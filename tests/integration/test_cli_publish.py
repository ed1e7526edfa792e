"""``dualwrite publish`` against the real Redis: invalid input is refused and nothing is enqueued.

An upstream system (or an operator) publishes with the CLI; the command validates the document
against the contract version before it enqueues anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, Queue, all_queues
from workers.cli import main
from workers.cli.exit_codes import ExitCode

pytestmark = pytest.mark.redis

HOTEL = {"rows": [{"category": "HOTEL", "name": "Hotel"}]}
ESTIMATE = {"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
            "quantity": "3", "unit_cost": "120.00", "currency": "USD"}


@pytest.fixture
def redis_client(redis_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI configured, as an operator would, through DUALWRITE_BROKER_URL; the db starts empty."""
    monkeypatch.setenv("DUALWRITE_BROKER_URL", redis_db.url)
    return redis_db.client


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "document.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def queue_length(client: Any, queue: Queue) -> int:
    return client.llen(f"dramatiq:{queue.name}")


INVALID = {
    "missing field": (["create_transaction_categories"], {"rows": [{"category": "HOTEL"}]}, "payload.rows.0.name"),
    "negative amount": (
        ["create_expense_estimates", "--legal-entity", "USPM"],
        {"rows": [{**ESTIMATE, "unit_cost": "-120.00"}]},
        "payload.rows.0.unit_cost",
    ),
    "negative amount, v1": (
        ["create_expense_estimates", "--legal-entity", "USPM", "--version", "1"],
        {"rows": [{**{k: v for k, v in ESTIMATE.items() if k not in ("quantity", "unit_cost")}, "amount": "-360.00"}]},
        "payload.rows.0.amount",
    ),
    "unknown version": (["create_transaction_categories", "--version", "7"], HOTEL, "no version 7"),
    "unknown contract": (["create_unicorns"], HOTEL, "unknown contract 'create_unicorns'"),
    "company missing": (
        ["create_expense_categories"],
        {"rows": [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}]},
        "envelope.legal_entity",
    ),
    "malformed JSON": (["create_transaction_categories"], '{"rows": [', "not valid JSON"),
    "amount as a JSON number": (
        ["create_expense_estimates", "--legal-entity", "USPM"],
        {"rows": [{**ESTIMATE, "unit_cost": 120}]},
        'payload.rows.0.unit_cost: must be a JSON string such as "125.40", not a number',
    ),
    "amount with an exponent": (
        ["create_expense_estimates", "--legal-entity", "USPM"],
        {"rows": [{**ESTIMATE, "unit_cost": "1e3"}]},
        "payload.rows.0.unit_cost: must be plain decimal digits",
    ),
    "amount with spaces": (
        ["create_expense_estimates", "--legal-entity", "USPM"],
        {"rows": [{**ESTIMATE, "unit_cost": " 10.00 "}]},
        "payload.rows.0.unit_cost: must be plain decimal digits",
    ),
    "line number as a string": (
        ["create_expense_estimates", "--legal-entity", "USPM"],
        {"rows": [{**ESTIMATE, "line_number": "1"}]},
        "payload.rows.0.line_number: Input should be a valid integer",
    ),
    "billable as a string": (
        ["create_projects", "--legal-entity", "USPM"],
        {"rows": [{"project_id": "PRJ-US-100", "name": "Rollout", "project_manager": "maria", "billable": "yes"}]},
        "payload.rows.0.billable: Input should be a valid boolean",
    ),
    "NUL in a name": (["create_transaction_categories"], {"rows": [{"category": "TAXI", "name": "Ta\u0000xi"}]},
                      "payload.rows.0.name: must not contain control character U+0000"),
    "version as a string in an envelope": (
        ["create_transaction_categories", "--envelope"],
        {"message_id": "0b9f6d4e-54c1-4c47-9a57-0e9d1f0c2a12", "contract": "create_transaction_categories", "version": "1",
         "source": "upstream", "legal_entity": None, "correlation_id": "erp:1", "causation_id": None,
         "occurred_at": "2026-11-25T09:30:00Z", "payload": HOTEL},
        "envelope.version: Input should be a valid integer",
    ),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_input_exits_3_names_the_problem_and_enqueues_nothing(
    redis_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    arguments, document, named = INVALID[case]
    contract, *options = arguments

    # When an upstream system publishes an invalid document
    status = main(["publish", contract, write(tmp_path, document), *options])

    # Then the command exits with status 3 and says what is wrong
    assert status == ExitCode.INVALID_INPUT == 3
    error = capsys.readouterr().err
    assert named in error, error

    # And nothing reached Redis: no queue holds a message
    assert all(queue_length(redis_client, queue) == 0 for queue in all_queues())
    assert redis_client.dbsize() == 0


def test_valid_input_exits_0_and_enqueues_one_message(
    redis_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When an upstream system publishes a valid command, with its own idempotency key
    status = main([
        "publish", "create_expense_categories", write(tmp_path, {"rows": [
            {"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}]}),
        "--legal-entity", "USPM", "--correlation-id", "expense-categories:USPM",
        "--message-id", "0b9f6d4e-54c1-4c47-9a57-0e9d1f0c2a11", "--json",
    ])

    # Then it exits 0 and reports where the message went
    assert status == ExitCode.OK == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "message_id": "0b9f6d4e-54c1-4c47-9a57-0e9d1f0c2a11",
        "contract": "create_expense_categories",
        "version": 1,
        "queue": FINANCE_COMMANDS.name,
        "correlation_id": "expense-categories:USPM",
        "legal_entity": "USPM",
    }

    # And exactly one message waits on finance's command queue, in dramatiq's wire format
    assert queue_length(redis_client, FINANCE_COMMANDS) == 1
    assert queue_length(redis_client, DATAVERSE_COMMANDS) == 0
    [stored] = redis_client.hvals(f"dramatiq:{FINANCE_COMMANDS.name}.msgs")
    message = json.loads(stored)
    assert (message["queue_name"], message["actor_name"]) == (FINANCE_COMMANDS.name, FINANCE_COMMANDS.actor_name)
    assert message["message_id"] == result["message_id"]
    envelope = json.loads(message["args"][0])
    assert envelope["message_id"] == result["message_id"]
    assert (envelope["contract"], envelope["version"], envelope["legal_entity"]) == ("create_expense_categories", 1, "USPM")
    assert envelope["payload"]["rows"][0]["expense_category"] == "HOTEL"


def test_a_company_code_in_lower_case_is_refused_naming_the_code_to_send(
    redis_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When an upstream system names its company in lower case
    status = main([
        "publish", "create_expense_categories", write(tmp_path, {"rows": [
            {"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}]}),
        "--legal-entity", "uspm",
    ])

    # Then the option is refused (never upper-cased behind its back), and nothing is enqueued
    assert status == ExitCode.USAGE
    assert "company codes are upper case: send 'USPM', not 'uspm'" in capsys.readouterr().err
    assert redis_client.dbsize() == 0
