"""Dataverse's companies are the legal entities `dualwrite setup` loaded; a message for any other is refused.

Dataverse used to create rows for any company, and finance refused them later (a failure of the
table map on its way back). Now a company-scoped message (a command, or a table map's rows) naming
a company Dataverse does not know is dead-lettered at once, with nothing written, in the words
finance uses (``shared/companies.py``); an operator who loads the company can replay it. The check
wraps every handler of the side (:func:`for_known_companies`, in ``bootstrap.py``), so no
company-scoped contract can miss it; it costs one primary-key read per message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, select

from contracts.envelope import Side
from contracts.registry import Decoded
from shared.companies import refuse_unknown_company
from shared.database import upsert
from shared.unit_of_work import UnitOfWork
from workers.dataverse.tables import legal_entities

Handler = Callable[[Decoded[Any], UnitOfWork], None]

_KNOWN = select(legal_entities.c.legal_entity).where(legal_entities.c.legal_entity == bindparam("b_legal_entity"))


def known_company(connection: Connection, legal_entity: str) -> None:
    """Nothing when Dataverse knows the company; a BusinessRuleViolation when it does not."""
    if connection.scalar(_KNOWN, {"b_legal_entity": legal_entity}) is None:
        refuse_unknown_company(Side.DATAVERSE.value, legal_entity)


def for_known_companies(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """Each handler, run only when its message's company (if it names one) is a company of Dataverse."""
    return {contract: _for_known_companies(handler) for contract, handler in handlers.items()}


def _for_known_companies(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def checked(message: Decoded[Any], uow: UnitOfWork) -> None:
        if message.envelope.legal_entity is not None:  # shared reference data names no company
            known_company(uow.connection, message.envelope.legal_entity)
        handler(message, uow)

    return checked


def save_companies(connection: Connection, names: Mapping[str, str]) -> int:
    """Insert or rename the companies (code -> name); returns how many."""
    upsert(connection, legal_entities, [{"legal_entity": code, "name": name} for code, name in names.items()],
           key=("legal_entity",))
    return len(names)
