"""The bench's generated load: valid contract payloads, every line on a project of its company."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from workers.bench import load
from workers.bench.prepare import post_report_messages


@pytest.fixture
def companies() -> list[load.Company]:
    return load.companies(3)


@pytest.fixture
def projects(companies: list[load.Company]) -> dict[str, list[load.BenchProject]]:
    return {c.legal_entity: load.projects(c, 4) for c in companies}


def test_companies_have_distinct_accounting_currencies(companies: list[load.Company]) -> None:
    assert [c.legal_entity for c in companies] == ["USPM", "DEMF", "GBPS"]
    assert len({c.currency for c in companies}) == 3


@pytest.mark.parametrize("count", [0, len(load.COMPANIES) + 1])
def test_company_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(ValueError):
        load.companies(count)


def test_setup_document_validates_and_rates_cover_every_line_currency(companies, projects) -> None:
    document = load.setup_document(companies)
    reports = load.generate_reports(companies, projects, 30, 10, prefix="T")

    pairs = {(r.from_currency, r.to_currency) for r in document.exchange_rates}
    accounting = {c.legal_entity: c.currency for c in companies}
    for report in reports:
        for line in report.lines:
            if line["currency"] != accounting[report.legal_entity]:
                assert (line["currency"], accounting[report.legal_entity]) in pairs
    assert all(r.valid_from <= dt.date.fromisoformat(line["date"]) for r in document.exchange_rates for rep in reports for line in rep.lines)
    assert [e.accounting_currency for e in document.legal_entities] == ["USD", "EUR", "GBP"]


def test_one_company_still_gets_a_foreign_currency() -> None:
    only = load.companies(1)
    document = load.setup_document(only)

    assert load.foreign_currency(only[0], only) == "EUR"
    assert {(r.from_currency, r.to_currency) for r in document.exchange_rates} == {("EUR", "USD"), ("USD", "EUR")}


def test_cross_rates_are_consistent() -> None:
    assert load.exchange_rate("EUR", "USD") == Decimal("1.08000000")
    assert load.exchange_rate("USD", "EUR") == Decimal("0.92592593")


def test_projects_mix_billable_and_not(companies) -> None:
    made = load.projects(companies[0], 4)

    assert [p.project_id for p in made] == ["PRJ-USPM-001", "PRJ-USPM-002", "PRJ-USPM-003", "PRJ-USPM-004"]
    assert [p.billable for p in made] == [True, False, True, False]
    assert len({p.project_manager for p in made}) == 4


def test_reports_put_every_line_on_a_project_of_their_own_company(companies, projects) -> None:
    reports = load.generate_reports(companies, projects, 30, 25, prefix="T")

    assert len(reports) == 30
    assert len({r.report_id for r in reports}) == 30
    assert [r.legal_entity for r in reports[:4]] == ["USPM", "DEMF", "GBPS", "USPM"]
    for report in reports:
        own = {p.project_id: p for p in projects[report.legal_entity]}
        assert [line["line_number"] for line in report.lines] == list(range(1, 26))
        assert all(line["project_id"] in own for line in report.lines)
        assert set(report.approvers) == {own[line["project_id"]].project_manager for line in report.lines}
        assert report.worker in {report_worker for report_worker in (c.worker(n) for c in companies for n in range(1, 7))}


def test_reports_mix_tax_codes_categories_and_currencies(companies, projects) -> None:
    lines = [line for r in load.generate_reports(companies, projects, 20, 25, prefix="T") for line in r.lines]

    assert {line.get("tax_code") for line in lines} == {None, "VAT-FULL", "VAT-HALF", "SALES"}
    assert {line["expense_category"] for line in lines} == {code for code, _, _ in load.CATEGORIES}
    assert len({line["currency"] for line in lines}) == 3
    assert all(Decimal("5.00") <= Decimal(line["amount"]) <= Decimal("600.00") for line in lines)


def test_reports_are_the_same_for_the_same_seed(companies, projects) -> None:
    first = load.generate_reports(companies, projects, 5, 5, prefix="T")
    again = load.generate_reports(companies, projects, 5, 5, prefix="T")
    light = load.generate_reports(companies, projects, 5, 5, prefix="L")

    assert first == again
    assert {r.report_id for r in light}.isdisjoint({r.report_id for r in first})


def test_generated_payloads_validate_against_their_contracts(registry, companies, projects) -> None:
    reports = load.generate_reports(companies, projects, 12, 25, prefix="T")

    registry.validate_payload("create_expense_reports", 1, {"rows": [r.create_row() for r in reports]})
    registry.validate_payload(
        "approve_expense_reports", 1, {"rows": [{"report_id": r.report_id, "approver": a} for r in reports for a in r.approvers]}
    )
    registry.validate_payload("create_transaction_categories", 1, {"rows": load.transaction_category_rows()})
    registry.validate_payload("enable_expense_on_shared_category", 1, {"rows": load.enable_expense_rows()})
    registry.validate_payload("create_expense_categories", 1, {"rows": load.expense_category_rows()})
    registry.validate_payload("create_projects", 1, {"rows": load.project_rows(projects["USPM"])})


def test_chunks() -> None:
    assert load.chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert load.chunks([], 3) == []
    with pytest.raises(ValueError):
        load.chunks([1], 0)


def test_reports_per_create_message_keeps_messages_near_500_lines() -> None:
    assert load.reports_per_create_message(25) == 20
    assert load.reports_per_create_message(1000) == 1


def test_report_of_expense() -> None:
    assert load.report_of_expense("T000012-25") == "T000012"
    assert load.report_of_expense("R-US-001-3") == "R-US-001"
    with pytest.raises(ValueError):
        load.report_of_expense("T000012")


def test_post_messages_group_reports_of_one_company(companies, projects) -> None:
    reports = load.generate_reports(companies, projects, 7, 1, prefix="T")

    singles = post_report_messages(reports, 1)
    grouped = post_report_messages(reports, 2)

    assert [len(group) for _, group in singles] == [1] * 7
    assert [(le, [r.report_id for r in group]) for le, group in grouped] == [
        ("USPM", ["T000001", "T000004"]),
        ("DEMF", ["T000002", "T000005"]),
        ("GBPS", ["T000003", "T000006"]),
        ("USPM", ["T000007"]),
    ]
