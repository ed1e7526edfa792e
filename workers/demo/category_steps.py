"""Steps 1-8 of the demo: categories, projects and expense estimates, scoped by legal entity."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from contracts.envelope import Side
from workers.dataverse import tables as dataverse
from workers.demo.scenario import Scenario
from workers.finance import tables as finance


TRANSACTION_CATEGORIES = [
    {"category": "HOTEL", "name": "Hotel", "description": "Lodging on project travel"},
    {"category": "AIRFARE", "name": "Airfare"},
    {"category": "RAIL", "name": "Rail"},
]


class CategorySteps(Scenario):
    """Transaction categories to shared categories, expense categories per company, estimates."""

    def run_category_steps(self) -> None:
        self.transaction_categories()
        self.redelivered_transaction_categories()
        self.expense_category_refused_before_enabling()
        self.enable_expense()
        self.expense_categories_per_company()
        self.projects()
        self.estimate_from_v1_publisher()
        self.estimate_naming_another_company_category()

    def _shared_categories(self) -> list[tuple[str, str]]:
        table = finance.shared_categories
        return [tuple(r) for r in self._query(Side.FINANCE, select(table.c.category, table.c.transaction_class).order_by(table.c.category, table.c.transaction_class))]

    def _send_transaction_categories(self) -> None:
        """Always the same message (same id): the second time it is a redelivery."""
        self._send("create_transaction_categories", {"rows": TRANSACTION_CATEGORIES}, "transaction-categories:setup",
                   message_id=self._categories_message)

    def transaction_categories(self) -> None:
        self._categories_message = uuid.uuid4()
        self._send_transaction_categories()

        def check() -> tuple[bool, str]:
            shared = self._shared_categories()
            per_category = {code: sorted(cls for c, cls in shared if c == code) for code, _ in shared}
            expected = {code: ["expense", "fee", "hour", "item"] for code in ("AIRFARE", "HOTEL", "RAIL")}
            return per_category == expected, f"finance holds {len(shared)} shared categories: " + ", ".join(
                f"{code} ({'/'.join(classes)})" for code, classes in sorted(per_category.items())
            )

        self._step("Dataverse creates transaction categories HOTEL, AIRFARE, RAIL", "transaction-categories:setup", check)

    def redelivered_transaction_categories(self) -> None:
        self._send_transaction_categories()

        def check() -> tuple[bool, str]:
            shared = self._shared_categories()
            inbox = self._database(Side.DATAVERSE).messaging.inbox
            applied = self._query(Side.DATAVERSE, select(func.count()).where(inbox.c.message_id == str(self._categories_message)))[0][0]
            return len(shared) == 12 and applied == 1, f"same message delivered again: applied {applied} time(s); still {len(shared)} shared categories"

        self._step("The same message arrives a second time", "transaction-categories:setup", check)

    def expense_category_refused_before_enabling(self) -> None:
        message_id = self._send(
            "create_expense_categories",
            {"rows": [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}]},
            "expense-categories:USPM:early",
            legal_entity="USPM",
        )

        def check() -> tuple[bool, str]:
            reason = self._dead_reason(Side.FINANCE, message_id)
            count = self._query(Side.FINANCE, select(func.count()).select_from(finance.expense_categories))[0][0]
            ok = reason is not None and "not enabled for expense" in reason and count == 0
            return ok, f"refused with reason [{reason}]; finance expense categories: {count}"

        self._step("Finance refuses an expense category on a shared category not enabled for expense", "expense-categories:USPM:early", check)

    def enable_expense(self) -> None:
        self._send(
            "enable_expense_on_shared_category",
            {"rows": [
                {"category": "HOTEL", "expense_type": "hotel"},
                {"category": "AIRFARE", "expense_type": "airline"},
                {"category": "RAIL", "expense_type": "transport"},
            ]},
            "shared-categories:expense",
        )

        def check() -> tuple[bool, str]:
            table = finance.shared_categories
            enabled = self._query(
                Side.FINANCE,
                select(table.c.category, table.c.expense_type).where(table.c.can_be_used_in_expense.is_(True)).order_by(table.c.category),
            )
            expected = [("AIRFARE", "airline"), ("HOTEL", "hotel"), ("RAIL", "transport")]
            return [tuple(r) for r in enabled] == expected, "Can be used in Expense: " + ", ".join(f"{c}={t}" for c, t in enabled)

        self._step("An operator enables the Expense shared categories for expense", "shared-categories:expense", check)

    def expense_categories_per_company(self) -> None:
        self._send(
            "create_expense_categories",
            {"rows": [
                {"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"},
                {"expense_category": "AIRFARE", "name": "Airfare", "shared_category": "AIRFARE"},
            ]},
            "expense-categories:setup",
            legal_entity="USPM",
        )
        self._send(
            "create_expense_categories",
            {"rows": [
                {"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"},
                {"expense_category": "RAIL", "name": "Bahn", "shared_category": "RAIL"},
            ]},
            "expense-categories:setup",
            legal_entity="DEMF",
        )

        def check() -> tuple[bool, str]:
            table = dataverse.expense_categories
            rows = self._query(Side.DATAVERSE, select(table.c.legal_entity, table.c.expense_category).order_by(table.c.legal_entity, table.c.expense_category))
            held = {le: sorted(c for l2, c in rows if l2 == le) for le, _ in rows}
            return held == {"DEMF": ["HOTEL", "RAIL"], "USPM": ["AIRFARE", "HOTEL"]}, "Dataverse holds " + "; ".join(
                f"{le}: {', '.join(codes)}" for le, codes in sorted(held.items())
            )

        self._step("Finance creates expense categories for USPM and DEMF; msdyn_expensecategories carries them", "expense-categories:setup", check)

    def projects(self) -> None:
        self._send(
            "create_projects",
            {"rows": [{"project_id": "PRJ-US-100", "name": "Contoso rollout", "project_manager": "maria", "billable": True}]},
            "projects:setup",
            legal_entity="USPM",
        )
        self._send(
            "create_projects",
            {"rows": [{"project_id": "PRJ-DE-200", "name": "Fabrikam audit", "project_manager": "jonas", "billable": False}]},
            "projects:setup",
            legal_entity="DEMF",
        )

        def check() -> tuple[bool, str]:
            table = dataverse.projects
            rows = self._query(Side.DATAVERSE, select(table.c.project_id, table.c.legal_entity).order_by(table.c.project_id))
            return [tuple(r) for r in rows] == [("PRJ-DE-200", "DEMF"), ("PRJ-US-100", "USPM")], "projects: " + ", ".join(
                f"{p} ({le})" for p, le in rows
            )

        self._step("Dataverse creates a project in each company", "projects:setup", check)

    def estimate_from_v1_publisher(self) -> None:
        self._send(
            "create_expense_estimates",
            {"rows": [{"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01", "amount": "450.00", "currency": "USD"}]},
            "estimates:PRJ-US-100",
            legal_entity="USPM",
            version=1,
        )

        def check() -> tuple[bool, str]:
            table = dataverse.expense_estimates
            rows = self._query(Side.DATAVERSE, select(table.c.quantity, table.c.unit_cost, table.c.amount, table.c.currency).where(table.c.project_id == "PRJ-US-100"))
            shown = [f"{r.quantity.normalize()} x {r.unit_cost} = {r.amount} {r.currency}" for r in rows]
            ok = len(rows) == 1 and str(rows[0].amount) == "450.00" and str(rows[0].unit_cost) == "450.00"
            return ok, "published as v1 (a total), applied as v2: " + "; ".join(shown)

        self._step("A v1 publisher estimates a hotel stay on PRJ-US-100 (upcast to v2)", "estimates:PRJ-US-100", check)

    def estimate_naming_another_company_category(self) -> None:
        message_id = self._send(
            "create_expense_estimates",
            {"rows": [{"project_id": "PRJ-US-100", "line_number": 2, "expense_category": "RAIL", "date": "2026-12-02", "quantity": "2", "unit_cost": "89.90", "currency": "USD"}]},
            "estimates:PRJ-US-100:rail",
            legal_entity="USPM",
        )

        def check() -> tuple[bool, str]:
            reason = self._dead_reason(Side.DATAVERSE, message_id)
            table = dataverse.expense_estimates
            lines = self._query(Side.DATAVERSE, select(func.count()).select_from(table).where(table.c.project_id == "PRJ-US-100"))[0][0]
            ok = reason is not None and "not an expense category of company USPM" in reason and lines == 1
            return ok, f"refused with reason [{reason}]; PRJ-US-100 still has {lines} estimate line(s)"

        self._step("An estimate on a USPM project naming DEMF's RAIL category is refused", "estimates:PRJ-US-100:rail", check)
