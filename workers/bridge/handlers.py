"""The bridge's one handler: carry a table map's rows from its source side to its target side.

A :class:`MapCarrier` applies the map's declaration (``contracts/maps.yaml``) to each message: the
map's state decides whether the message is carried, held or refused; a carried message is upcast
to the map's active version, filtered, mapped field by field, and written to the outbox for the
target side, with one activity-log line. Adding a simple map needs a declaration and a contract,
no new handler.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contracts.maps import MapDeclaration
from contracts.queues import Queue, table_map
from contracts.registry import Contract, ContractRegistry, Decoded, describe_validation_error
from shared.errors import PermanentError, error_kind
from shared.logging import get_logger
from shared.side_database import SideDatabase
from shared.unit_of_work import UnitOfWork
from contracts.envelope import Side
from workers.bridge import held_messages
from workers.bridge.activity import ActivityKind, activity_row, record_activities, record_activity
from workers.bridge.map_states import MapStatus, count_failed, lock_state
from workers.bridge import initial_sync
from workers.bridge.mapping import carried_rows, integration_keys
from workers.bridge import row_versions

log = get_logger(__name__)

#: Keys written to one activity line; a 1,000-row batch names its first ones and counts the rest.
KEYS_LOGGED = 10


class MapRefused(PermanentError):
    """Raised when a table map's state refuses its messages (stopped, not running)."""


class VersionNotActive(MapRefused):
    """Raised when a message is newer than the version its map runs; activate that version first."""


class MappingFailed(PermanentError):
    """Raised when rows mapped by a declaration do not fit the target side's contract."""


@dataclass
class MapCarrier:
    """Carries, holds or refuses the messages of one table map, as its declaration and state say."""

    declaration: MapDeclaration
    registry: ContractRegistry

    def __post_init__(self) -> None:
        self.name = self.declaration.name
        self.contract: Contract = self.registry.get(self.declaration.contract)
        #: Whether rows travel as received (the declaration works it out field by field at each ask).
        self.identity = self.declaration.is_identity
        self.inbound: Queue = table_map(self.name).inbound
        #: Two-way maps: where the target side's changes go (to the source side).
        self.reverse_inbound: Queue = table_map(self.name).reverse_inbound
        self.__name__ = f"carry_{self.name}"

    def backwards(self, envelope: Any) -> bool:
        """Whether the message is a two-way map's target side's change, going to its source side."""
        return self.declaration.two_way and envelope.source == self.declaration.target

    # -- live messages ---------------------------------------------------------------------------

    def __call__(self, message: Decoded[Any], uow: UnitOfWork) -> None:
        status = lock_state(uow.connection, self.name, shared=True)
        if status.state.refuses:
            raise MapRefused(self._refusal(status))
        if status.state.holds or held_messages.holds_any(uow.connection, self.name):
            # Paused, or resumed with messages still held: new ones queue up behind those.
            if held_messages.hold(uow.connection, self.name, message):
                record_activity(
                    uow.connection,
                    self.name,
                    ActivityKind.HELD,
                    message_id=str(message.envelope.message_id),
                    correlation_id=message.envelope.correlation_id,
                    detail={"state": status.state.value, "published_at": message.envelope.occurred_at.isoformat()},
                )
            return
        self.apply(message, uow, status, ActivityKind.APPLIED)

    def _refusal(self, status: MapStatus) -> str:
        why = f" ({status.reason})" if status.reason else ""
        return (
            f"table map {self.name} is {status.state.value}{why}: it refuses new messages; "
            f"`dualwrite maps start {self.name}` runs it again and `dualwrite dlq replay` re-sends this one"
        )

    # -- applying one message --------------------------------------------------------------------

    def apply(self, message: Decoded[Any], uow: UnitOfWork, status: MapStatus, kind: ActivityKind) -> None:
        """Send the message's rows on as the map's active version, each business document's rows
        (each part) as a part of its own, with its own activity-log line."""
        parts = [message] if len(message.parts) == 1 else [message.only([part]) for part in message.parts]
        record_activities(uow.connection, [self._apply_part(part, uow, status, kind) for part in parts])

    def _apply_part(self, message: Decoded[Any], uow: UnitOfWork, status: MapStatus, kind: ActivityKind) -> dict[str, Any]:
        """Carry one document's rows on; its activity-log line, for the caller to write with the others'."""
        envelope = message.envelope
        version = status.active_version
        if envelope.version > version:
            raise VersionNotActive(
                f"{envelope.contract} v{envelope.version} is newer than the version table map {self.name} runs "
                f"(v{version}); `dualwrite maps activate {self.name} --version {envelope.version}` first"
            )
        payload = self._payload_as(message, version)
        # Maps with an initial sync: a synced row older than a live change carried already is dropped.
        backwards = self.backwards(envelope)
        rows = carried_rows(
            self.declaration,
            initial_sync.screen_synced(uow.connection, self.name, envelope, payload["rows"]),
            backwards=backwards,
        )
        if self.declaration.two_way:
            # Echoes, repeats and conflicts' losers are dropped here (workers/bridge/row_versions.py).
            rows = row_versions.screen_rows(uow.connection, self.declaration, envelope, rows, backwards=backwards)
        if rows:
            outgoing = {**payload, "rows": rows}
            if not self.identity or backwards:
                outgoing = self._checked(outgoing, version)
            uow.emit(
                self.reverse_inbound if backwards else self.inbound,
                envelope.contract,
                version,
                outgoing,
                correlation_id=envelope.correlation_id,
                legal_entity=envelope.legal_entity,
                cause=message.parts[0],
            )
        received = len(payload["rows"])
        shown = integration_keys(self.declaration, payload["rows"][:KEYS_LOGGED], envelope.legal_entity)
        if received > KEYS_LOGGED:
            shown.append(f"... {received - KEYS_LOGGED} more")
        return activity_row(
            self.name,
            kind,
            message_id=str(envelope.message_id),
            correlation_id=envelope.correlation_id,
            key=shown,
            detail={"rows": len(rows), "filtered_out": received - len(rows), "version": version},
        )

    def _payload_as(self, message: Decoded[Any], version: int) -> dict[str, Any]:
        """The payload as ``version`` of the contract: the decoded one, or the original upcast that far."""
        if version == message.version:
            return message.payload.model_dump(mode="json")
        envelope = message.envelope
        payload = envelope.payload
        for step in self.contract.upcasters[envelope.version - 1 : version - 1]:
            payload = step(payload)
        return self._checked(payload, version)

    def _checked(self, payload: dict[str, Any], version: int) -> dict[str, Any]:
        try:
            return self.contract.model(version).model_validate(payload).model_dump(mode="json")
        except ValidationError as error:
            raise MappingFailed(
                f"table map {self.name}: rows as mapped do not fit {self.contract.name} v{version}: "
                f"{describe_validation_error(error, 'payload.')}"
            ) from None

    # -- releasing held messages -----------------------------------------------------------------

    def release(
        self, database: SideDatabase, *, batch_size: int = 100, after_batch: Callable[[], object] | None = None
    ) -> int:
        """Apply held messages in release order while the map runs; how many were released.

        Each batch is one transaction under the map's row lock, so a live message of the map
        waits for it and then finds either more held messages (and joins the hold) or none.
        """
        released = 0
        while True:
            count, more = self._release_batch(database, batch_size)
            released += count
            if count and after_batch is not None:
                after_batch()  # the relay: released messages leave in release order, batch by batch
            if not more:
                return released

    def _release_batch(self, database: SideDatabase, batch_size: int) -> tuple[int, bool]:
        with UnitOfWork(database, Side.BRIDGE) as uow:
            status = lock_state(uow.connection, self.name)
            if status.state.holds or status.state.refuses:
                return 0, False
            batch = held_messages.next_held(uow.connection, self.name, batch_size)
            for held in batch:
                self._release_one(held, uow, status)
                held_messages.forget(uow.connection, held.sequence)
            uow.commit()
        return len(batch), len(batch) == batch_size

    def _release_one(self, held: held_messages.HeldMessage, uow: UnitOfWork, status: MapStatus) -> None:
        savepoint = uow.connection.begin_nested()
        try:
            message = self.registry.decode(held.body)
            # Outgoing ids derive from the released message, as they would have when carried live.
            uow.cause, uow.emitted = message.envelope, []
            self.apply(message, uow, status, ActivityKind.RELEASED)
            savepoint.commit()
        except PermanentError as error:
            savepoint.rollback()
            self._dead_letter(held, error, uow)

    def _dead_letter(self, held: held_messages.HeldMessage, error: PermanentError, uow: UnitOfWork) -> None:
        """A held message that cannot be applied goes to the bridge's dead letters, with its reason."""
        queue = table_map(self.name).outbound
        connection = uow.connection
        connection.execute(
            uow.database.messaging.dead_letters.insert(),
            {
                "message_id": held.message_id,
                "queue_name": queue.name,
                "actor_name": queue.actor_name,
                "contract": self.contract.name,
                "correlation_id": None,
                "error_kind": error_kind(error),
                "error_type": type(error).__name__,
                "error": str(error),
                "traceback": "".join(traceback.format_exception(error, limit=10)),
                "attempts": 1,
                "body": held.body,
                "dead_at": datetime.now(UTC),
            },
        )
        refused = isinstance(error, MapRefused)
        if not refused:
            count_failed(connection, self.name, str(error))
        record_activity(
            connection,
            self.name,
            ActivityKind.REFUSED if refused else ActivityKind.FAILED,
            message_id=held.message_id,
            detail={"error_type": type(error).__name__, "error": str(error), "when": "released"},
        )
        log.warning("held message dead-lettered on release", map=self.name, message_id=held.message_id, error=str(error))
