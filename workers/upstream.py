"""Publishing as an upstream system does: validate against the contract, then enqueue."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq

from contracts.catalog import publish_queue
from contracts.envelope import Envelope, Side, new_envelope
from contracts.registry import ContractRegistry
from shared.publisher import Publisher


def publish(
    broker: dramatiq.Broker,
    registry: ContractRegistry,
    contract: str,
    payload: dict[str, Any],
    *,
    correlation_id: str,
    version: int | None = None,
    legal_entity: str | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """Validate ``payload`` as ``contract`` (newest version unless given) and enqueue it.

    Raises InvalidContract, UnknownContract or UnknownContractVersion, and enqueues nothing, when
    the payload does not validate.
    """
    found = registry.get(contract)
    version = version or found.latest
    registry.validate_payload(contract, version, payload)
    envelope = new_envelope(
        contract=contract,
        version=version,
        source=Side.UPSTREAM,
        payload=payload,
        correlation_id=correlation_id,
        legal_entity=legal_entity,
        message_id=message_id,
    )
    return publish_envelope(broker, registry, envelope)


def publish_envelope(broker: dramatiq.Broker, registry: ContractRegistry, envelope: Envelope) -> Envelope:
    """Enqueue a complete envelope after checking it decodes exactly as a consumer will decode it."""
    registry.decode_envelope(envelope)
    Publisher(broker).send(publish_queue(registry.get(envelope.contract)), envelope)
    return envelope
