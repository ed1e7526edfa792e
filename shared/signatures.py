"""Signing what a sender sends, and hearing only the senders a queue trusts.

The signature covers the exact bytes of the envelope (the dramatiq message's single argument, as
UTF-8) and travels beside it in the dramatiq message's options, with the id of the key that made
it (README "Trust"):

    "options": {"dualwrite_key": "finance-20261203-1a2b3c",
                "dualwrite_signature": "<base64 of the 64-byte Ed25519 signature>"}

Hearing a message takes two steps. :meth:`Verifier.authenticate` runs before anything is parsed:
the key must be trusted and not revoked, the signature must match the bytes, and the key's sender
must be one the queue hears at all. :meth:`Verifier.authorize` runs once the envelope is decoded:
the sender must be allowed that contract on that queue, and the envelope's ``source`` must be the
sender's. Either raises :class:`~shared.errors.Refused`, which dead-letters the message at once.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping
from typing import Any

from contracts.envelope import Envelope
from contracts.senders import OPERATOR, Authorization, authorization, source_of
from shared.errors import Forbidden, Unauthenticated
from shared.keys import KeyRing, SigningKey, TrustedKey, load_key_ring
from shared.settings import Settings
from shared.untrusted_json import shown_value

_RINGS: dict[tuple[str, str | None, bool], KeyRing] = {}
_RINGS_LOCK = threading.Lock()

KEY_OPTION = "dualwrite_key"
SIGNATURE_OPTION = "dualwrite_signature"
#: An Ed25519 signature is 64 bytes: 88 characters of base64.
SIGNATURE_CHARACTERS = 88


def key_ring(settings: Settings) -> KeyRing:
    """The process's key ring for these settings (one per key folder: loaded once, reloads itself).

    Makes a development ring first when the folder has none and ``generate_keys`` is on.
    """
    secret = settings.signing_keys.get_secret_value() if settings.signing_keys is not None else None
    folder = settings.key_folder.resolve()
    cache_key = (str(folder), secret, settings.generate_keys)
    with _RINGS_LOCK:
        ring = _RINGS.get(cache_key)
        if ring is None:
            senders = authorization().senders_with_keys if settings.generate_keys else None
            ring = _RINGS[cache_key] = load_key_ring(folder, secret, generate_for=senders)
        return ring


def verifier(settings: Settings) -> "Verifier":
    return Verifier(key_ring(settings), authorization())


def seal(key: SigningKey, body: str) -> dict[str, str]:
    """The dramatiq options that carry ``body``'s signature by ``key``."""
    return {KEY_OPTION: key.key_id, SIGNATURE_OPTION: key.sign(body.encode("utf-8"))}


class Signer:
    """Signs as one sender with the newest key the ring holds for it (looked up at every send, so a
    key added or revoked while running is taken up)."""

    def __init__(self, ring: KeyRing, sender: str) -> None:
        self.ring = ring
        self.sender = sender
        ring.signer(sender)  # fails at start-up, not at the first send, when there is no key

    def options(self, body: str) -> dict[str, str]:
        return seal(self.ring.signer(self.sender), body)


class Verifier:
    def __init__(self, ring: KeyRing, authorization: Authorization) -> None:
        self.ring = ring
        self.authorization = authorization

    def authenticate(self, queue_name: str, body: str, options: Mapping[str, Any]) -> TrustedKey:
        """The trusted key that signed exactly ``body``, if its sender may write this queue at all."""
        key_id, signature = options.get(KEY_OPTION), options.get(SIGNATURE_OPTION)
        if key_id is None and signature is None:
            raise Unauthenticated("unsigned message (no dualwrite_key and dualwrite_signature options)")
        if not isinstance(key_id, str) or not isinstance(signature, str):
            raise Unauthenticated("signature options malformed: dualwrite_key and dualwrite_signature must be strings")
        key = self.ring.trusted_key(key_id)
        if key is None:
            raise Unauthenticated(f"unknown signing key {shown_value(key_id)}")
        if key.revoked:
            raise Unauthenticated(f"signing key {key.key_id!r} of {key.sender} was revoked at {key.revoked_at}")
        if len(signature) != SIGNATURE_CHARACTERS or not key.verify(_signature_bytes(signature), body.encode("utf-8")):
            raise Unauthenticated(
                f"signature by {key.key_id!r} ({key.sender}) does not match the message: forged or altered"
            )
        heard = self.authorization.senders(queue_name)
        if key.sender not in heard:
            raise Forbidden(f"{key.sender} may not write queue {queue_name!r} (it hears {', '.join(sorted(heard))})")
        return key

    def authorize(self, key: TrustedKey, queue_name: str, envelope: Envelope) -> None:
        """The signer may send this contract here, and says it is who it is."""
        allowed = self.authorization.senders(queue_name, envelope.contract)
        if key.sender not in allowed:
            raise Forbidden(
                f"{key.sender} may not send {envelope.contract} to {queue_name!r} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        source = source_of(key.sender)
        if key.sender != OPERATOR and envelope.source is not source:
            raise Forbidden(
                f"envelope says source {envelope.source.value!r} but is signed by {key.sender} "
                f"(key {key.key_id!r}), whose messages say {source.value if source else 'any'!r}"
            )


def _signature_bytes(signature: str) -> bytes:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return b""
