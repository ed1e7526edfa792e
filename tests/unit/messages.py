"""Messages as upstream publishers write them, for tests that build envelopes by hand."""

from __future__ import annotations

import uuid
from typing import Any


def envelope_document(
    contract: str,
    version: int,
    payload: Any,
    *,
    legal_entity: str | None = "USMF",
    **overrides: Any,
) -> dict[str, Any]:
    """An envelope as an upstream publisher writes it: plain JSON data."""
    document = {
        "message_id": str(uuid.uuid4()),
        "contract": contract,
        "version": version,
        "source": "upstream",
        "legal_entity": legal_entity,
        "correlation_id": "EXP-0001",
        "causation_id": None,
        "occurred_at": "2026-03-01T09:30:00+00:00",
        "payload": payload,
    }
    document.update(overrides)
    return document
