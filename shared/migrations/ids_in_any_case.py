"""What the migrations adding the unique indexes on lower(id) share (see shared/case_variants.py).

A database may hold ids that differ only in case, written before the sides refused them: the
index cannot be built over them, and no migration may decide which of two records is the real one
(ids are kept as sent; merging them silently would change the books). So the migration names them
and stops, the upgrade's transaction rolled back, until an operator has renamed or merged them;
``dualwrite db upgrade`` then goes on from there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.case_variants import any_case_index_name

#: How many clashing ids an error names at most.
SHOWN = 20


class CaseVariantsHeld(RuntimeError):
    """The table holds ids differing only in case: the unique index on lower(id) cannot be made."""


def create_unique_index_in_any_case(table: str, id_column: str, *scope: str) -> None:
    """The unique index on (lower(id_column), *scope), after checking that no two rows clash on it."""
    _refuse_case_variants_held(table, id_column, scope)
    op.create_index(any_case_index_name(table, id_column), table, [sa.text(f"lower({id_column})"), *scope], unique=True)


def drop_unique_index_in_any_case(table: str, id_column: str) -> None:
    op.drop_index(any_case_index_name(table, id_column), table_name=table)


def _refuse_case_variants_held(table: str, id_column: str, scope: tuple[str, ...]) -> None:
    rows = sa.table(table, sa.column(id_column), *(sa.column(name) for name in scope))
    key = [sa.func.lower(rows.c[id_column]).label("lowered"), *(rows.c[name] for name in scope)]
    clashes = op.get_bind().execute(
        sa.select(*key).group_by(*key).having(sa.func.count() > 1).order_by(*key).limit(SHOWN + 1)
    ).all()
    if not clashes:
        return
    shown = []
    for clash in clashes[:SHOWN]:
        same = [rows.c[name] == value for name, value in zip(scope, clash[1:])]
        ids = op.get_bind().scalars(
            sa.select(rows.c[id_column]).where(sa.func.lower(rows.c[id_column]) == clash[0], *same).order_by(rows.c[id_column])
        ).all()
        where = "".join(f" ({name} {value})" for name, value in zip(scope, clash[1:]))
        shown.append(" / ".join(ids) + where)
    more = " and more" if len(clashes) > SHOWN else ""
    raise CaseVariantsHeld(
        f"{table} holds {id_column} values that differ only in case: {'; '.join(shown)}{more}. A record is never "
        f"kept beside one differing only in case: rename or merge them, then run `dualwrite db upgrade` again "
        f"(nothing was changed)"
    )
