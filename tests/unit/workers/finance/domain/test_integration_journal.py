"""Import from staging and posting of the Project Operations Integration journal, on plain objects."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from contracts.fields import TransactionType
from tests.unit.workers.finance.domain.companies import (
    DEMF,
    INTEGRATION,
    PAYABLES,
    POSTED_ON,
    PROJECT_COST,
    RATES,
    SETUPS,
    TRAVEL_COST,
    USPM,
    line,
    report,
)
from workers.finance.domain.integration_journal import (
    Period,
    StagedActual,
    build_journals,
    period_of,
    post_journal,
)
from workers.finance.domain.ledger import ZERO, is_balanced
from workers.finance.domain.posting import post_expense_report

D = Decimal
COST, SALES = TransactionType.COST, TransactionType.UNBILLED_SALES


def actual(
    actual_id: str,
    accounting_amount: str,
    *,
    legal_entity: str = "USPM",
    date: dt.date = dt.date(2026, 11, 3),
    kind: TransactionType = COST,
    category: str = "HOTEL",
    amount: str | None = None,
    currency: str | None = None,
    rate: str = "1",
) -> StagedActual:
    accounting_currency = "USD" if legal_entity == "USPM" else "EUR"
    return StagedActual(
        actual_id=actual_id,
        legal_entity=legal_entity,
        expense_id=actual_id.rsplit("-", 1)[0],
        project_id="P-US" if legal_entity == "USPM" else "P-DE",
        expense_category=category,
        transaction_type=kind,
        date=date,
        amount=D(amount or accounting_amount),
        currency=currency or accounting_currency,
        accounting_amount=D(accounting_amount),
        accounting_currency=accounting_currency,
        exchange_rate=D(rate),
    )


def journal_ids():  # noqa: ANN201
    """Deterministic journal ids: J1, J2, ..."""
    counter = itertools.count(1)
    return lambda legal_entity, period: f"J{next(counter)}"


def build(actuals, grouping=Period.MONTH, max_lines=200):  # noqa: ANN001, ANN201
    return build_journals(actuals, SETUPS, grouping=grouping, max_lines=max_lines, new_journal_id=journal_ids())


# -- grouping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grouping", "period"),
    [(Period.DAY, "2026-11-03"), (Period.MONTH, "2026-11"), (Period.YEAR, "2026"), (Period.ALL, "all")],
)
def test_the_period_of_a_date(grouping, period):
    assert period_of(dt.date(2026, 11, 3), grouping) == period


DATES = [dt.date(2026, 11, 3), dt.date(2026, 11, 3), dt.date(2026, 11, 4), dt.date(2026, 12, 1), dt.date(2027, 1, 5)]


@pytest.mark.parametrize(
    ("grouping", "expected"),
    [
        # five actuals of one company on 3 Nov (two), 4 Nov, 1 Dec 2026 and 5 Jan 2027
        (Period.DAY, [("2026-11-03", 2), ("2026-11-04", 1), ("2026-12-01", 1), ("2027-01-05", 1)]),
        (Period.MONTH, [("2026-11", 3), ("2026-12", 1), ("2027-01", 1)]),
        (Period.YEAR, [("2026", 4), ("2027", 1)]),
        (Period.ALL, [("all", 5)]),
    ],
)
def test_journals_group_actuals_by_period(grouping, expected):
    actuals = [actual(f"E{i}-COST", "10.00", date=date) for i, date in enumerate(DATES)]

    journals = build(actuals, grouping)

    assert [(j.period, len(j.lines)) for j in journals] == expected
    assert {j.legal_entity for j in journals} == {"USPM"}


def test_journals_never_mix_legal_entities():
    journals = build([actual("U1-COST", "10.00"), actual("D1-COST", "10.00", legal_entity="DEMF")], Period.ALL)

    assert sorted((j.legal_entity, len(j.lines)) for j in journals) == [("DEMF", 1), ("USPM", 1)]
    demf = next(j for j in journals if j.legal_entity == "DEMF")
    assert demf.lines[0].offset_account == DEMF.company.expense_integration_account


def test_a_journal_holds_at_most_max_lines_lines():
    # 7 actuals with max 3 lines per journal: 3 + 3 + 1
    actuals = [actual(f"E{i}-COST", "1.00") for i in range(7)]

    journals = build(actuals, max_lines=3)

    assert [len(j.lines) for j in journals] == [3, 3, 1]
    assert [j.journal_id for j in journals] == ["J1", "J2", "J3"]
    assert [[line.line_number for line in j.lines] for j in journals] == [[1, 2, 3], [1, 2, 3], [1]]
    # one line per actual, none lost, none twice
    assert sorted(line.actual.actual_id for j in journals for line in j.lines) == sorted(a.actual_id for a in actuals)


def test_cost_lines_go_to_the_project_cost_account_or_the_category_override_and_sales_lines_to_no_account():
    journals = build(
        [
            actual("E1-COST", "345.00", category="HOTEL"),
            actual("E2-COST", "546.00", category="AIRFARE", amount="500.00", currency="EUR", rate="1.0920"),
            actual("E2-SALES", "546.00", category="AIRFARE", kind=SALES, amount="500.00", currency="EUR", rate="1.0920"),
        ]
    )

    [journal] = journals
    accounts = {line.actual.actual_id: (line.account, line.offset_account) for line in journal.lines}
    assert accounts == {
        "E1-COST": (PROJECT_COST, INTEGRATION),
        "E2-COST": (TRAVEL_COST, INTEGRATION),  # USPM sends AIRFARE to 600200
        "E2-SALES": (None, INTEGRATION),
    }


# -- posting -------------------------------------------------------------------------------------


def test_posting_the_journal_clears_the_integration_account_exactly():
    # Given alice's report posted in USPM (see test_posting):
    #   line 1: 345.00 USD hotel          -> 345.00 on 189900
    #   line 2: 500.00 EUR airfare x 1.0920 -> 546.00 on 189900
    #   line 4: 10.21 CAD hotel, CA-GST    -> 7.09 on 189900 (the residue case)
    expense = post_expense_report(
        report(
            line(1, "345.00", tax="US-HOTEL"),
            line(2, "500.00", "EUR", category="AIRFARE"),
            line(4, "10.21", "CAD", tax="CA-GST"),
        ),
        USPM, RATES, POSTED_ON,
    )
    # and their actuals, as Dataverse creates them for a billable project: cost and unbilled sales at cost
    actuals = [
        actual(f"R-1-{p.line.line_number}-{suffix}", str(p.project_cost_accounting), category=p.line.expense_category,
               kind=kind, amount=str(p.project_cost), currency=p.line.currency, rate=str(p.exchange_rate))
        for p in expense.lines
        for suffix, kind in (("COST", COST), ("SALES", SALES))
    ]
    [journal] = build(actuals)

    posting = post_journal(journal, POSTED_ON)

    # Then the journal voucher moves 345.00 + 7.09 = 352.09 to 600100 and 546.00 to 600200,
    # and credits 189900 by 352.09 + 546.00 = 898.09
    def balance(ledger, account):  # noqa: ANN001, ANN202
        return sum((entry.amount for entry in ledger if entry.account == account), ZERO)

    assert posting.voucher == "PIJ-J1"
    assert balance(posting.ledger, PROJECT_COST) == D("352.09")
    assert balance(posting.ledger, TRAVEL_COST) == D("546.00")
    assert balance(posting.ledger, INTEGRATION) == D("-898.09")
    assert is_balanced(list(posting.ledger))
    # And together with the expense voucher, 189900 is back at exactly 0.00
    everything = [*expense.ledger, *posting.ledger]
    assert balance(expense.ledger, INTEGRATION) == D("898.09")
    assert balance(everything, INTEGRATION) == ZERO
    assert balance(everything, PAYABLES) == D("-898.45")  # 345.00 + 546.00 + 7.45 owed to alice
    # Sales lines move no ledger amount: two ledger lines per cost actual, none per sales actual
    assert len(posting.ledger) == 2 * 3


def test_posting_the_journal_creates_cost_and_unbilled_revenue_project_transactions():
    [journal] = build(
        [
            actual("E2-COST", "546.00", category="AIRFARE", amount="500.00", currency="EUR", rate="1.0920"),
            actual("E2-SALES", "546.00", category="AIRFARE", kind=SALES, amount="500.00", currency="EUR", rate="1.0920"),
        ]
    )

    posting = post_journal(journal, POSTED_ON)

    assert [
        (t.actual_id, t.kind, t.project_id, t.expense_category, t.amount, t.currency, t.accounting_amount, t.accounting_currency, t.voucher)
        for t in posting.project_transactions
    ] == [
        ("E2-COST", "cost", "P-US", "AIRFARE", D("500.00"), "EUR", D("546.00"), "USD", "PIJ-J1"),
        ("E2-SALES", "unbilled_revenue", "P-US", "AIRFARE", D("500.00"), "EUR", D("546.00"), "USD", "PIJ-J1"),
    ]
    # And the result of each actual goes back to Dataverse: voucher, accounting amount, exchange rate
    assert [(r.actual_id, r.voucher, r.posted_on, r.accounting_amount, r.exchange_rate) for r in posting.results] == [
        ("E2-COST", "PIJ-J1", POSTED_ON, D("546.00"), D("1.0920")),
        ("E2-SALES", "PIJ-J1", POSTED_ON, D("546.00"), D("1.0920")),
    ]
    # Cost debits 600200 in USD with the EUR transaction amount alongside
    assert [(e.account, e.amount, e.transaction_amount, e.transaction_currency) for e in posting.ledger] == [
        (TRAVEL_COST, D("546.00"), D("500.00"), "EUR"),
        (INTEGRATION, D("-546.00"), D("-500.00"), "EUR"),
    ]
