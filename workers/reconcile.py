"""The invariant an operator checks: both sides agree, to the cent, for every legal entity.

Once the pipeline is idle, for every legal entity: the expense integration account balances to
zero, the project cost accounts hold exactly the cost actuals, every voucher balances, and each
posted project expense line has one expense record, one cost actual, one integration journal cost
line and one project cost transaction. This is an operator tool: it reads the finance and the
Dataverse databases side by side, which no worker ever does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from contracts.fields import TransactionType
from shared.side_database import SideDatabase
from workers.dataverse import tables as dv
from workers.finance import tables as fin
from workers.finance.domain.ledger import ZERO
from workers.finance.store.reference import all_legal_entities, company_setup


@dataclass
class CompanyReconciliation:
    legal_entity: str
    accounting_currency: str
    expense_integration_balance: Decimal
    project_cost_balance: Decimal
    cost_actuals_total: Decimal
    unbalanced_vouchers: dict[str, Decimal]
    counts: dict[str, int]
    pending: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def reconcile(finance: SideDatabase, dataverse: SideDatabase) -> list[CompanyReconciliation]:
    with finance.engine.connect() as f, dataverse.engine.connect() as d:
        return [_company(f, d, legal_entity) for legal_entity in all_legal_entities(f)]


def _sum(connection: Connection, column: Any, *where: Any) -> Decimal:
    return connection.scalar(select(func.coalesce(func.sum(column), 0)).where(*where)) or ZERO


def _count(connection: Connection, table: Any, *where: Any) -> int:
    return connection.scalar(select(func.count()).select_from(table).where(*where)) or 0


def _company(f: Connection, d: Connection, legal_entity: str) -> CompanyReconciliation:
    setup = company_setup(f, legal_entity)
    company = setup.company
    ledger = fin.ledger_entries.c
    integration = Decimal(_sum(f, ledger.amount, ledger.legal_entity == legal_entity, ledger.account == company.expense_integration_account))
    project_cost = Decimal(_sum(f, ledger.amount, ledger.legal_entity == legal_entity, ledger.account.in_(sorted(setup.project_cost_accounts()))))
    cost = int(TransactionType.COST)
    actuals_total = Decimal(_sum(d, dv.actuals.c.accounting_amount, dv.actuals.c.legal_entity == legal_entity, dv.actuals.c.transaction_type == cost))
    unbalanced = {
        row.voucher: Decimal(row.total)
        for row in f.execute(
            select(ledger.voucher, func.sum(ledger.amount).label("total"))
            .where(ledger.legal_entity == legal_entity)
            .group_by(ledger.voucher)
            .having(func.sum(ledger.amount) != 0)
        )
    }
    lines, reports = fin.expense_lines.c, fin.expense_reports.c
    counts = {
        "posted_project_expense_lines": f.scalar(
            select(func.count())
            .select_from(fin.expense_lines.join(fin.expense_reports, (lines.legal_entity == reports.legal_entity) & (lines.report_id == reports.report_id)))
            .where(lines.legal_entity == legal_entity, lines.project_id.is_not(None), reports.status == "posted")
        ) or 0,
        "dataverse_expense_records": _count(d, dv.expenses, dv.expenses.c.legal_entity == legal_entity),
        "cost_actuals": _count(d, dv.actuals, dv.actuals.c.legal_entity == legal_entity, dv.actuals.c.transaction_type == cost),
        "integration_journal_cost_lines": _count(
            f, fin.integration_journal_lines, fin.integration_journal_lines.c.legal_entity == legal_entity,
            fin.integration_journal_lines.c.transaction_type == cost,
        ),
        "project_cost_transactions": _count(
            f, fin.project_transactions, fin.project_transactions.c.legal_entity == legal_entity, fin.project_transactions.c.kind == "cost"
        ),
    }
    pending = {
        "staged_actuals": _count(f, fin.actuals_staging, fin.actuals_staging.c.legal_entity == legal_entity, fin.actuals_staging.c.status == "staged"),
        "open_journals": _count(f, fin.integration_journals, fin.integration_journals.c.legal_entity == legal_entity, fin.integration_journals.c.status == "open"),
    }
    result = CompanyReconciliation(
        legal_entity, company.accounting_currency, integration, project_cost, actuals_total, unbalanced, counts, pending
    )
    result.problems = _problems(result)
    return result


def _problems(r: CompanyReconciliation) -> list[str]:
    problems = []
    if r.expense_integration_balance != ZERO:
        problems.append(f"expense integration account holds {r.expense_integration_balance} {r.accounting_currency}, not 0")
    if r.project_cost_balance != r.cost_actuals_total:
        problems.append(f"project cost {r.project_cost_balance} differs from cost actuals {r.cost_actuals_total}")
    if r.unbalanced_vouchers:
        problems.append(f"{len(r.unbalanced_vouchers)} voucher(s) do not balance")
    if len(set(r.counts.values())) > 1:
        problems.append("counts differ: " + ", ".join(f"{k}={v}" for k, v in r.counts.items()))
    return problems
