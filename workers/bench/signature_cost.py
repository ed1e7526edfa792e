"""What signing and verifying cost per message, measured on the envelopes the run really sent.

Every hop signs once (the sender) and verifies once (the receiver), so the run's total is the
messages applied times both. Measured after the run, in the bench process, on finance's
msdyn_expenses envelopes (the largest kind: a posted report's lines).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from sqlalchemy import func, select

from shared.keys import KeyRing
from shared.side_database import SideDatabase

SAMPLES = 500


def signature_cost(databases: dict[str, SideDatabase], ring: KeyRing) -> dict[str, Any]:
    finance = databases["finance"]
    outbox = finance.messaging.outbox
    with finance.engine.connect() as connection:
        bodies = [
            row.body.encode("utf-8")
            for row in connection.execute(select(outbox.c.body).where(outbox.c.contract == "msdyn_expenses").limit(SAMPLES))
        ]
    messages = parts = 0
    for database in databases.values():
        with database.engine.connect() as connection:
            # A message that carried several documents' parts has one inbox row per part.
            inbox = database.messaging.inbox
            messages += connection.scalar(select(func.count(func.distinct(func.coalesce(inbox.c.carried_by, inbox.c.message_id))))) or 0
            parts += connection.scalar(select(func.count()).select_from(inbox)) or 0
    if not bodies:
        return {"envelopes": 0, "messages": messages, "parts": parts}
    key = ring.signer("finance")
    trusted = ring.trusted_key(key.key_id)
    assert trusted is not None
    started = time.perf_counter()
    signatures = [key.private_key.sign(body) for body in bodies]
    signed = time.perf_counter()
    verified = all(trusted.verify(signature, body) for signature, body in zip(signatures, bodies, strict=True))
    ended = time.perf_counter()
    assert verified, "a signature made here did not verify"
    sign_us = (signed - started) / len(bodies) * 1e6
    verify_us = (ended - signed) / len(bodies) * 1e6
    return {
        "envelopes": len(bodies),
        "median_bytes": int(statistics.median(len(body) for body in bodies)),
        "sign_us": round(sign_us, 1),
        "verify_us": round(verify_us, 1),
        "messages": messages,
        "parts": parts,
        "cpu_seconds": round(messages * (sign_us + verify_us) / 1e6, 3),
    }
