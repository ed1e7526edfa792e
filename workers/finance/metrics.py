"""What finance shows Prometheus: the expense integration account balance of each legal entity.

Posted expense reports debit the account; posting the integration journal clears it. Once the
pipeline is idle it holds zero, so a balance that stays above zero is project cost stuck on its
way (see ``dualwrite trace`` and ``dualwrite reconcile``). Prometheus values are floats: the exact
Decimal figure is the one ``dualwrite reconcile`` prints.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, and_, func, select

from shared.metrics import Reading, SideGauge
from workers.finance.tables import ledger_entries, legal_entities


def integration_account_balances(connection: Connection) -> Iterator[Reading]:
    """(legal entity, account, currency) -> balance of the company's expense integration account."""
    company, ledger = legal_entities.c, ledger_entries.c
    query = (
        select(company.legal_entity, company.expense_integration_account, company.accounting_currency, func.sum(ledger.amount))
        .select_from(
            legal_entities.outerjoin(
                ledger_entries,
                and_(ledger.legal_entity == company.legal_entity, ledger.account == company.expense_integration_account),
            )
        )
        .group_by(company.legal_entity, company.expense_integration_account, company.accounting_currency)
        .order_by(company.legal_entity)
    )
    for legal_entity, account, currency, balance in connection.execute(query):
        yield (legal_entity, account, currency), float(balance or 0)


EXPENSE_INTEGRATION_BALANCE = SideGauge(
    name="dualwrite_expense_integration_balance",
    documentation="Balance of the expense integration account per legal entity, in its accounting currency "
    "(zero once every posted expense has gone through the integration journal)",
    labels=("legal_entity", "account", "currency"),
    read=integration_account_balances,
)
