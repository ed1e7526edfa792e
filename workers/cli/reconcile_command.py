"""``dualwrite reconcile``: prove, per legal entity, that finance and Dataverse agree to the cent."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import OperationalError

from shared import migrations
from shared.settings import Settings
from shared.side import open_database
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("reconcile", help="check that both sides agree, per legal entity")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.dataverse.bootstrap import SPEC as DATAVERSE
    from workers.finance.bootstrap import SPEC as FINANCE
    from workers.reconcile import reconcile

    finance, dataverse = open_database(FINANCE, settings), open_database(DATAVERSE, settings)
    try:
        migrations.upgrade(finance)
        migrations.upgrade(dataverse)
        companies = reconcile(finance, dataverse)
    except OperationalError as error:
        fail(f"database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    finally:
        finance.dispose()
        dataverse.dispose()
    ok = bool(companies) and all(company.ok for company in companies)
    if args.json:
        print_json({"ok": ok, "legal_entities": [company.as_json() for company in companies]})
    else:
        print_report(companies, ok)
    return ExitCode.OK if ok else ExitCode.FAILED


def print_report(companies: list, ok: bool) -> None:
    print_table(
        ["COMPANY", "CUR", "INTEGRATION ACCT", "PROJECT COST", "COST ACTUALS", "LINES", "EXPENSES", "ACTUALS", "JOURNAL", "PROJ TX", "OK"],
        [
            [
                c.legal_entity, c.accounting_currency, c.expense_integration_balance, c.project_cost_balance,
                c.cost_actuals_total, *c.counts.values(), "yes" if c.ok else "NO",
            ]
            for c in companies
        ],
    )
    for company in companies:
        for problem in company.problems:
            print(f"{company.legal_entity}: {problem}")
    print("ok" if ok else "NOT RECONCILED")
