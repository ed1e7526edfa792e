"""Finance's companies are the legal entities `dualwrite setup` loaded; a message for any other is refused.

A company-scoped message (a command, or a table map's rows) naming a legal entity finance has no
set-up for can never be applied as it is: it is dead-lettered at once, with nothing written, and an
operator who loads the company's set-up can replay it (the reason is ``shared/companies.py``'s, as
Dataverse's). The look-up is the reference cache's (one small query per message, see
``store/reference.py``).
"""

from __future__ import annotations

from sqlalchemy import Connection

from contracts.envelope import Side
from shared.companies import refuse_unknown_company
from workers.finance.domain.reference import CompanySetup
from workers.finance.store import reference as reference_store


def known_company(connection: Connection, legal_entity: str) -> CompanySetup:
    """The company's set-up; a BusinessRuleViolation when finance does not know the company."""
    setup = reference_store.company_setup(connection, legal_entity)
    if setup is None:
        refuse_unknown_company(Side.FINANCE.value, legal_entity)
    return setup
