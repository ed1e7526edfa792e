"""The end-to-end walk-through: every flow of the system, on the embedded broker, checked step by step.

Each step publishes what an upstream system or an operator would, waits until the pipeline is
idle, then checks the business result on the side that should hold it. A step is ``ok`` only when
the result is exactly the expected one; refusals are expected results too.
"""

from __future__ import annotations

from workers.demo.category_steps import CategorySteps
from workers.demo.expense_steps import ExpenseSteps
from workers.demo.scenario import StepResult

__all__ = ["Demo", "StepResult"]


class Demo(CategorySteps, ExpenseSteps):
    def run(self) -> list[StepResult]:
        # Finance and Dataverse know their companies from the set-up and refuse any other: loaded before anything else
        self.finance_setup()
        self.run_category_steps()
        self.run_expense_steps()
        return self.results
