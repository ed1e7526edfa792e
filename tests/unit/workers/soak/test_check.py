"""The soak's end-to-end check on made-up rows: a line missing at one hop is lost, a key held twice is doubled."""

from __future__ import annotations

from typing import Any

from workers.bench.load import BenchReport
from workers.soak.check import COST, HOPS, SALES, check_hops, expected_keys, line_verdicts
from workers.soak.faults import InjectedFault
from workers.soak.progress import Watermark
from workers.soak.report import SoakResult, fault_rows, summary
from workers.soak.schedule import PlannedFault

BILLABLE = {"PRJ-1"}


def report(report_id: str, projects: list[str]) -> BenchReport:
    lines = tuple({"line_number": n, "project_id": project} for n, project in enumerate(projects, start=1))
    return BenchReport("USPM", report_id, "emp1-uspm", lines)  # type: ignore[arg-type]


REPORTS = [report("S000001", ["PRJ-1", "PRJ-2"]), report("S000002", ["PRJ-2"])]


def complete_rows() -> dict[str, list[Any]]:
    """What every hop holds when the flow did its job exactly once."""
    return {
        "posted in finance": ["S000001", "S000002"],
        "expense records": ["S000001-1", "S000001-2", "S000002-1"],
        "cost actuals": ["S000001-1", "S000001-2", "S000002-1"],
        "sales actuals": ["S000001-1"],
        "journal lines": [("S000001-1", COST), ("S000001-1", SALES), ("S000001-2", COST), ("S000002-1", COST)],
        "project transactions": [
            ("S000001-1", "cost"), ("S000001-1", "unbilled_revenue"), ("S000001-2", "cost"), ("S000002-1", "cost"),
        ],
    }


def test_every_hop_ok_when_each_key_is_there_once() -> None:
    hops = check_hops(expected_keys(REPORTS, BILLABLE), complete_rows())

    assert [h.hop for h in hops] == list(HOPS)
    assert all(h.ok for h in hops), [h.as_json() for h in hops]
    assert line_verdicts(REPORTS, hops) == (set(), set())


def test_a_line_missing_at_one_hop_is_lost_and_named() -> None:
    found = complete_rows()
    found["project transactions"].remove(("S000001-2", "cost"))

    hops = {h.hop: h for h in check_hops(expected_keys(REPORTS, BILLABLE), found)}

    assert hops["project transactions"].missing == [("S000001-2", "cost")]
    assert not hops["project transactions"].ok and hops["cost actuals"].ok
    assert line_verdicts(REPORTS, list(hops.values())) == ({"S000001-2"}, set())


def test_a_business_key_held_twice_is_doubled_even_when_counts_elsewhere_agree() -> None:
    found = complete_rows()
    found["cost actuals"].append("S000002-1")  # a second actual of the same expense, under another id

    hops = {h.hop: h for h in check_hops(expected_keys(REPORTS, BILLABLE), found)}

    assert hops["cost actuals"].doubled == {"S000002-1": 1}
    assert hops["cost actuals"].as_json()["doubled"] == 1
    assert line_verdicts(REPORTS, list(hops.values())) == (set(), {"S000002-1"})


def test_a_report_not_posted_loses_all_its_lines_and_an_unknown_key_is_reported() -> None:
    found = complete_rows()
    found["posted in finance"].remove("S000001")
    found["expense records"].append("S000099-1")

    hops = {h.hop: h for h in check_hops(expected_keys(REPORTS, BILLABLE), found)}

    assert line_verdicts(REPORTS, list(hops.values()))[0] == {"S000001-1", "S000001-2"}
    assert hops["expense records"].unexpected == ["S000099-1"]


def test_the_watermark_moves_over_consecutive_done_reports_only() -> None:
    mark = Watermark(lines_per_report=2)

    assert mark.update({1: 2, 2: 1, 3: 2}, now=10.0) == 1  # report 2 is one line short
    assert mark.update({2: 2}, now=11.0) == 3
    assert mark.done_at == {1: 10.0, 3: 10.0, 2: 11.0}


def fault(number: int, kind: str, injected_at: float, recovered_at: float | None, error: str | None = None) -> InjectedFault:
    record = InjectedFault(PlannedFault(number, kind, injected_at), injected_at=injected_at, offset=injected_at, reports_before=0)
    record.recovered_at, record.error = recovered_at, error
    return record


def test_the_table_attributes_lines_to_the_faults_their_report_flew_through() -> None:
    faults = [fault(1, "kill", 10.0, 15.0), fault(2, "kill", 40.0, 50.0), fault(3, "db-restart", 100.0, None), fault(4, "conn-kill", 5.0, 6.0, "boom")]
    windows = {"S000001": (9.0, 12.0), "S000002": (60.0, 70.0), "S000003": (95.0, 200.0)}

    rows = {row.kind: row for row in fault_rows(faults, {"kill": 2, "db-restart": 1, "conn-kill": 1}, windows, {"S000001-1", "S000003-2"}, {"S000002-1"}, end=300.0)}

    assert (rows["kill"].injected, rows["kill"].lost, rows["kill"].doubled) == (2, 1, 0)
    assert (rows["kill"].recovery_p50, rows["kill"].recovery_max, rows["kill"].recovered) == (5.0, 10.0, 2)
    assert (rows["db-restart"].lost, rows["db-restart"].recovered, rows["db-restart"].recovery_max) == (1, 0, None)
    assert (rows["conn-kill"].injected, rows["conn-kill"].failed_injections, rows["conn-kill"].lost) == (0, 1, 0)


def test_the_verdict_fails_on_a_loss_and_the_table_says_so() -> None:
    found = complete_rows()
    found["journal lines"].remove(("S000002-1", COST))
    hops = check_hops(expected_keys(REPORTS, BILLABLE), found)
    lost, doubled = line_verdicts(REPORTS, hops)
    company = {
        "legal_entity": "USPM", "ok": True, "problems": [], "expense_integration_balance": "0.00", "project_cost_balance": "1.00",
        "cost_actuals_total": "1.00", "accounting_currency": "USD", "counts": {"posted_project_expense_lines": 3},
    }
    result = SoakResult(
        command="dualwrite soak", options={}, broker="Redis", reports=2, expected_lines=3, faults=[],
        rows=fault_rows([], {"kill": 1}, {}, lost, doubled, end=1.0), hops=hops, lost_lines=len(lost), doubled_lines=len(doubled),
        reconciliation=[company], dead_letters=[],
    )

    text = "\n".join(summary(result))
    assert not result.ok and result.as_json()["ok"] is False
    assert "FAIL journal lines" in text and "missing: ('S000002-1', 192350000)" in text
    assert text.splitlines()[-1] == "FAIL: 1 lost, 0 doubled, reconcile ok"
