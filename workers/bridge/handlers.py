"""The bridge's one handler: carry a table map's rows from its source side to its target side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.queues import TableMap
from contracts.registry import Decoded
from shared.consumer import Handler
from shared.unit_of_work import UnitOfWork

RowFilter = Callable[[Any], bool]


def carrier(table_map: TableMap, keep: RowFilter | None = None) -> Handler:
    """A handler that forwards a map's rows, as the newest contract version, to the target side.

    ``keep`` is the map's filter: rows it rejects are not carried (a batch left empty sends nothing).
    """

    def carry(message: Decoded[Any], uow: UnitOfWork) -> None:
        payload = message.payload
        if keep is not None:
            rows = [row for row in payload.rows if keep(row)]
            if not rows:
                return
            payload = payload.model_copy(update={"rows": rows})
        uow.emit(
            table_map.inbound,
            message.envelope.contract,
            message.version,
            payload,
            correlation_id=message.envelope.correlation_id,
            legal_entity=message.envelope.legal_entity,
        )

    carry.__name__ = f"carry_{table_map.name}"
    return carry
