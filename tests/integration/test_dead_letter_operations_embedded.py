"""The operator tools on the embedded default, where the broker lives inside the workers' process.

From outside, ``dlq list`` and ``dlq show`` still read the dead letters from the SQLite files
(saying the broker copies cannot be checked), while ``queues`` and the repairs refuse, naming the
setting to change. In the process that holds the broker, the same operations repair the letters.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.catalog import default_registry
from contracts.queues import FINANCE_COMMANDS
from contracts.senders import OPERATOR
from shared.signatures import Signer, key_ring
from shared.waiting import wait_until
from tests.integration.operators import OperatedSystem, operated_embedded  # noqa: F401 - the fixture
from tests.integration.support import BRIDGE, FINANCE, FOUR_CLASSES
from workers.cli.exit_codes import ExitCode
from workers.operations.audit import AuditLog
from workers.operations.dead_letter_queue import DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterLedgers
from workers.operations.dead_letter_repair import DeadLetterRepair
from workers.operations.queue_depths import queue_depths


def test_embedded_commands_read_the_files_and_in_process_repairs_replay(operated_embedded: OperatedSystem) -> None:
    system = operated_embedded

    # Given two expense categories refused because HOTEL is not enabled for expense
    system.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])
    wait_until(lambda: system.shared_categories().get("HOTEL") == FOUR_CLASSES, timeout=20, what="HOTEL in finance")
    refused = [
        system.publish(
            "create_expense_categories",
            [{"expense_category": code, "name": code.title(), "shared_category": "HOTEL"}],
            legal_entity="USMF",
        )
        for code in ("HOTEL", "MOTEL")
    ]
    system.wait_for_dead_letters(2)

    # Then `dlq list` and `dlq show` read them from the SQLite files, the broker unchecked
    listing = system.dualwrite("dlq", "list", "--json")
    assert listing.status == ExitCode.OK and "broker copies are not checked" in listing.err
    [group] = listing.json["groups"]
    assert (group["count"], group["contract"], listing.json["broker_checked"]) == (2, "create_expense_categories", False)
    assert {letter["in_broker"] for letter in group["letters"]} == {None}
    shown = system.dualwrite("dlq", "show", str(refused[0].message_id), "--json").json
    assert shown["envelope"]["payload"]["rows"][0]["expense_category"] == "HOTEL"

    # And the commands that need the broker refuse, saying what to set
    for argv in (["queues"], ["dlq", "replay", "--all"], ["dlq", "purge", "--all", "--yes"]):
        command = system.dualwrite(*argv)
        assert command.status == ExitCode.CONFIGURATION, argv
        assert "DUALWRITE_BROKER_URL" in command.err

    # When, in the workers' process, the cause is fixed and the group replayed
    system.publish("enable_expense_on_shared_category", [{"category": "HOTEL", "expense_type": "hotel"}])
    system.settle()
    ledgers = DeadLetterLedgers({side.value: system.database(side) for side in system.runtime.sides})
    queue = DeadLetterQueue(ledgers, system.broker_queues)
    assert [depth.counts.dead for depth in queue_depths(system.broker_queues, datetime.now(UTC)) if depth.queue == FINANCE_COMMANDS] == [2]
    [found] = queue.groups()
    signer = Signer(key_ring(system.runtime.settings), OPERATOR)  # replays go out signed by the operators' key
    repair = DeadLetterRepair(
        ledgers, system.broker_queues, default_registry(), AuditLog(system.database(BRIDGE)), "dana", signer=signer
    )
    report = repair.replay(list(found.letters), f"group {found.group_id}")

    # Then both are applied once, nothing is dead, and `dualwrite audit` reads the repair from the files
    assert len(report.done) == 2 and report.refused == []
    wait_until(lambda: {row[1] for row in system.dataverse_expense_categories()} == {"HOTEL", "MOTEL"}, timeout=20, what="categories in Dataverse")
    system.settle()
    assert all(system.applied(FINANCE, envelope.message_id) == 1 for envelope in refused)
    assert queue.groups() == []
    [entry] = system.dualwrite("audit", "--json").json
    assert (entry["operator"], entry["action"], entry["count"]) == ("dana", "replay", 2)
