"""What an operator does to a table map: pause, resume, stop, start, activate a version.

Each change is one transaction on the bridge database: the map's row locked, its new state, a
line in its activity log and a row in the operators' audit log commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.catalog import default_registry
from contracts.maps import map_declaration
from contracts.registry import ContractRegistry
from shared.side_database import SideDatabase
from workers.bridge import held_messages
from workers.bridge.map_states import (
    MapState,
    MapStateError,
    activate_version,
    audit_entry,
    change_state,
    read_state,
)

#: The command an operator types for each target state.
ACTIONS: dict[MapState, str] = {
    MapState.PAUSED: "pause",
    MapState.RUNNING: "resume",
    MapState.STOPPED: "stop",
    MapState.NOT_RUNNING: "stop",
    MapState.INITIALIZING: "initialize",
}


@dataclass(frozen=True)
class MapChange:
    """What a command did: the map, its state before and after, and what it holds."""

    map: str
    before: str
    after: str
    version_before: int
    version: int
    held: int
    changed: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "before": self.before,
            "after": self.after,
            "version_before": self.version_before,
            "version": self.version,
            "held": self.held,
            "changed": self.changed,
        }


def set_map_state(
    bridge: SideDatabase, name: str, state: MapState, *, by: str, reason: str | None = None, action: str | None = None
) -> MapChange:
    """Move a map to ``state``; KeyError for an unknown map, MapStateError when its state forbids it."""
    map_declaration(name)
    with bridge.engine.begin() as connection:
        before = change_state(connection, name, state, reason=reason, by=by)
        held = held_messages.held_count(connection, name)
        changed = before.state is not state
        if changed:
            audit_entry(
                connection, by, f"map-{action or ACTIONS[state]}", name, held,
                {"from": before.state.value, "to": state.value, "reason": reason, "held": held},
            )
    return MapChange(name, before.state.value, state.value, before.active_version, before.active_version, held, changed)


def activate(
    bridge: SideDatabase, name: str, version: int, *, by: str, registry: ContractRegistry | None = None
) -> MapChange:
    """Run ``version`` of the map's contract from now on: queued and held messages of older versions
    are upcast to it when they are carried or released."""
    declaration = map_declaration(name)
    contract = (registry or default_registry()).get(declaration.contract)
    if not 1 <= version <= contract.latest:
        raise MapStateError(f"contract {contract.name} has no version {version} (known: 1..{contract.latest})")
    with bridge.engine.begin() as connection:
        before = activate_version(connection, name, version, by=by)
        held = held_messages.held_count(connection, name)
        changed = before.active_version != version
        if changed:
            audit_entry(
                connection, by, "map-activate", name, held, {"from_version": before.active_version, "to_version": version}
            )
    return MapChange(name, before.state.value, before.state.value, before.active_version, version, held, changed)


def held(bridge: SideDatabase, name: str) -> int:
    with bridge.engine.connect() as connection:
        return held_messages.held_count(connection, name)


def status(bridge: SideDatabase, name: str) -> Any:
    with bridge.engine.connect() as connection:
        return read_state(connection, name)

