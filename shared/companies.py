"""A side's companies: the legal entities `dualwrite setup` loaded into its database; any other is refused.

Finance and Dataverse each know the companies they serve. A company-scoped message (a command, or
a table map's rows) naming another one can never be applied as it is: it is dead-lettered at once,
with nothing written, and an operator who loads the company with `dualwrite setup` can replay it.
Both sides refuse it in the same words, so an operator reads one reason whichever side refused.
"""

from __future__ import annotations

from typing import NoReturn

from shared.errors import BusinessRuleViolation
from shared.logging import get_logger

log = get_logger(__name__)


def refuse_unknown_company(side: str, legal_entity: str) -> NoReturn:
    """Refuse for good a message for ``legal_entity``, which ``side`` was never set up for."""
    log.warning("message for a company this side does not know refused", side=side, legal_entity=legal_entity)
    raise BusinessRuleViolation(
        f"legal entity {legal_entity!r} is not a company of {side} (its companies are those loaded "
        "with `dualwrite setup`); nothing written"
    )
