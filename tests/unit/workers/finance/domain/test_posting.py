"""Posting rules of expense reports, checked against amounts worked out by hand.

Each expectation is written out with its arithmetic; none is computed by the code under test.
Line amounts include the sales tax: tax = amount x rate / (1 + rate).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.errors import BusinessRuleViolation, NotYet
from tests.unit.workers.finance.domain.companies import (
    DE_TAX,
    DEMF,
    INTEGRATION,
    ORDINARY,
    PAYABLES,
    POSTED_ON,
    RATES,
    US_TAX,
    USPM,
    line,
    report,
)
from workers.finance.domain.expense_reports import ReportStatus
from workers.finance.domain.ledger import is_balanced
from workers.finance.domain.posting import post_expense_report
from workers.finance.domain.reference import ExchangeRates

D = Decimal


def ledger_of(posting) -> list[tuple[str, Decimal, Decimal, str]]:  # noqa: ANN001
    """(account, accounting amount, transaction amount, transaction currency) per voucher line."""
    return [(entry.account, entry.amount, entry.transaction_amount, entry.transaction_currency) for entry in posting.ledger]


def test_non_recoverable_tax_stays_in_project_cost_on_the_integration_account():
    # Given a US hotel bill of 345.00 USD with US-HOTEL (15 %, nothing recoverable) on a project
    posting = post_expense_report(report(line(1, "345.00", tax="US-HOTEL")), USPM, RATES, POSTED_ON)

    # Then tax    = 345.00 x 0.15 / 1.15 = 45.00
    #      recoverable = 45.00 x 0 = 0.00
    #      project cost = 345.00 - 0.00 = 345.00 (net 300.00 + non-recoverable tax 45.00)
    [posted] = posting.lines
    assert (posted.tax_amount, posted.recoverable_tax, posted.project_cost) == (D("45.00"), D("0.00"), D("345.00"))
    assert (posted.exchange_rate, posted.amount_accounting, posted.project_cost_accounting) == (D(1), D("345.00"), D("345.00"))
    # And the voucher debits the expense integration account (not 600100) and credits the employee
    assert posting.voucher == "EXP-R-1"
    assert ledger_of(posting) == [
        (INTEGRATION, D("345.00"), D("345.00"), "USD"),
        (PAYABLES, D("-345.00"), D("-345.00"), "USD"),
    ]
    # And the tax subledger records the tax, none of it recoverable
    [tax] = posting.tax
    assert (tax.tax_code, tax.currency, tax.base_amount, tax.tax_amount) == ("US-HOTEL", "USD", D("300.00"), D("45.00"))
    assert (tax.recoverable_amount, tax.non_recoverable_amount, tax.recoverable_accounting) == (D("0.00"), D("45.00"), D("0.00"))


def test_fully_recoverable_tax_goes_to_the_tax_account_and_project_cost_is_net():
    # Given a German hotel bill of 107.00 EUR with DE-VAT7 (7 %, all recoverable)
    posting = post_expense_report(
        report(line(1, "107.00", "EUR", project="P-DE", tax="DE-VAT7", legal_entity="DEMF"), worker="lena", legal_entity="DEMF"),
        DEMF, RATES, POSTED_ON,
    )

    # Then tax = 107.00 x 0.07 / 1.07 = 7.00, recoverable = 7.00 x 1 = 7.00, cost = 107.00 - 7.00 = 100.00
    [posted] = posting.lines
    assert (posted.tax_amount, posted.recoverable_tax, posted.project_cost) == (D("7.00"), D("7.00"), D("100.00"))
    assert ledger_of(posting) == [
        (INTEGRATION, D("100.00"), D("100.00"), "EUR"),
        (DE_TAX, D("7.00"), D("7.00"), "EUR"),
        (PAYABLES, D("-107.00"), D("-107.00"), "EUR"),
    ]
    [tax] = posting.tax
    assert (tax.base_amount, tax.tax_amount, tax.recoverable_amount, tax.non_recoverable_amount) == (
        D("100.00"), D("7.00"), D("7.00"), D("0.00"),
    )


def test_partly_recoverable_tax_splits_between_tax_account_and_project_cost():
    # Given an entertainment bill of 119.00 EUR with DE-ENT19 (19 %, 70 % recoverable)
    posting = post_expense_report(
        report(line(1, "119.00", "EUR", project="P-DE", tax="DE-ENT19", legal_entity="DEMF"), worker="lena", legal_entity="DEMF"),
        DEMF, RATES, POSTED_ON,
    )

    # Then tax         = 119.00 x 0.19 / 1.19 = 19.00
    #      recoverable = 19.00 x 0.70 = 13.30
    #      cost        = 119.00 - 13.30 = 105.70 (net 100.00 + non-recoverable 5.70)
    [posted] = posting.lines
    assert (posted.tax_amount, posted.recoverable_tax, posted.project_cost) == (D("19.00"), D("13.30"), D("105.70"))
    assert ledger_of(posting) == [
        (INTEGRATION, D("105.70"), D("105.70"), "EUR"),
        (DE_TAX, D("13.30"), D("13.30"), "EUR"),
        (PAYABLES, D("-119.00"), D("-119.00"), "EUR"),
    ]
    [tax] = posting.tax
    assert (tax.base_amount, tax.recoverable_amount, tax.non_recoverable_amount, tax.recoverable_accounting) == (
        D("100.00"), D("13.30"), D("5.70"), D("13.30"),
    )


def test_a_foreign_currency_line_is_converted_at_the_rate_of_its_date():
    # Given 500.00 EUR spent on 2026-11-03 by a USD company; EUR->USD is 1.0850 from 2026-01-01
    # and 1.0920 from 2026-11-01, so the rate of the line date is 1.0920
    posting = post_expense_report(report(line(1, "500.00", "EUR", category="AIRFARE")), USPM, RATES, POSTED_ON)

    # Then 500.00 x 1.0920 = 546.00 USD, with the transaction amount kept in EUR
    [posted] = posting.lines
    assert (posted.exchange_rate, posted.project_cost, posted.amount_accounting, posted.project_cost_accounting) == (
        D("1.0920"), D("500.00"), D("546.00"), D("546.00"),
    )
    assert ledger_of(posting) == [
        (INTEGRATION, D("546.00"), D("500.00"), "EUR"),
        (PAYABLES, D("-546.00"), D("-546.00"), "USD"),
    ]
    assert all(entry.currency == "USD" for entry in posting.ledger)
    assert posting.tax == ()


def test_a_line_dated_before_a_rate_change_uses_the_older_rate():
    # 500.00 EUR on 2026-10-31: 1.0850 applies, 500.00 x 1.0850 = 542.50 USD
    posting = post_expense_report(
        report(line(1, "500.00", "EUR", date=dt.date(2026, 10, 31))), USPM, RATES, POSTED_ON
    )
    assert posting.lines[0].amount_accounting == D("542.50")


def test_a_line_on_no_project_goes_to_the_ordinary_expense_account_not_the_integration_account():
    # Given a meal of 84.00 USD on no project, and a 345.00 USD hotel on a project, in one report
    posting = post_expense_report(
        report(line(1, "345.00", tax="US-HOTEL"), line(2, "84.00", project=None, category="MEALS")), USPM, RATES, POSTED_ON
    )

    # Then the meal is debited to 606100, the hotel to 189900, and the employee is owed 345.00 + 84.00 = 429.00
    assert ledger_of(posting) == [
        (INTEGRATION, D("345.00"), D("345.00"), "USD"),
        (ORDINARY, D("84.00"), D("84.00"), "USD"),
        (PAYABLES, D("-429.00"), D("-429.00"), "USD"),
    ]
    meal = posting.ledger[1]
    assert (meal.project_id, meal.expense_category, meal.source_id) == (None, "MEALS", "R-1/2")


def test_the_accounting_currency_residue_lands_in_project_cost_and_the_voucher_balances_to_the_cent():
    # Given 10.21 CAD with CA-GST (5 %, all recoverable), CAD->USD 0.73
    posting = post_expense_report(report(line(1, "10.21", "CAD", tax="CA-GST")), USPM, RATES, POSTED_ON)

    # Transaction currency: tax = 10.21 x 0.05 / 1.05 = 0.48619.. -> 0.49; recoverable 0.49; cost 10.21 - 0.49 = 9.72 CAD
    # Accounting currency:  amount      10.21 x 0.73 = 7.4533 -> 7.45 USD owed to the employee
    #                       recoverable  0.49 x 0.73 = 0.3577 -> 0.36 USD
    #                       cost converted on its own would be 9.72 x 0.73 = 7.0956 -> 7.10, and
    #                       7.10 + 0.36 = 7.46 is a cent more than the 7.45 owed.
    # The rule: project cost (acc) = 7.45 - 0.36 = 7.09; the one-cent residue is absorbed by project cost.
    [posted] = posting.lines
    assert (posted.tax_amount, posted.recoverable_tax, posted.project_cost) == (D("0.49"), D("0.49"), D("9.72"))
    assert (posted.amount_accounting, posted.recoverable_tax_accounting, posted.project_cost_accounting) == (
        D("7.45"), D("0.36"), D("7.09"),
    )
    assert ledger_of(posting) == [
        (INTEGRATION, D("7.09"), D("9.72"), "CAD"),
        (US_TAX, D("0.36"), D("0.49"), "CAD"),
        (PAYABLES, D("-7.45"), D("-7.45"), "USD"),
    ]
    # 7.09 + 0.36 - 7.45 = 0.00
    assert is_balanced(list(posting.ledger))
    assert posting.vendor.amount == D("7.45")


def test_the_vendor_entry_owes_the_employee_every_line_in_accounting_currency():
    # Given a report of alice with four lines:
    #   1. 345.00 USD hotel, US-HOTEL          -> 345.00 USD
    #   2. 500.00 EUR airfare at 1.0920        -> 546.00 USD
    #   3.  84.00 USD meal, no project         ->  84.00 USD
    #   4. 105.00 CAD hotel, CA-GST, at 0.73   -> 105.00 x 0.73 = 76.65 USD
    #      (tax 105.00 x 0.05 / 1.05 = 5.00 CAD, recoverable 5.00 x 0.73 = 3.65 USD, cost 76.65 - 3.65 = 73.00 USD)
    posting = post_expense_report(
        report(
            line(1, "345.00", tax="US-HOTEL"),
            line(2, "500.00", "EUR", category="AIRFARE"),
            line(3, "84.00", project=None, category="MEALS"),
            line(4, "105.00", "CAD", tax="CA-GST"),
        ),
        USPM, RATES, POSTED_ON,
    )

    # Then one vendor entry for V-ALICE: 345.00 + 546.00 + 84.00 + 76.65 = 1,051.65 USD
    vendor = posting.vendor
    assert (vendor.vendor_account, vendor.worker, vendor.report_id, vendor.voucher) == ("V-ALICE", "alice", "R-1", "EXP-R-1")
    assert (vendor.amount, vendor.currency, vendor.date) == (D("1051.65"), "USD", POSTED_ON)
    # And the voucher, one line per cost and per recoverable tax, balances against that credit
    assert ledger_of(posting) == [
        (INTEGRATION, D("345.00"), D("345.00"), "USD"),
        (INTEGRATION, D("546.00"), D("500.00"), "EUR"),
        (ORDINARY, D("84.00"), D("84.00"), "USD"),
        (INTEGRATION, D("73.00"), D("100.00"), "CAD"),
        (US_TAX, D("3.65"), D("5.00"), "CAD"),
        (PAYABLES, D("-1051.65"), D("-1051.65"), "USD"),
    ]
    assert [entry.line_number for entry in posting.ledger] == [1, 2, 3, 4, 5, 6]
    assert {entry.date for entry in posting.ledger} == {POSTED_ON}
    assert is_balanced(list(posting.ledger))
    # And two tax entries: lines 1 and 4
    assert [(t.line_number, t.tax_code, t.tax_amount, t.recoverable_accounting) for t in posting.tax] == [
        (1, "US-HOTEL", D("45.00"), D("0.00")),
        (4, "CA-GST", D("5.00"), D("3.65")),
    ]


# -- refusals ------------------------------------------------------------------------------------


def test_a_missing_exchange_rate_names_the_pair_and_the_date():
    # GBP->USD is not in the rate table
    with pytest.raises(BusinessRuleViolation) as refused:
        post_expense_report(report(line(1, "80.00", "GBP"), line(2, "10.00")), USPM, RATES, POSTED_ON)
    assert "GBP->USD" in str(refused.value)
    assert "2026-11-03" in str(refused.value)
    assert "line 1" in str(refused.value)


def test_a_rate_valid_only_after_the_line_date_is_missing_too():
    rates = ExchangeRates([])
    with pytest.raises(BusinessRuleViolation, match=r"no exchange rate EUR->USD valid on 2026-11-03"):
        post_expense_report(report(line(1, "500.00", "EUR")), USPM, rates, POSTED_ON)


def test_a_posted_report_is_refused_for_good():
    with pytest.raises(BusinessRuleViolation, match="posted"):
        post_expense_report(report(line(1, "345.00"), status=ReportStatus.POSTED), USPM, RATES, POSTED_ON)


@pytest.mark.parametrize("status", [ReportStatus.DRAFT, ReportStatus.SUBMITTED])
def test_a_report_not_yet_approved_is_not_posted_yet(status):
    # NotYet is transient: the approval may still be on its way
    with pytest.raises(NotYet):
        post_expense_report(report(line(1, "345.00"), status=status), USPM, RATES, POSTED_ON)
