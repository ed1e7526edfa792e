"""``dualwrite maps initial-sync``: start, resume and follow the initial sync of a table map.

An operator command, like the others under ``workers/operations``: it writes the run's record and
the map's state in the bridge database (the integration's own), counts the master's rows for the
progress bar, and publishes the first page command to the master's command queue. The master does
the rest, page after page (``workers/initial_sync_export.py``); the bridge records each page
(``workers/bridge/initial_sync.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq

from contracts.catalog import publish_queue
from contracts.envelope import Side, new_envelope
from contracts.senders import OPERATOR
from contracts.initial_sync import INITIAL_SYNC_DATAVERSE_PAGE, INITIAL_SYNC_FINANCE_PAGE
from contracts.maps import MAPS, map_declaration
from contracts.registry import Contract, ContractRegistry
from shared.errors import DualWriteError
from shared.keys import KeyRing
from shared.publisher import Publisher
from shared.signatures import Signer
from shared.side_database import SideDatabase
from shared.waiting import Timeout, wait_until
from workers.bridge import initial_sync as runs
from workers.bridge.map_states import MapState, audit_entry, change_state
from workers.dataverse import exports as dataverse_exports
from workers.finance import exports as finance_exports
from workers.initial_sync_export import MapExport, correlation_id, count_rows

#: What each master side can export, and the command that asks it for a page.
MASTERS: dict[Side, tuple[dict[str, MapExport], Contract]] = {
    Side.FINANCE: (finance_exports.EXPORTS, INITIAL_SYNC_FINANCE_PAGE),
    Side.DATAVERSE: (dataverse_exports.EXPORTS, INITIAL_SYNC_DATAVERSE_PAGE),
}

DEFAULT_PAGE_SIZE = 500


class InitialSyncRefused(DualWriteError):
    """Raised when an initial sync cannot be started or resumed as asked; nothing was sent."""


def syncable_maps() -> list[str]:
    return [each.name for each in MAPS if each.name in MASTERS.get(each.master, ({}, None))[0]]


def export_for(map_name: str, master: Side) -> MapExport:
    """The master's export of the map; refused for unknown, transactional or wrongly mastered maps."""
    try:
        declaration = map_declaration(map_name)
    except KeyError:
        raise InitialSyncRefused(f"no table map named {map_name!r}") from None
    exports, _ = MASTERS[master] if master in MASTERS else ({}, None)
    if declaration.master is not master:
        raise InitialSyncRefused(
            f"{map_name} is mastered by {declaration.master.value}, not {master.value}: "
            f"run it with --master {declaration.master.value}"
        )
    if not declaration.initial_sync or map_name not in exports:
        raise InitialSyncRefused(
            f"{map_name} has no initial sync: it carries transactions (documents on their way from one side "
            f"to the other, each sent once when it happens), not reference data a side masters. "
            f"Maps with an initial sync: {', '.join(syncable_maps())}"
        )
    return exports[map_name]


@dataclass(frozen=True)
class Started:
    run: runs.RunProgress
    resumed: bool
    message_id: str


def start(
    *,
    bridge: SideDatabase,
    master_database: SideDatabase,
    broker: dramatiq.Broker,
    registry: ContractRegistry,
    ring: KeyRing,
    map_name: str,
    master: Side,
    page_size: int = DEFAULT_PAGE_SIZE,
    operator: str,
    resume: bool = False,
) -> Started:
    """Start a run (or resume the map's unfinished one from its checkpoint) and send its page command."""
    export = export_for(map_name, master)
    _, page_contract = MASTERS[master]
    with bridge.engine.begin() as connection:
        latest = runs.latest_run(connection, map_name)
        unfinished = latest is not None and not latest.finished
        if resume and not unfinished:
            raise InitialSyncRefused(f"{map_name} has no unfinished initial sync to resume")
        if unfinished and not resume:
            assert latest is not None
            raise InitialSyncRefused(
                f"the initial sync of {map_name} started {latest.started_at:%Y-%m-%d %H:%M:%S} (run {latest.run_id}) "
                f"is unfinished: {latest.pages} page(s), {latest.rows_read} row(s) done. --status to see it, "
                "--resume to continue it from its checkpoint"
            )
        if resume:
            assert latest is not None
            runs.note_resume(connection, latest.run_id)
            run_id, page, after, size = latest.run_id, latest.next_page, latest.checkpoint, latest.page_size
            audit_entry(
                connection, operator, "map-initial-sync-resume", map_name, latest.pages,
                {"run_id": run_id, "master": master.value, "next_page": page, "checkpoint": after,
                 "rows_read": latest.rows_read, "page_size": size},
            )
        else:
            with master_database.engine.connect() as reading:
                total = count_rows(reading, export)
            run_id = runs.start_run(connection, map_name, master.value, page_size, total, operator)
            page, after, size = 1, None, page_size
            before = change_state(
                connection, map_name, MapState.INITIALIZING, reason=f"initial sync {run_id} from {master.value}", by=operator
            )
            audit_entry(
                connection, operator, "map-initial-sync", map_name, total,
                {"run_id": run_id, "master": master.value, "rows": total, "page_size": size,
                 "from": before.state.value, "to": MapState.INITIALIZING.value},
            )
    # A new id for every send: a resumed page must not be taken for the dead one by the master's inbox.
    # The page command is the bridge's: signed with its key where this process holds it, else with
    # the operator's (heard everywhere), as an operator running this command on their own machine has.
    envelope = new_envelope(
        contract=page_contract.name,
        version=page_contract.latest,
        source=Side.BRIDGE,
        payload={"rows": [{"run_id": run_id, "table_map": map_name, "page": page, "after": after, "page_size": size}]},
        correlation_id=correlation_id(run_id),
        message_id=uuid.uuid4(),
    )
    registry.decode_envelope(envelope)
    sender = Side.BRIDGE.value if ring.can_sign_as(Side.BRIDGE.value) else OPERATOR
    Publisher(broker, Signer(ring, sender)).send(publish_queue(page_contract), envelope)
    with bridge.engine.connect() as connection:
        progress = runs.run_progress(connection, run_id)
    assert progress is not None
    return Started(progress, resume, str(envelope.message_id))


def status(bridge: SideDatabase, map_name: str) -> runs.RunProgress | None:
    with bridge.engine.connect() as connection:
        return runs.latest_run(connection, map_name)


def wait_for(
    bridge: SideDatabase,
    run_id: str,
    *,
    timeout: float,
    on_progress: Callable[[runs.RunProgress], Any] | None = None,
) -> runs.RunProgress:
    """Poll the run until it has finished and the bridge has seen every row sent (:class:`Timeout` after ``timeout`` s)."""

    def finished() -> runs.RunProgress | None:
        with bridge.engine.connect() as connection:
            progress = runs.run_progress(connection, run_id)
        assert progress is not None
        if on_progress is not None:
            on_progress(progress)
        return progress if progress.settled else None

    return wait_until(finished, timeout=timeout, interval=0.2, what=f"initial sync {run_id} finished")


__all__ = ["InitialSyncRefused", "Started", "Timeout", "export_for", "start", "status", "syncable_maps", "wait_for"]
