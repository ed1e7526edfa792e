"""The set-up document (`dualwrite setup FILE`) loaded into each side that keeps reference data.

Finance keeps all of it: its companies with their accounts, tax codes, workers and category
accounts, and the exchange rates. Dataverse keeps the companies (code and name) only, so that it
refuses a message for any other at once, as finance does. One document, read once, feeds both:
the command, the demo, the bench and the test fixtures all load through :func:`load_setup`.

The two sides are two databases, so each is loaded in a transaction of its own; a load that
stopped half-way is completed by running it again, which changes nothing already loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine

from contracts.envelope import Side
from workers.dataverse.companies import save_companies
from workers.finance.setup_document import SetupDocument
from workers.finance.store.reference import save_setup

#: The count of Dataverse's companies, beside finance's counts (``legal_entities`` is finance's).
DATAVERSE_COMPANIES = "dataverse_legal_entities"


def load_setup(document: SetupDocument, engines: Mapping[Side, Engine]) -> dict[str, int]:
    """Load the document into each of ``engines``' sides that keeps reference data; rows of each kind loaded.

    A side not among ``engines`` (a runtime of some sides only) is left alone; the bridge keeps none.
    """
    counts: dict[str, int] = {}
    if Side.FINANCE in engines:
        with engines[Side.FINANCE].begin() as connection:
            counts.update(save_setup(connection, document))
    if Side.DATAVERSE in engines:
        with engines[Side.DATAVERSE].begin() as connection:
            names = {entity.legal_entity: entity.name for entity in document.legal_entities}
            counts[DATAVERSE_COMPANIES] = save_companies(connection, names)
    return counts
