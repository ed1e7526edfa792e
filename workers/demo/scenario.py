"""The walk-through's plumbing: publish as an upstream system would, wait for the pipeline to be idle,
check the business result on the side that should hold it, and record the hops it took.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from contracts.envelope import Side
from shared.side_database import SideDatabase
from workers.runtime import Runtime
from workers.operations.hops import Hop, hops
from shared.signatures import key_ring
from workers.upstream import publish


@dataclass
class StepResult:
    number: int
    title: str
    ok: bool
    outcome: str
    correlation_id: str
    hops: list[Hop] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "title": self.title,
            "ok": self.ok,
            "outcome": self.outcome,
            "correlation_id": self.correlation_id,
            "hops": [hop.as_json() for hop in self.hops],
        }


class Scenario:
    """A runtime to publish to, and the results of the steps walked so far."""

    def __init__(self, runtime: Runtime, on_step: Callable[[StepResult], None] | None = None) -> None:
        self.runtime = runtime
        self.on_step = on_step
        self.results: list[StepResult] = []
        #: Each step shows only the hops that happened since the previous step ended.
        self._since = datetime.now(UTC)

    def _database(self, side: Side) -> SideDatabase:
        return self.runtime.side(side).database

    def _query(self, side: Side, statement: Any) -> list[Any]:
        with self._database(side).engine.connect() as connection:
            return list(connection.execute(statement))

    def _send(self, contract: str, payload: dict[str, Any], correlation_id: str, **options: Any) -> uuid.UUID:
        envelope = publish(
            self.runtime.broker,
            self.runtime.registry,
            contract,
            payload,
            ring=key_ring(self.runtime.settings),
            correlation_id=correlation_id,
            **options,
        )
        return envelope.message_id

    def _dead_reason(self, side: Side, message_id: uuid.UUID) -> str | None:
        table = self._database(side).messaging.dead_letters
        rows = self._query(side, select(table.c.error_type, table.c.error).where(table.c.message_id == str(message_id)))
        return f"{rows[0].error_type}: {rows[0].error}" if rows else None

    def _step(self, title: str, correlation_id: str, check: Callable[[], tuple[bool, str]]) -> StepResult:
        self.runtime.wait_until_idle()
        ok, outcome = check()
        every_side = [self._database(side) for side in self.runtime.sides]
        recent = [hop for hop in hops(every_side, correlation_id) if hop.at >= self._since]
        self._since = datetime.now(UTC)
        result = StepResult(len(self.results) + 1, title, ok, outcome, correlation_id, recent)
        self.results.append(result)
        if self.on_step:
            self.on_step(result)
        return result

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(result.ok for result in self.results)
