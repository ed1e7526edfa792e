"""Two approvals of one report applied at the same moment: neither approval is lost.

R-US-001 has two project lines (approved by maria, the project manager) and one line on no
project (approved by carol, alice's manager). Published together, the two approvals are taken by
two worker threads at once; the report's rows are locked while one applies, so the other sees
its result, and the report ends approved with every line signed.
"""

from __future__ import annotations

from sqlalchemy import select

from tests.integration.report_flow import given_the_demo_reference_data, report_statuses, step
from tests.integration.support import FINANCE, System
from workers.demo.expense_steps import REPORTS
from workers.finance import tables as fin


def test_two_approvals_at_once_both_count(system: System) -> None:
    # Given R-US-001 created and submitted
    given_the_demo_reference_data(system)
    legal_entity, worker, lines = REPORTS["R-US-001"]
    system.publish(
        "create_expense_reports",
        [{"report_id": "R-US-001", "worker": worker, "lines": lines}],
        legal_entity=legal_entity,
        correlation_id="expense-report:USPM:R-US-001",
    )
    system.settle()
    step(system, "submit_expense_reports", "R-US-001")
    system.settle()

    # When maria and carol approve at the same moment
    step(system, "approve_expense_reports", "R-US-001", approver="maria")
    step(system, "approve_expense_reports", "R-US-001", approver="carol")
    system.settle()

    # Then the report is approved and every line carries its approver
    assert report_statuses(system) == {"R-US-001": "approved"}
    lines_table = fin.expense_lines
    approved = dict(system.rows(FINANCE, select(lines_table.c.line_number, lines_table.c.approved_by)))
    assert approved == {1: "maria", 2: "maria", 3: "carol"}
    assert system.all_dead_letters() == {side.value: [] for side in system.runtime.sides}
