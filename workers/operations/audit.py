"""The audit log: who repaired what, when, and how many messages it touched.

Rows live in the bridge database (``audit_log``), the integration's own. Every replay, edit and
purge of dead letters writes one; pausing and resuming a table map will too.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from shared.side_database import SideDatabase
from workers.bridge.tables import audit_log


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    operator: str
    action: str
    target: str
    count: int
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "operator": self.operator,
            "action": self.action,
            "target": self.target,
            "count": self.count,
            "details": self.details,
        }


def operator_name(given: str | None = None) -> str:
    """The name given with ``--as``, else the operating-system user."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with a bare uid)
        return "unknown"


class AuditLog:
    """The ``audit_log`` table of the bridge database."""

    def __init__(self, bridge: SideDatabase) -> None:
        self.bridge = bridge

    def ensure_table(self) -> None:
        audit_log.create(self.bridge.engine, checkfirst=True)

    def record(self, operator: str, action: str, target: str, count: int, details: dict[str, Any] | None = None) -> None:
        with self.bridge.engine.begin() as connection:
            connection.execute(
                audit_log.insert(),
                {
                    "at": datetime.now(UTC),
                    "operator": operator,
                    "action": action,
                    "target": target[:200],
                    "count": count,
                    "details": json.dumps(details or {}, default=str),
                },
            )

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""
        statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        with self.bridge.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(statement).mappings()]


def _entry(row: Any) -> AuditEntry:
    at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)  # SQLite gives naive UTC back
    return AuditEntry(
        id=row["id"],
        at=at,
        operator=row["operator"],
        action=row["action"],
        target=row["target"],
        count=row["count"],
        details=json.loads(row["details"]) if row["details"] else {},
    )
