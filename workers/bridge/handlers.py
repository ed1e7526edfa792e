"""The bridge's one handler: carry a table map's rows from its source side to its target side."""

from __future__ import annotations

from typing import Any

from contracts.queues import TableMap
from contracts.registry import Decoded
from shared.consumer import Handler
from shared.unit_of_work import UnitOfWork


def carrier(table_map: TableMap) -> Handler:
    """A handler that forwards a map's rows, as the newest contract version, to the target side."""

    def carry(message: Decoded[Any], uow: UnitOfWork) -> None:
        uow.emit(
            table_map.inbound,
            message.envelope.contract,
            message.version,
            message.payload,
            correlation_id=message.envelope.correlation_id,
            legal_entity=message.envelope.legal_entity,
        )

    carry.__name__ = f"carry_{table_map.name}"
    return carry
