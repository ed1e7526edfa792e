"""Transaction categories: created in Dataverse, carried to finance by ``msdyn_transactioncategories``."""

from __future__ import annotations

from typing import ClassVar

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, Description, Name
from contracts.registry import Contract, Kind, Scope


class TransactionCategoryV1(Row):
    category: Code
    name: Name
    description: Description | None = None


class CreateTransactionCategoriesV1(Batch):
    """Upstream asks Dataverse to create (or update) transaction categories."""

    key_fields: ClassVar[tuple[str, ...]] = ("category",)
    rows: Rows[TransactionCategoryV1]


class TransactionCategoriesV1(Batch):
    """Transaction categories as Dataverse holds them, on their way to finance."""

    key_fields: ClassVar[tuple[str, ...]] = ("category",)
    rows: Rows[TransactionCategoryV1]


CREATE_TRANSACTION_CATEGORIES = Contract(
    name="create_transaction_categories",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(CreateTransactionCategoriesV1,),
    description="Upstream -> Dataverse: create or update transaction categories.",
)

MSDYN_TRANSACTIONCATEGORIES = Contract(
    name="msdyn_transactioncategories",
    kind=Kind.TABLE_MAP,
    scope=Scope.GLOBAL,
    versions=(TransactionCategoriesV1,),
    description="Dataverse -> finance: each transaction category becomes four shared categories.",
)
