"""Steps 9-17 of the demo: expense reports from finance to project cost, to the cent.

Figures the steps check (amounts include sales tax; see workers/finance/domain/posting.py):

USPM (USD)  R-US-001 alice  1 PRJ-US-100 HOTEL    345.00 USD  US-HOTEL 15 %, not recoverable -> cost 345.00
                            2 PRJ-US-100 AIRFARE  500.00 EUR  x 1.0920                       -> cost 546.00
                            3 (no project) HOTEL   60.00 USD  -> 606100, stays in finance
            R-US-002 bob    1 PRJ-US-100 HOTEL    230.00 USD  US-HOTEL                       -> cost 230.00
DEMF (EUR)  R-DE-001 lena   1 PRJ-DE-200 HOTEL    107.00 EUR  DE-VAT7, recoverable 7.00      -> cost 100.00
                            2 PRJ-DE-200 RAIL      59.50 EUR  DE-VAT19, recoverable 9.50     -> cost  50.00
            R-DE-002 lena   1 PRJ-DE-200 HOTEL     53.50 EUR  DE-VAT7, recoverable 3.50      -> cost  50.00
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from contracts.envelope import Side
from contracts.fields import TransactionType
from shared.signatures import key_ring
from workers.dataverse import tables as dataverse
from workers.dataverse.job_retry import retry_jobs
from workers.demo.scenario import Scenario
from workers.finance import tables as finance
from workers.finance.bootstrap import import_policy
from workers.finance.expense_report_handlers import report_correlation
from workers.finance.integration import run_integration
from workers.finance.setup_document import read_setup_document
from workers.reconcile import CompanyReconciliation, reconcile
from workers.reference_data import DATAVERSE_COMPANIES, load_setup

SETUP_FILE = Path(__file__).resolve().parent.parent / "demo_data" / "setup.yaml"

REPORTS: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
    "R-US-001": ("USPM", "alice", [
        {"line_number": 1, "project_id": "PRJ-US-100", "expense_category": "HOTEL", "date": "2026-11-20",
         "amount": "345.00", "currency": "USD", "tax_code": "US-HOTEL", "description": "Hotel, 3 nights"},
        {"line_number": 2, "project_id": "PRJ-US-100", "expense_category": "AIRFARE", "date": "2026-11-20",
         "amount": "500.00", "currency": "EUR", "description": "Flight booked in Europe"},
        {"line_number": 3, "expense_category": "HOTEL", "date": "2026-11-21", "amount": "60.00", "currency": "USD",
         "description": "Training course stay, no project"},
    ]),
    "R-US-002": ("USPM", "bob", [
        {"line_number": 1, "project_id": "PRJ-US-100", "expense_category": "HOTEL", "date": "2026-11-22",
         "amount": "230.00", "currency": "USD", "tax_code": "US-HOTEL"},
    ]),
    "R-DE-001": ("DEMF", "lena", [
        {"line_number": 1, "project_id": "PRJ-DE-200", "expense_category": "HOTEL", "date": "2026-11-18",
         "amount": "107.00", "currency": "EUR", "tax_code": "DE-VAT7"},
        {"line_number": 2, "project_id": "PRJ-DE-200", "expense_category": "RAIL", "date": "2026-11-19",
         "amount": "59.50", "currency": "EUR", "tax_code": "DE-VAT19"},
    ]),
    "R-DE-002": ("DEMF", "lena", [
        {"line_number": 1, "project_id": "PRJ-DE-200", "expense_category": "HOTEL", "date": "2026-11-23",
         "amount": "53.50", "currency": "EUR", "tax_code": "DE-VAT7"},
    ]),
}

APPROVERS = {"R-US-001": ["maria", "carol"], "R-US-002": ["maria"], "R-DE-001": ["jonas"], "R-DE-002": ["jonas"]}


class ExpenseSteps(Scenario):
    """Expense reports through posting, automated approval, actuals, the integration journal."""

    reconciliation: list[CompanyReconciliation]

    def run_expense_steps(self) -> None:
        self.reports_created_and_submitted(["R-US-001", "R-US-002", "R-DE-001"])
        self.approval_refused()
        self.reports_approved(["R-US-001", "R-US-002", "R-DE-001"])
        self.reports_posted()
        self.automated_approval()
        self.import_and_post_journal("R-US-001", expected_lines=8)
        self.approval_fails_on_closed_project()
        self.retry_after_reopening()
        self.reconciled()

    # -- helpers --------------------------------------------------------------------------------

    def _lifecycle(self, contract: str, report_ids: list[str], row: dict[str, Any] | None = None) -> None:
        for report_id in report_ids:
            legal_entity = REPORTS[report_id][0]
            self._send(contract, {"rows": [{"report_id": report_id, **(row or {})}]}, report_correlation(legal_entity, report_id), legal_entity=legal_entity)

    def _statuses(self, report_ids: list[str]) -> dict[str, str]:
        table = finance.expense_reports
        rows = self._query(Side.FINANCE, select(table.c.report_id, table.c.status).where(table.c.report_id.in_(report_ids)))
        return {r.report_id: r.status for r in rows}

    def _balance(self, legal_entity: str, account: str) -> Decimal:
        ledger = finance.ledger_entries.c
        total = self._query(
            Side.FINANCE, select(func.coalesce(func.sum(ledger.amount), 0)).where(ledger.legal_entity == legal_entity, ledger.account == account)
        )[0][0]
        return Decimal(total).quantize(Decimal("0.01"))

    # -- steps ----------------------------------------------------------------------------------

    def finance_setup(self) -> None:
        """Finance's set-up, and the same companies in Dataverse: each side refuses a company it does not know."""
        counts = load_setup(read_setup_document(SETUP_FILE), {side: self._database(side).engine for side in self.runtime.sides})
        dataverse_companies = counts.pop(DATAVERSE_COMPANIES)

        def check() -> tuple[bool, str]:
            currencies = self._query(Side.FINANCE, select(finance.legal_entities.c.legal_entity, finance.legal_entities.c.accounting_currency).order_by(finance.legal_entities.c.legal_entity))
            in_dataverse = self._query(Side.DATAVERSE, select(dataverse.legal_entities.c.legal_entity).order_by(dataverse.legal_entities.c.legal_entity))
            ok = [tuple(r) for r in currencies] == [("DEMF", "EUR"), ("USPM", "USD")] and [r[0] for r in in_dataverse] == ["DEMF", "USPM"]
            return ok, (f"companies {', '.join(f'{le} in {cur}' for le, cur in currencies)}; "
                        + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
                        + f"; Dataverse: {dataverse_companies} companies ({', '.join(r[0] for r in in_dataverse)})")

        self._step("Finance and Dataverse load their companies (dualwrite setup workers/demo_data/setup.yaml)", "setup", check)

    def reports_created_and_submitted(self, report_ids: list[str]) -> None:
        for report_id in report_ids:
            legal_entity, worker, lines = REPORTS[report_id]
            self._send("create_expense_reports", {"rows": [{"report_id": report_id, "worker": worker, "lines": lines}]},
                       report_correlation(legal_entity, report_id), legal_entity=legal_entity)
        self.runtime.wait_until_idle()
        self._lifecycle("submit_expense_reports", report_ids)

        def check() -> tuple[bool, str]:
            statuses = self._statuses(report_ids)
            return all(statuses.get(r) == "submitted" for r in report_ids), "; ".join(f"{r} {s}" for r, s in sorted(statuses.items()))

        first = report_ids[0]
        self._step(f"Workers create and submit expense reports {', '.join(report_ids)}", report_correlation(REPORTS[first][0], first), check)

    def approval_refused(self) -> None:
        message_id = self._send("approve_expense_reports", {"rows": [{"report_id": "R-US-001", "approver": "bob"}]},
                                "approval:R-US-001:bob", legal_entity="USPM")

        def check() -> tuple[bool, str]:
            reason = self._dead_reason(Side.FINANCE, message_id)
            return reason is not None and "may not approve" in reason and self._statuses(["R-US-001"])["R-US-001"] == "submitted", f"refused: [{reason}]"

        self._step("bob, who manages no project on R-US-001, may not approve it", "approval:R-US-001:bob", check)

    def reports_approved(self, report_ids: list[str]) -> None:
        for report_id in report_ids:
            for approver in APPROVERS[report_id]:
                self._lifecycle("approve_expense_reports", [report_id], {"approver": approver})
                self.runtime.wait_until_idle()

        def check() -> tuple[bool, str]:
            statuses = self._statuses(report_ids)
            return all(statuses.get(r) == "approved" for r in report_ids), "; ".join(
                f"{r} {s} by {' and '.join(APPROVERS[r])}" for r, s in sorted(statuses.items())
            )

        self._step("Project managers approve their lines (carol, alice's manager, the line on no project)",
                   report_correlation("USPM", report_ids[0]), check)

    def reports_posted(self) -> None:
        self._lifecycle("post_expense_reports", ["R-US-001", "R-US-002", "R-DE-001"])

        def check() -> tuple[bool, str]:
            figures = {
                "USPM integration": self._balance("USPM", "189900"),
                "USPM ordinary expense": self._balance("USPM", "606100"),
                "USPM employee payables": self._balance("USPM", "200510"),
                "DEMF integration": self._balance("DEMF", "189900"),
                "DEMF input VAT": self._balance("DEMF", "154000"),
                "DEMF employee payables": self._balance("DEMF", "200510"),
            }
            expected = {
                "USPM integration": Decimal("1121.00"), "USPM ordinary expense": Decimal("60.00"),
                "USPM employee payables": Decimal("-1181.00"), "DEMF integration": Decimal("150.00"),
                "DEMF input VAT": Decimal("16.50"), "DEMF employee payables": Decimal("-166.50"),
            }
            unbalanced = [c.unbalanced_vouchers for c in self._reconcile() if c.unbalanced_vouchers]
            return figures == expected and not unbalanced, "vouchers balance; " + ", ".join(f"{k} {v}" for k, v in figures.items())

        self._step("Finance posts them: project cost waits on the expense integration account (189900)",
                   report_correlation("USPM", "R-US-001"), check)

    def automated_approval(self) -> None:
        def check() -> tuple[bool, str]:
            jobs = self._query(Side.DATAVERSE, select(dataverse.system_jobs.c.status, func.count()).group_by(dataverse.system_jobs.c.status))
            actuals = dataverse.actuals.c
            kinds = self._query(Side.DATAVERSE, select(actuals.legal_entity, actuals.transaction_type, func.count()).group_by(actuals.legal_entity, actuals.transaction_type))
            staged = self._query(Side.FINANCE, select(func.count()).select_from(finance.actuals_staging))[0][0]
            shown = {(le, TransactionType(t).name.lower()): n for le, t, n in kinds}
            expected = {("USPM", "cost"): 3, ("USPM", "unbilled_sales"): 3, ("DEMF", "cost"): 2}
            return dict(jobs) == {"succeeded": 5} and shown == expected and staged == 8, (
                f"system jobs {dict(jobs)}; actuals {', '.join(f'{le} {k} {n}' for (le, k), n in sorted(shown.items()))}; "
                f"{staged} actuals staged in finance"
            )

        self._step("msdyn_expenses -> expense records -> automated approval -> actuals -> msdyn_actuals -> staging",
                   report_correlation("USPM", "R-US-001"), check)

    def import_and_post_journal(self, report_id: str, expected_lines: int) -> None:
        finance_side = self.runtime.side(Side.FINANCE)
        run = run_integration(finance_side.database, finance_side.relay, import_policy(self.runtime.settings))

        def check() -> tuple[bool, str]:
            posted = self._query(Side.DATAVERSE, select(func.count()).select_from(dataverse.actuals).where(dataverse.actuals.c.voucher.is_not(None)))[0][0]
            figures = {
                "USPM integration": self._balance("USPM", "189900"),
                "USPM project cost": self._balance("USPM", "600100"),
                "USPM travel cost": self._balance("USPM", "600200"),
                "DEMF integration": self._balance("DEMF", "189900"),
                "DEMF project cost": self._balance("DEMF", "600100"),
            }
            expected = {
                "USPM integration": Decimal("0.00"), "USPM project cost": Decimal("575.00"), "USPM travel cost": Decimal("546.00"),
                "DEMF integration": Decimal("0.00"), "DEMF project cost": Decimal("150.00"),
            }
            ok = run.lines_imported == expected_lines and figures == expected and posted == expected_lines
            return ok, (
                f"{run.lines_imported} actuals into {run.journals_created} journal(s), posted; "
                + ", ".join(f"{k} {v}" for k, v in figures.items())
                + f"; {posted} Dataverse actuals carry their voucher"
            )

        self._step("Import from staging, then posting the integration journal moves cost to project cost",
                   report_correlation("USPM", report_id), check)

    def approval_fails_on_closed_project(self) -> None:
        self.reports_created_and_submitted(["R-DE-002"])
        self._lifecycle("approve_expense_reports", ["R-DE-002"], {"approver": "jonas"})
        self.runtime.wait_until_idle()
        self._send("set_project_status", {"rows": [{"project_id": "PRJ-DE-200", "status": "closed"}]}, "projects:PRJ-DE-200", legal_entity="DEMF")
        self.runtime.wait_until_idle()
        self._lifecycle("post_expense_reports", ["R-DE-002"])

        def check() -> tuple[bool, str]:
            jobs = self._query(Side.DATAVERSE, select(dataverse.system_jobs.c.status, dataverse.system_jobs.c.error).where(dataverse.system_jobs.c.expense_id == "R-DE-002-1"))
            actuals = self._query(Side.DATAVERSE, select(func.count()).select_from(dataverse.actuals).where(dataverse.actuals.c.expense_id == "R-DE-002-1"))[0][0]
            ok = len(jobs) == 1 and jobs[0].status == "failed" and "closed" in (jobs[0].error or "") and actuals == 0
            return ok, f"job {jobs[0].status if jobs else 'missing'}: {jobs[0].error if jobs else ''}; actuals for it: {actuals}"

        self._step("PRJ-DE-200 is closed while R-DE-002 is posted: its automated approval fails", report_correlation("DEMF", "R-DE-002"), check)

    def retry_after_reopening(self) -> None:
        self._send("set_project_status", {"rows": [{"project_id": "PRJ-DE-200", "status": "active"}]}, "projects:PRJ-DE-200", legal_entity="DEMF")
        self.runtime.wait_until_idle()
        result = retry_jobs(self._database(Side.DATAVERSE), self.runtime.broker, ring=key_ring(self.runtime.settings))
        self.runtime.wait_until_idle()
        finance_side = self.runtime.side(Side.FINANCE)
        run = run_integration(finance_side.database, finance_side.relay, import_policy(self.runtime.settings))

        def check() -> tuple[bool, str]:
            jobs = self._query(Side.DATAVERSE, select(dataverse.system_jobs.c.status, dataverse.system_jobs.c.attempts).where(dataverse.system_jobs.c.expense_id == "R-DE-002-1"))
            cost = self._balance("DEMF", "600100")
            ok = len(result.retried) == 1 and jobs and jobs[0].status == "succeeded" and run.lines_imported == 1 and cost == Decimal("200.00")
            return ok, f"reopened, `dualwrite jobs retry --failed` retried {len(result.retried)} job: {jobs[0].status if jobs else '?'}; imported {run.lines_imported} actual; DEMF project cost {cost}"

        self._step("The project is reopened and the failed job retried: it succeeds, once", report_correlation("DEMF", "R-DE-002"), check)

    def _reconcile(self) -> list[CompanyReconciliation]:
        return reconcile(self._database(Side.FINANCE), self._database(Side.DATAVERSE))

    def reconciled(self) -> None:
        def check() -> tuple[bool, str]:
            self.reconciliation = self._reconcile()
            ok = all(c.ok for c in self.reconciliation) and all(c.counts["cost_actuals"] for c in self.reconciliation)
            return ok, "; ".join(
                f"{c.legal_entity}: integration {c.expense_integration_balance}, project cost {c.project_cost_balance} = cost actuals "
                f"{c.cost_actuals_total} {c.accounting_currency}, {c.counts['posted_project_expense_lines']} lines everywhere"
                for c in self.reconciliation
            )

        self._step("dualwrite reconcile: both sides agree, per legal entity", "reconcile", check)
