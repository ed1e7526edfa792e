"""Publishing as an upstream system does: validate against the contract, sign, then enqueue.

An upstream system may send only the commands ``contracts/senders.yaml`` gives it, signed with its
own key; table maps' rows and internal commands are the workers' alone.
"""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq

from contracts.catalog import publish_queue
from contracts.envelope import Envelope, Side, new_envelope
from contracts.registry import ContractRegistry
from contracts.senders import authorization
from shared.errors import ConfigurationError, Forbidden
from shared.keys import KeyRing
from shared.publisher import Publisher
from shared.signatures import Signer


def upstream_signer(ring: KeyRing, contract: str, sender: str | None = None) -> Signer:
    """Who signs ``contract``: the upstream system named, or the first one allowed whose key this process holds.

    Raises Forbidden when no upstream system (or not the one named) may send it, ConfigurationError
    when this process holds no key of one that may.
    """
    allowed = authorization().upstream_for(contract)
    if not allowed:
        raise Forbidden(f"{contract} is sent by the workers only; no upstream system may publish it")
    if sender is not None:
        if sender not in allowed:
            raise Forbidden(f"upstream system {sender!r} may not send {contract} (allowed: {', '.join(allowed)})")
        return Signer(ring, sender)
    for name in allowed:
        if ring.can_sign_as(name):
            return Signer(ring, name)
    raise ConfigurationError(
        f"no signing key of an upstream system allowed to send {contract} ({', '.join(allowed)}); "
        f"make one with `dualwrite keys new --sender {allowed[0]}`"
    )


def publish(
    broker: dramatiq.Broker,
    registry: ContractRegistry,
    contract: str,
    payload: dict[str, Any],
    *,
    ring: KeyRing,
    correlation_id: str,
    version: int | None = None,
    legal_entity: str | None = None,
    message_id: uuid.UUID | None = None,
    sender: str | None = None,
) -> Envelope:
    """Validate ``payload`` as ``contract`` (newest version unless given), sign it as an upstream system, enqueue it.

    Raises InvalidContract, UnknownContract, UnknownContractVersion or Forbidden, and enqueues
    nothing, when the payload does not validate or no upstream system may send it.
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
    return publish_envelope(broker, registry, envelope, ring=ring, sender=sender)


def publish_envelope(
    broker: dramatiq.Broker, registry: ContractRegistry, envelope: Envelope, *, ring: KeyRing, sender: str | None = None
) -> Envelope:
    """Enqueue a complete envelope, signed as an upstream system, after checking it decodes exactly
    as a consumer will decode it."""
    if envelope.source is not Side.UPSTREAM:
        raise Forbidden(f"envelope.source is {envelope.source.value!r}: upstream systems publish as 'upstream'")
    signer = upstream_signer(ring, envelope.contract, sender)
    registry.decode_envelope(envelope)
    Publisher(broker, signer).send(publish_queue(registry.get(envelope.contract)), envelope)
    return envelope
