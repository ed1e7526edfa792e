"""The expense flow end to end, to the cent, on the embedded default and on real Redis + PostgreSQL.

Given the demo set-up (USPM in USD, DEMF in EUR), three expense categories and two projects (P-US
billable in USPM, P-DE not billable in DEMF), three expense reports go through create, submit,
approve and post, each step published once the previous one is applied. They cover a tax nobody
recovers (US-HOTEL), taxes recovered in full (CA-GST, DE-VAT7, DE-VAT19) and in part (DE-ENT19),
lines in a foreign currency (EUR and CAD in USPM, USD in DEMF), lines on no project and a CAD line
whose accounting split leaves a one-cent residue. Every expected amount below is worked out by
hand, with its arithmetic beside it.

The scenario's steps and expectations are reused by ``test_expense_redelivery.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import Middleware
from sqlalchemy import func, select

import workers
from contracts.fields import TransactionClassification, TransactionType
from shared.settings import Settings
from shared.waiting import Timeout, wait_until
from tests.integration.support import (
    DATAVERSE,
    FINANCE,
    System,
    given_expense_categories,
    given_expense_enabled,
    given_transaction_categories,
    load_setup_of,
)
from workers.dataverse import tables as dv
from workers.finance import tables as fin
from workers.finance.setup_document import read_setup_document
from workers.reconcile import CompanyReconciliation, reconcile
from workers.reference_data import DATAVERSE_COMPANIES
from workers.runtime import Runtime

D = Decimal
SETUP_FILE = Path(workers.__file__).parent / "demo_data" / "setup.yaml"
#: Import from staging runs this often, so the journal follows the actuals within a fraction of a second.
IMPORT_INTERVAL = 0.1
WAIT = 30.0

EXPENSE = int(TransactionClassification.EXPENSE)  # 192350001
COST = int(TransactionType.COST)  # 192350000
UNBILLED_SALES = int(TransactionType.UNBILLED_SALES)  # 192350005

INTEGRATION, PROJECT_COST, TRAVEL_COST, PAYABLES, ORDINARY = "189900", "600100", "600200", "200510", "606100"
US_TAX, DE_TAX = "140200", "154000"


def nov(day: int) -> dt.date:
    return dt.date(2026, 11, day)


# -- the scenario: set-up ------------------------------------------------------------------------

CATEGORIES = {"HOTEL": "hotel", "AIRFARE": "airline", "MEALS": "meals"}
COMPANY_CATEGORIES = {"USPM": ["HOTEL", "AIRFARE", "MEALS"], "DEMF": ["HOTEL", "MEALS"]}
PROJECTS = {
    "USPM": [{"project_id": "P-US", "name": "US roll-out", "project_manager": "maria", "billable": True}],
    "DEMF": [{"project_id": "P-DE", "name": "Rollout Deutschland", "project_manager": "jonas", "billable": False}],
}


def flow_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"import_interval_seconds": IMPORT_INTERVAL})


@contextmanager
def running(
    settings: Settings,
    backend_name: str,
    *,
    broker: dramatiq.Broker | None = None,
    middleware: Iterable[Middleware] = (),
) -> Iterator[System]:
    """All three workers on ``settings`` (and on ``broker``, when given), stopped on the way out."""
    runtime = Runtime(settings, broker=broker)
    try:
        system = System(runtime, backend_name)
        for each in middleware:
            runtime.broker.add_middleware(each)
        runtime.create_tables()
        runtime.start()
        yield system
    finally:
        runtime.stop()


@pytest.fixture
def flow(backend) -> Iterator[System]:  # noqa: ANN001
    with running(flow_settings(backend.settings), backend.name) as system:
        yield system


def settle_cleanly(system: System, step: str) -> None:
    system.settle()
    dead = {side: letters for side, letters in system.all_dead_letters().items() if letters}
    assert not dead, f"step {step!r} dead-lettered: {dead}"


def given_the_demo_setup(system: System) -> None:
    """The set-up file (finance's, its companies in Dataverse too), expense categories in both companies,
    and the two projects."""
    counts = load_setup_of(system.runtime, read_setup_document(SETUP_FILE))
    assert (counts["legal_entities"], counts[DATAVERSE_COMPANIES]) == (2, 2)
    given_transaction_categories(system, *CATEGORIES)
    given_expense_enabled(system, CATEGORIES)
    for legal_entity, codes in COMPANY_CATEGORIES.items():
        given_expense_categories(system, legal_entity, codes)
    for legal_entity, rows in PROJECTS.items():
        system.publish("create_projects", rows, legal_entity=legal_entity, correlation_id=f"projects:{legal_entity}")
    settle_cleanly(system, "projects")
    projects = fin.projects.c
    assert sorted(system.rows(FINANCE, select(projects.project_id, projects.legal_entity, projects.project_manager, projects.billable))) == [
        ("P-DE", "DEMF", "jonas", False),
        ("P-US", "USPM", "maria", True),
    ]


# -- the scenario: expense reports ---------------------------------------------------------------


def expense_line(number: int, project: str | None, category: str, day: int, amount: str, currency: str, tax: str | None) -> dict[str, Any]:
    return {"line_number": number, "project_id": project, "expense_category": category, "date": nov(day).isoformat(),
            "amount": amount, "currency": currency, "tax_code": tax}


REPORTS: dict[str, list[dict[str, Any]]] = {
    "USPM": [
        {"report_id": "US-1", "worker": "alice", "lines": [
            expense_line(1, "P-US", "HOTEL", 3, "345.00", "USD", "US-HOTEL"),  # non-recoverable tax
            expense_line(2, "P-US", "AIRFARE", 4, "500.00", "EUR", None),  # foreign currency, AIRFARE -> 600200
            expense_line(3, None, "MEALS", 5, "84.00", "USD", None),  # on no project
            expense_line(4, "P-US", "HOTEL", 5, "105.00", "CAD", "CA-GST"),  # foreign currency, recoverable tax
        ]},
        {"report_id": "US-2", "worker": "bob", "lines": [
            expense_line(1, "P-US", "HOTEL", 6, "10.21", "CAD", "CA-GST"),  # the one-cent residue
        ]},
    ],
    "DEMF": [
        {"report_id": "DE-1", "worker": "lena", "lines": [
            expense_line(1, "P-DE", "HOTEL", 10, "107.00", "EUR", "DE-VAT7"),  # recoverable in full
            expense_line(2, "P-DE", "MEALS", 11, "119.00", "EUR", "DE-ENT19"),  # 70 % recoverable
            expense_line(3, "P-DE", "HOTEL", 12, "200.00", "USD", None),  # foreign currency
            expense_line(4, None, "MEALS", 12, "30.00", "EUR", "DE-VAT19"),  # on no project, recoverable
        ]},
    ],
}
#: Project lines go to their project's manager, the others to the worker's manager.
APPROVALS = {
    "USPM": [{"report_id": "US-1", "approver": "maria"}, {"report_id": "US-1", "approver": "carol"},
             {"report_id": "US-2", "approver": "maria"}],
    "DEMF": [{"report_id": "DE-1", "approver": "jonas"}, {"report_id": "DE-1", "approver": "klaus"}],
}


def report_refs() -> dict[str, list[dict[str, str]]]:
    return {le: [{"report_id": r["report_id"]} for r in reports] for le, reports in REPORTS.items()}


def publish_step(system: System, contract: str, rows_by_company: dict[str, list[dict[str, Any]]]) -> None:
    for legal_entity, rows in rows_by_company.items():
        system.publish(contract, rows, legal_entity=legal_entity, correlation_id=f"{contract}:{legal_entity}")


def when_the_reports_are_created_submitted_and_approved(system: System) -> None:
    for contract, rows in (
        ("create_expense_reports", REPORTS),
        ("submit_expense_reports", report_refs()),
        ("approve_expense_reports", APPROVALS),
    ):
        publish_step(system, contract, rows)
        settle_cleanly(system, contract)
    reports = fin.expense_reports.c
    assert sorted(system.rows(FINANCE, select(reports.report_id, reports.status))) == [
        ("DE-1", "approved"), ("US-1", "approved"), ("US-2", "approved"),
    ]


def when_the_reports_are_posted(system: System) -> None:
    publish_step(system, "post_expense_reports", report_refs())


# -- expectations, worked out by hand ------------------------------------------------------------
#
# USPM (USD)                                        accounting      project cost (acc)  recoverable (acc)
#  US-1/1 345.00 USD US-HOTEL 15 %, 0 % recoverable 345.00          345.00              0.00
#         tax 345.00 x 0.15 / 1.15 = 45.00, all of it project cost
#  US-1/2 500.00 EUR x 1.0920 (rate from 2026-11-01) 546.00         546.00 (AIRFARE)    -
#  US-1/3  84.00 USD on no project                   84.00          -> 606100           -
#  US-1/4 105.00 CAD CA-GST 5 %, x 0.73              76.65          73.00               3.65
#         tax 105.00 x 0.05 / 1.05 = 5.00 CAD; 5.00 x 0.73 = 3.65; 76.65 - 3.65 = 73.00; cost 100.00 CAD
#  US-2/1  10.21 CAD CA-GST 5 %, x 0.73              7.45           7.09                0.36
#         tax 10.21 x 0.05 / 1.05 = 0.486.. -> 0.49 CAD; 10.21 x 0.73 = 7.4533 -> 7.45;
#         0.49 x 0.73 = 0.3577 -> 0.36; cost 7.45 - 0.36 = 7.09 (9.72 x 0.73 = 7.0956 would say 7.10:
#         the cent of residue stays in project cost, so the voucher balances)
#  owed to alice 345.00 + 546.00 + 84.00 + 76.65 = 1,051.65; to bob 7.45
#  project cost 600100: 345.00 + 73.00 + 7.09 = 425.09; 600200: 546.00; cost actuals 971.09
#  tax 140200: 3.65 + 0.36 = 4.01; payables: -(1,051.65 + 7.45) = -1,059.10
#  check: 425.09 + 546.00 + 84.00 + 4.01 - 1,059.10 = 0.00
#
# DEMF (EUR)
#  DE-1/1 107.00 EUR DE-VAT7 7 %, all recoverable    tax 107.00 x 0.07 / 1.07 = 7.00; cost 100.00
#  DE-1/2 119.00 EUR DE-ENT19 19 %, 70 % recoverable tax 19.00; recoverable 13.30; cost 105.70
#  DE-1/3 200.00 USD x 0.92                          184.00, all project cost
#  DE-1/4  30.00 EUR DE-VAT19 on no project          tax 30.00 x 0.19 / 1.19 = 4.7899.. -> 4.79; cost 25.21 -> 606100
#  owed to lena 107.00 + 119.00 + 184.00 + 30.00 = 440.00
#  project cost 600100: 100.00 + 105.70 + 184.00 = 389.70; tax 154000: 7.00 + 13.30 + 4.79 = 25.09
#  check: 389.70 + 25.21 + 25.09 - 440.00 = 0.00

BALANCES = {
    "USPM": {INTEGRATION: D("0.00"), PROJECT_COST: D("425.09"), TRAVEL_COST: D("546.00"), ORDINARY: D("84.00"),
             US_TAX: D("4.01"), PAYABLES: D("-1059.10")},
    "DEMF": {INTEGRATION: D("0.00"), PROJECT_COST: D("389.70"), ORDINARY: D("25.21"), DE_TAX: D("25.09"),
             PAYABLES: D("-440.00")},
}
PROJECT_COST_TOTAL = {"USPM": D("971.09"), "DEMF": D("389.70")}
PROJECT_LINES = {"USPM": 4, "DEMF": 3}

#: Expense vouchers: (account, accounting amount, transaction amount, transaction currency) per line.
EXPENSE_VOUCHERS = {
    ("USPM", "EXP-US-1"): [
        (INTEGRATION, D("345.00"), D("345.00"), "USD"),
        (INTEGRATION, D("546.00"), D("500.00"), "EUR"),
        (ORDINARY, D("84.00"), D("84.00"), "USD"),
        (INTEGRATION, D("73.00"), D("100.00"), "CAD"),
        (US_TAX, D("3.65"), D("5.00"), "CAD"),
        (PAYABLES, D("-1051.65"), D("-1051.65"), "USD"),
    ],
    ("USPM", "EXP-US-2"): [
        (INTEGRATION, D("7.09"), D("9.72"), "CAD"),
        (US_TAX, D("0.36"), D("0.49"), "CAD"),
        (PAYABLES, D("-7.45"), D("-7.45"), "USD"),
    ],
    ("DEMF", "EXP-DE-1"): [
        (INTEGRATION, D("100.00"), D("100.00"), "EUR"),
        (DE_TAX, D("7.00"), D("7.00"), "EUR"),
        (INTEGRATION, D("105.70"), D("105.70"), "EUR"),
        (DE_TAX, D("13.30"), D("13.30"), "EUR"),
        (INTEGRATION, D("184.00"), D("200.00"), "USD"),
        (ORDINARY, D("25.21"), D("25.21"), "EUR"),
        (DE_TAX, D("4.79"), D("4.79"), "EUR"),
        (PAYABLES, D("-440.00"), D("-440.00"), "EUR"),
    ],
}

#: (legal entity, voucher, line, report, tax code, currency, base, tax, recoverable, non-recoverable, recoverable acc, date)
TAX_ROWS = [
    ("DEMF", "EXP-DE-1", 1, "DE-1", "DE-VAT7", "EUR", D("100.00"), D("7.00"), D("7.00"), D("0.00"), D("7.00"), nov(10)),
    ("DEMF", "EXP-DE-1", 2, "DE-1", "DE-ENT19", "EUR", D("100.00"), D("19.00"), D("13.30"), D("5.70"), D("13.30"), nov(11)),
    ("DEMF", "EXP-DE-1", 4, "DE-1", "DE-VAT19", "EUR", D("25.21"), D("4.79"), D("4.79"), D("0.00"), D("4.79"), nov(12)),
    ("USPM", "EXP-US-1", 1, "US-1", "US-HOTEL", "USD", D("300.00"), D("45.00"), D("0.00"), D("45.00"), D("0.00"), nov(3)),
    ("USPM", "EXP-US-1", 4, "US-1", "CA-GST", "CAD", D("100.00"), D("5.00"), D("5.00"), D("0.00"), D("3.65"), nov(5)),
    ("USPM", "EXP-US-2", 1, "US-2", "CA-GST", "CAD", D("9.72"), D("0.49"), D("0.49"), D("0.00"), D("0.36"), nov(6)),
]

#: (legal entity, voucher, vendor account, worker, report, amount, currency)
VENDOR_ROWS = [
    ("DEMF", "EXP-DE-1", "V-LENA", "lena", "DE-1", D("440.00"), "EUR"),
    ("USPM", "EXP-US-1", "V-ALICE", "alice", "US-1", D("1051.65"), "USD"),
    ("USPM", "EXP-US-2", "V-BOB", "bob", "US-2", D("7.45"), "USD"),
]

#: Posted project lines: expense id -> (company, report, line, project, category, worker, date, amount, currency,
#: project cost, accounting currency, project cost in accounting currency, exchange rate, voucher)
EXPENSES = {
    "US-1-1": ("USPM", "US-1", 1, "P-US", "HOTEL", "alice", nov(3), D("345.00"), "USD", D("345.00"), "USD", D("345.00"), D("1"), "EXP-US-1"),
    "US-1-2": ("USPM", "US-1", 2, "P-US", "AIRFARE", "alice", nov(4), D("500.00"), "EUR", D("500.00"), "USD", D("546.00"), D("1.0920"), "EXP-US-1"),
    "US-1-4": ("USPM", "US-1", 4, "P-US", "HOTEL", "alice", nov(5), D("105.00"), "CAD", D("100.00"), "USD", D("73.00"), D("0.73"), "EXP-US-1"),
    "US-2-1": ("USPM", "US-2", 1, "P-US", "HOTEL", "bob", nov(6), D("10.21"), "CAD", D("9.72"), "USD", D("7.09"), D("0.73"), "EXP-US-2"),
    "DE-1-1": ("DEMF", "DE-1", 1, "P-DE", "HOTEL", "lena", nov(10), D("107.00"), "EUR", D("100.00"), "EUR", D("100.00"), D("1"), "EXP-DE-1"),
    "DE-1-2": ("DEMF", "DE-1", 2, "P-DE", "MEALS", "lena", nov(11), D("119.00"), "EUR", D("105.70"), "EUR", D("105.70"), D("1"), "EXP-DE-1"),
    "DE-1-3": ("DEMF", "DE-1", 3, "P-DE", "HOTEL", "lena", nov(12), D("200.00"), "USD", D("200.00"), "EUR", D("184.00"), D("0.92"), "EXP-DE-1"),
}
BILLABLE = {"P-US": True, "P-DE": False}


def expected_actuals() -> dict[str, tuple]:
    """actual id -> (company, expense, project, category, classification, type, date, amount, currency,
    accounting amount, accounting currency, exchange rate): a cost actual per project line, and an
    unbilled sales actual (billed at cost) when the project is billable."""
    actuals = {}
    for expense_id, (le, _, _, project, category, _, date, _, currency, cost, acc_currency, cost_acc, rate, _) in EXPENSES.items():
        kinds = [("COST", COST)] + ([("SALES", UNBILLED_SALES)] if BILLABLE[project] else [])
        for suffix, kind in kinds:
            actuals[f"{expense_id}-{suffix}"] = (le, expense_id, project, category, EXPENSE, kind, date, cost, currency,
                                                 cost_acc, acc_currency, rate)
    return actuals


def expected_project_transactions() -> dict[tuple[str, str], tuple]:
    """(actual id, kind) -> (company, project, category, date, amount, currency, accounting amount, accounting currency)."""
    return {
        (actual_id, "cost" if kind == COST else "unbilled_revenue"): (le, project, category, date, amount, currency, acc, acc_currency)
        for actual_id, (le, _, project, category, _, kind, date, amount, currency, acc, acc_currency, _) in expected_actuals().items()
    }


# -- waiting and looking -------------------------------------------------------------------------


def reconciliation(system: System) -> dict[str, CompanyReconciliation]:
    return {r.legal_entity: r for r in reconcile(system.database(FINANCE), system.database(DATAVERSE))}


def reconciled_and_written_back(system: System) -> dict[str, CompanyReconciliation] | None:
    """The reconciliation, once it is ok with every expected line and every actual's posting is back in Dataverse."""
    report = reconciliation(system)
    done = set(report) == set(PROJECT_LINES) and all(
        r.ok and set(r.counts.values()) == {PROJECT_LINES[le]} for le, r in report.items()
    )
    unposted = system.count(DATAVERSE, dv.actuals, dv.actuals.c.posting_status != "posted")
    return report if done and unposted == 0 and system.count(DATAVERSE, dv.actuals) == len(expected_actuals()) else None


def wait_until_reconciled(system: System, timeout: float = WAIT) -> dict[str, CompanyReconciliation]:
    try:
        report = wait_until(lambda: reconciled_and_written_back(system), timeout=timeout, interval=0.05, what="reconcile ok")
    except Timeout as late:
        raise AssertionError(f"{late}; where the flow stands: {where_the_flow_stands(system)}") from None
    settle_cleanly(system, "the end of the flow")
    return report


def where_the_flow_stands(system: System) -> dict[str, Any]:
    """What an operator would look at when the flow does not finish: reconcile, jobs, actuals, broker keys."""
    jobs, actuals = dv.system_jobs.c, dv.actuals.c
    client = system.runtime.broker.client
    return {
        "reconcile": {le: (r.problems, r.counts, r.pending) for le, r in reconciliation(system).items()},
        "jobs": system.rows(DATAVERSE, select(jobs.status, func.count()).group_by(jobs.status)),
        "actuals": system.rows(DATAVERSE, select(actuals.posting_status, func.count()).group_by(actuals.posting_status)),
        "dead letters": system.all_dead_letters(),
        "broker": {key.decode(): client.type(key).decode() for key in client.keys("dramatiq:*") if b"heartbeats" not in key},
    }


def balances(system: System) -> dict[str, dict[str, Decimal]]:
    ledger = fin.ledger_entries.c
    held: dict[str, dict[str, Decimal]] = {}
    for le, account, balance in system.rows(
        FINANCE, select(ledger.legal_entity, ledger.account, func.sum(ledger.amount)).group_by(ledger.legal_entity, ledger.account)
    ):
        held.setdefault(le, {})[account] = balance
    return held


# -- then: the books, to the cent ----------------------------------------------------------------


def then_every_company_reconciles(report: dict[str, CompanyReconciliation]) -> None:
    for le, expected_lines in PROJECT_LINES.items():
        company = report[le]
        assert company.ok, company.problems
        assert company.expense_integration_balance == D("0.00")
        assert company.project_cost_balance == company.cost_actuals_total == PROJECT_COST_TOTAL[le]
        assert company.unbalanced_vouchers == {}
        assert company.counts == dict.fromkeys(company.counts, expected_lines)
        assert company.pending == {"staged_actuals": 0, "open_journals": 0}


def then_the_ledger_holds_exactly(system: System) -> None:
    assert balances(system) == BALANCES
    ledger = fin.ledger_entries.c
    for (le, voucher), lines in EXPENSE_VOUCHERS.items():
        held = system.rows(
            FINANCE,
            select(ledger.account, ledger.amount, ledger.transaction_amount, ledger.transaction_currency)
            .where(ledger.legal_entity == le, ledger.voucher == voucher)
            .order_by(ledger.line_number),
        )
        assert [tuple(row) for row in held] == lines, voucher
    # The integration journals: per cost actual, debit its project cost account and credit 189900
    # by the accounting amount it was posted with; nothing for sales actuals.
    journal_lines = system.rows(
        FINANCE,
        select(ledger.legal_entity, ledger.source_id, ledger.account, ledger.amount, ledger.transaction_amount, ledger.transaction_currency)
        .where(ledger.source == "integration_journal"),
    )
    expected = []
    for actual_id, (le, _, _, category, _, kind, _, amount, currency, acc, _, _) in expected_actuals().items():
        if kind == COST:
            cost_account = TRAVEL_COST if category == "AIRFARE" else PROJECT_COST
            expected += [(le, actual_id, cost_account, acc, amount, currency), (le, actual_id, INTEGRATION, -acc, -amount, currency)]
    assert sorted(tuple(row) for row in journal_lines) == sorted(expected)


def then_the_subledgers_hold_exactly(system: System, posting_days: set[dt.date]) -> None:
    tax = fin.tax_transactions.c
    held_tax = system.rows(FINANCE, select(
        tax.legal_entity, tax.voucher, tax.line_number, tax.report_id, tax.tax_code, tax.currency, tax.base_amount,
        tax.tax_amount, tax.recoverable_amount, tax.non_recoverable_amount, tax.recoverable_accounting, tax.date,
    ).order_by(tax.legal_entity, tax.voucher, tax.line_number))
    assert [tuple(row) for row in held_tax] == TAX_ROWS
    vendor = fin.vendor_transactions.c
    held_vendor = system.rows(FINANCE, select(
        vendor.legal_entity, vendor.voucher, vendor.vendor_account, vendor.worker, vendor.report_id, vendor.amount, vendor.currency, vendor.date,
    ).order_by(vendor.legal_entity, vendor.voucher))
    assert [tuple(row)[:-1] for row in held_vendor] == VENDOR_ROWS
    assert {row.date for row in held_vendor} <= posting_days
    reports = fin.expense_reports.c
    assert sorted(system.rows(FINANCE, select(reports.report_id, reports.status, reports.voucher))) == [
        ("DE-1", "posted", "EXP-DE-1"), ("US-1", "posted", "EXP-US-1"), ("US-2", "posted", "EXP-US-2"),
    ]


def then_dataverse_holds_exactly(system: System) -> None:
    e = dv.expenses.c
    held = system.rows(DATAVERSE, select(
        e.expense_id, e.legal_entity, e.report_id, e.line_number, e.project_id, e.expense_category, e.worker, e.date,
        e.amount, e.currency, e.project_cost, e.accounting_currency, e.project_cost_accounting, e.exchange_rate,
        e.voucher, e.approval_status,
    ))
    assert {row[0]: tuple(row[1:-1]) for row in held} == EXPENSES
    assert {row.approval_status for row in held} == {"approved"}
    jobs = dv.system_jobs.c
    assert sorted(system.rows(DATAVERSE, select(jobs.expense_id, jobs.status, jobs.error))) == [
        (expense_id, "succeeded", None) for expense_id in sorted(EXPENSES)
    ]
    a = dv.actuals.c
    actuals = system.rows(DATAVERSE, select(
        a.actual_id, a.legal_entity, a.expense_id, a.project_id, a.expense_category, a.transaction_classification,
        a.transaction_type, a.date, a.amount, a.currency, a.accounting_amount, a.accounting_currency, a.exchange_rate,
        a.skip_sync, a.posting_status, a.voucher, a.posted_on,
    ))
    assert {row[0]: tuple(row[1:13]) for row in actuals} == expected_actuals()
    assert {(row.skip_sync, row.posting_status) for row in actuals} == {(False, "posted")}
    # The posting result that came back is the voucher of the integration journal that posted the actual
    pt = fin.project_transactions.c
    journal_voucher = dict(system.rows(FINANCE, select(pt.actual_id, pt.voucher)))
    assert {row.actual_id: row.voucher for row in actuals} == journal_voucher
    assert all(voucher.startswith("PIJ-") for voucher in journal_voucher.values())
    assert all(row.posted_on is not None for row in actuals)


def then_the_project_subledger_holds_exactly(system: System) -> None:
    pt = fin.project_transactions.c
    held = system.rows(FINANCE, select(
        pt.actual_id, pt.kind, pt.legal_entity, pt.project_id, pt.expense_category, pt.date, pt.amount, pt.currency,
        pt.accounting_amount, pt.accounting_currency,
    ))
    assert {(row[0], row[1]): tuple(row[2:]) for row in held} == expected_project_transactions()
    journals, lines = fin.integration_journals.c, fin.integration_journal_lines.c
    assert {row.status for row in system.rows(FINANCE, select(journals.status))} == {"posted"}
    per_company = dict(system.rows(FINANCE, select(journals.legal_entity, func.sum(journals.line_count)).group_by(journals.legal_entity)))
    assert per_company == {"USPM": 8, "DEMF": 3}  # USPM: 4 cost + 4 unbilled sales; DEMF: 3 cost
    accounts = system.rows(FINANCE, select(lines.actual_id, lines.account, lines.offset_account))
    assert {row.actual_id: (row.account, row.offset_account) for row in accounts} == {
        actual_id: (
            None if kind == UNBILLED_SALES else TRAVEL_COST if category == "AIRFARE" else PROJECT_COST,
            INTEGRATION,
        )
        for actual_id, (_, _, _, category, _, kind, *_) in expected_actuals().items()
    }


#: How many rows each table holds when everything happened exactly once.
ROW_COUNTS = {
    (FINANCE, fin.expense_reports): 3,
    (FINANCE, fin.expense_lines): 9,
    (FINANCE, fin.ledger_entries): 6 + 3 + 8 + 2 * 7,  # the three expense vouchers, two lines per cost actual
    (FINANCE, fin.tax_transactions): 6,
    (FINANCE, fin.vendor_transactions): 3,
    (FINANCE, fin.actuals_staging): 11,
    (FINANCE, fin.integration_journal_lines): 11,
    (FINANCE, fin.project_transactions): 11,
    (FINANCE, fin.projects): 2,
    (FINANCE, fin.expense_categories): 5,
    (DATAVERSE, dv.expenses): 7,
    (DATAVERSE, dv.system_jobs): 7,
    (DATAVERSE, dv.actuals): 11,
    (DATAVERSE, dv.projects): 2,
}


def then_nothing_is_doubled(system: System) -> None:
    held = {f"{side}.{table.name}": system.count(side, table) for side, table in ROW_COUNTS}
    assert held == {f"{side}.{table.name}": count for (side, table), count in ROW_COUNTS.items()}


def then_the_books_are_right_to_the_cent(system: System, report: dict[str, CompanyReconciliation], posting_days: set[dt.date]) -> None:
    then_every_company_reconciles(report)
    then_the_ledger_holds_exactly(system)
    then_the_subledgers_hold_exactly(system, posting_days)
    then_dataverse_holds_exactly(system)
    then_the_project_subledger_holds_exactly(system)
    then_nothing_is_doubled(system)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# -- the test ------------------------------------------------------------------------------------


def test_posted_expense_reports_reach_project_cost_to_the_cent_in_both_companies(flow: System) -> None:
    # Given the demo set-up, expense categories and projects, and three approved reports
    given_the_demo_setup(flow)
    when_the_reports_are_created_submitted_and_approved(flow)

    # When the reports are posted
    first_day = today()
    when_the_reports_are_posted(flow)

    # Then, once the pipeline has done its work, both sides agree for both companies
    report = wait_until_reconciled(flow)
    then_the_books_are_right_to_the_cent(flow, report, {first_day, today()})
