"""Bad input from a publisher that skipped validation: each message dies with its reason, and the worker goes on.

The raw bodies go straight onto the queues (``Publisher.send_raw``), as a broken publisher in
another language could put them there. Each ends as a row in the consuming side's dead letters
(error type, reason naming what is wrong, the original body) and in dramatiq's dead-letter queue
on the broker (``dramatiq:<queue>.XQ``); a good message sent afterwards is applied as usual.

All the bad messages are put on their queues together, on one running system per backend
(``refused``), and each test looks at what became of one of them: the system a test looks at is
the same for every case, and a bad message cannot hide behind another either.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.envelope import Side
from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, Queue
from tests.conftest import Backend
from tests.integration.conftest import started_system
from tests.integration.support import DATAVERSE, FINANCE, FOUR_CLASSES, System
from workers.dataverse import tables as dataverse


def envelope(contract: str, version: int, rows: list[dict[str, Any]], legal_entity: str | None = None) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "contract": contract,
        "version": version,
        "source": "upstream",
        "legal_entity": legal_entity,
        "correlation_id": "bad-input",
        "causation_id": None,
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {"rows": rows},
    }


ESTIMATE_V2 = {"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
               "quantity": "3", "unit_cost": "120.00", "currency": "USD"}
ESTIMATE_V1 = {"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
               "amount": "360.00", "currency": "USD"}


@dataclass(frozen=True)
class BadInput:
    side: Side
    queue: Queue
    body: str
    error_type: str
    reason: tuple[str, ...]


CASES = {
    "malformed JSON": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        '{"message_id": "5b0e0c0e-0000-4000-8000-000000000001", "contract": "create_transaction_categories", "payload": {"rows": [',
        "InvalidContract", ("envelope", "Invalid JSON"),
    ),
    "unknown contract": BadInput(
        FINANCE, FINANCE_COMMANDS,
        json.dumps(envelope("create_unicorns", 1, [{"category": "HOTEL"}])),
        "UnknownContract", ("unknown contract 'create_unicorns'",),
    ),
    "unknown version": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_transaction_categories", 7, [{"category": "HOTEL", "name": "Hotel"}])),
        "UnknownContractVersion", ("create_transaction_categories", "no version 7"),
    ),
    "missing field": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_transaction_categories", 1, [{"category": "HOTEL"}])),
        "InvalidContract", ("payload.rows.0.name", "Field required"),
    ),
    "missing envelope field": BadInput(
        FINANCE, FINANCE_COMMANDS,
        json.dumps({k: v for k, v in envelope("enable_expense_on_shared_category", 1, [{"category": "HOTEL", "expense_type": "hotel"}]).items() if k != "correlation_id"}),
        "InvalidContract", ("envelope.correlation_id", "Field required"),
    ),
    "negative amount": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 2, [{**ESTIMATE_V2, "unit_cost": "-120.00"}], "USPM")),
        "InvalidContract", ("payload.rows.0.unit_cost", "greater than or equal to 0"),
    ),
    "negative amount from a v1 publisher": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 1, [{**ESTIMATE_V1, "amount": "-360.00"}], "USPM")),
        "InvalidContract", ("create_expense_estimates v1", "payload.rows.0.amount", "greater than or equal to 0"),
    ),
    "amount as a JSON number": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 2, [{**ESTIMATE_V2, "unit_cost": 120.0}], "USPM")),
        "InvalidContract", ("payload.rows.0.unit_cost", 'must be a JSON string such as "125.40", not a number'),
    ),
    "amount with an exponent from a v1 publisher": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 1, [{**ESTIMATE_V1, "amount": "1e3"}], "USPM")),
        "InvalidContract", ("create_expense_estimates v1", "payload.rows.0.amount", "must be plain decimal digits"),
    ),
    "amount with spaces": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 2, [{**ESTIMATE_V2, "unit_cost": " 10.00 "}], "USPM")),
        "InvalidContract", ("payload.rows.0.unit_cost", "must be plain decimal digits"),
    ),
    "version as a string": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_transaction_categories", "1", [{"category": "HOTEL", "name": "Hotel"}])),
        "InvalidContract", ("envelope.version", "Input should be a valid integer"),
    ),
    "billable as a string": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_projects", 1, [{"project_id": "PRJ-US-100", "name": "Rollout",
                                                    "project_manager": "maria", "billable": "yes"}], "USPM")),
        "InvalidContract", ("payload.rows.0.billable", "Input should be a valid boolean"),
    ),
    "company code in lower case": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_expense_estimates", 2, [ESTIMATE_V2], "uspm")),
        "InvalidContract", ("envelope.legal_entity", "company codes are upper case: send 'USPM', not 'uspm'"),
    ),
    # PostgreSQL cannot store U+0000 in text: refused as the contract's fault, never retried as a database error
    "NUL in a text field": BadInput(
        DATAVERSE, DATAVERSE_COMMANDS,
        json.dumps(envelope("create_transaction_categories", 1, [{"category": "HOTEL", "name": "Ho\u0000tel"}])),
        "InvalidContract", ("payload.rows.0.name", "must not contain control character U+0000 (at position 2)"),
    ),
    "NUL in the correlation id": BadInput(
        FINANCE, FINANCE_COMMANDS,
        json.dumps({**envelope("enable_expense_on_shared_category", 1, [{"category": "HOTEL", "expense_type": "hotel"}]),
                    "correlation_id": "bad\u0000input"}),
        "InvalidContract", ("envelope.correlation_id", "must not contain control character U+0000"),
    ),
}


@dataclass(frozen=True)
class Refused:
    system: System
    #: case -> the message id it was put on its queue with
    message_ids: dict[str, str]


@pytest.fixture(scope="module")
def refused(module_backend: Backend) -> Iterator[Refused]:
    """The three workers running, every bad input of CASES put on its queue by a broken publisher, all settled."""
    with started_system(module_backend) as system:
        # Given a broken publisher puts each message on a queue without validating it
        message_ids = {case: system.put_raw(bad.queue, bad.body) for case, bad in CASES.items()}
        system.settle()
        yield Refused(system, message_ids)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_dead_lettered_with_its_reason(refused: Refused, case: str) -> None:
    bad, system, message_id = CASES[case], refused.system, refused.message_ids[case]

    # Then the consuming side recorded it as a permanent dead letter, at the first attempt, with its reason
    letters = system.dead_letters(bad.side, system.database(bad.side).messaging.dead_letters.c.message_id == message_id)
    [letter] = letters
    assert letter.queue_name == bad.queue.name
    assert (letter.error_kind, letter.error_type, letter.attempts) == ("permanent", bad.error_type, 1)
    for fragment in bad.reason:
        assert fragment in letter.error, f"reason {letter.error!r} does not name {fragment!r}"
    assert letter.body == bad.body

    # And the broker holds it in the queue's dead-letter queue; it was applied nowhere
    assert message_id in [m["message_id"] for m in system.broker_dead_letters(bad.queue)]
    assert all(system.applied(side, message_id) == 0 for side in system.runtime.sides)


def test_nothing_bad_was_applied_and_the_worker_goes_on(refused: Refused) -> None:
    system, message_ids = refused.system, refused.message_ids

    # Then each side's dead letters are the bad messages it consumes, one each, and so is each queue's dead-letter queue
    for side in (FINANCE, DATAVERSE):
        sent = sorted(message_ids[case] for case, bad in CASES.items() if bad.side == side)
        assert sorted(letter.message_id for letter in system.dead_letters(side)) == sent
    for queue, count in Counter(bad.queue for bad in CASES.values()).items():
        assert sorted(m["message_id"] for m in system.broker_dead_letters(queue)) == sorted(
            message_ids[case] for case, bad in CASES.items() if bad.queue == queue
        )
        assert len(system.broker_dead_letters(queue)) == count
    # And nothing was applied anywhere: no message sent on, no category, no estimate
    assert system.outbox(FINANCE) == [] and system.outbox(DATAVERSE) == []
    assert system.shared_categories() == {}
    assert system.count(DATAVERSE, dataverse.expense_estimates) == 0

    # When a good message follows on the same queues
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    system.settle()

    # Then the worker went on and applied it, and refused nothing more
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}
    assert {side: len(system.dead_letters(side)) for side in (FINANCE, DATAVERSE)} == dict(
        Counter(bad.side for bad in CASES.values())
    )
