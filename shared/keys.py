"""Signing keys: who may sign messages, and the public keys every receiver trusts.

Every message is signed with Ed25519 by its sender (a side, an upstream system, or an operator),
and every receiver verifies it with the sender's public key. A verifier holds public keys only,
so a side that verifies can never forge another side's messages.

A key folder (``DUALWRITE_KEYS_DIR``, default ``<data dir>/keys``) holds:

- ``trusted.json``: the public keys of every sender, each with its id, its sender, and whether it
  is revoked. Several keys of one sender may be trusted at once: that is how a key is rotated.
- ``<key id>.key``: private keys (mode 0600), one per file. A process signs as a sender with the
  newest unrevoked private key it holds for it. In production each worker is given only its own.

Private keys may also come from ``DUALWRITE_SIGNING_KEYS`` (the content of a key file, or a JSON
list of them). They are never logged: ``repr`` shows the key id only.

With no ``trusted.json`` in the folder and ``DUALWRITE_GENERATE_KEYS`` on (the default), the first
process to start makes a development ring: a key for each side, each upstream system and the
operators. The embedded demo and the tests need no configuration that way.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, NoEncryption

from shared.errors import ConfigurationError

TRUSTED_FILE = "trusted.json"
TRUSTED_FORMAT = "dualwrite-trusted-keys-v1"
PRIVATE_FORMAT = "dualwrite-ed25519-private-v1"
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SENDER = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

#: How often a running process looks whether ``trusted.json`` changed (a key added or revoked).
RELOAD_EVERY_SECONDS = 2.0


def decode_key_bytes(text: str, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ConfigurationError(f"{what}: not base64") from None
    if len(raw) != size:
        raise ConfigurationError(f"{what}: {len(raw)} bytes, an Ed25519 key has {size}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def check_key_names(key_id: str, sender: str, where: str) -> None:
    if not isinstance(key_id, str) or not KEY_ID.match(key_id):
        raise ConfigurationError(f"{where}: key id must be 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(sender, str) or not SENDER.match(sender):
        raise ConfigurationError(f"{where}: sender must be lower-case letters, digits and '-' (e.g. finance)")


@dataclass(frozen=True)
class TrustedKey:
    """A public key a receiver trusts, and the sender it speaks for."""

    key_id: str
    sender: str
    public_key: Ed25519PublicKey = field(repr=False, compare=False)
    created_at: str | None = None
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def as_json(self) -> dict[str, Any]:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "id": self.key_id,
            "sender": self.sender,
            "public_key": _b64(raw),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_json(cls, entry: Any, where: str) -> "TrustedKey":
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: each key must be an object")
        key_id, sender = entry.get("id"), entry.get("sender")
        check_key_names(key_id, sender, where)
        raw = decode_key_bytes(entry.get("public_key", ""), f"{where}: key {key_id!r} public_key", 32)
        return cls(
            key_id=key_id,
            sender=sender,
            public_key=Ed25519PublicKey.from_public_bytes(raw),
            created_at=entry.get("created_at"),
            revoked_at=entry.get("revoked_at"),
        )


@dataclass(frozen=True)
class SigningKey:
    """A private key: signs as ``sender``. Its repr never shows the key."""

    key_id: str
    sender: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    def sign(self, data: bytes) -> str:
        return _b64(self.private_key.sign(data))

    def trusted(self, created_at: str | None = None) -> TrustedKey:
        return TrustedKey(self.key_id, self.sender, self.private_key.public_key(), created_at)

    def file_content(self) -> str:
        raw = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        document = {"format": PRIVATE_FORMAT, "id": self.key_id, "sender": self.sender, "private_key": _b64(raw)}
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def generate(cls, sender: str, key_id: str | None = None) -> "SigningKey":
        key_id = key_id or f"{sender}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
        check_key_names(key_id, sender, "new key")
        return cls(key_id, sender, Ed25519PrivateKey.generate())

    @classmethod
    def from_json(cls, document: Any, where: str) -> "SigningKey":
        if not isinstance(document, dict) or document.get("format") != PRIVATE_FORMAT:
            raise ConfigurationError(f"{where}: not a dualwrite private key (format {PRIVATE_FORMAT!r})")
        key_id, sender = document.get("id"), document.get("sender")
        check_key_names(key_id, sender, where)
        raw = decode_key_bytes(document.get("private_key", ""), f"{where}: private_key", 32)
        return cls(key_id, sender, Ed25519PrivateKey.from_private_bytes(raw))


def parse_signing_keys(text: str, where: str) -> list[SigningKey]:
    """Private keys from text: one key file's JSON, or a JSON list of them. Errors never quote the text."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{where}: not JSON (expected a dualwrite private key)") from None
    documents = document if isinstance(document, list) else [document]
    return [SigningKey.from_json(each, f"{where}[{index}]") for index, each in enumerate(documents)]


def read_trusted(path: Path) -> list[TrustedKey]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read the trusted keys ({error.strerror})") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigurationError(f"{path}: not JSON") from None
    if not isinstance(document, dict) or document.get("format") != TRUSTED_FORMAT or not isinstance(document.get("keys"), list):
        raise ConfigurationError(f"{path}: not a dualwrite trusted key file (format {TRUSTED_FORMAT!r} with a list 'keys')")
    keys = [TrustedKey.from_json(entry, f"{path}: keys[{index}]") for index, entry in enumerate(document["keys"])]
    ids = [key.key_id for key in keys]
    if len(ids) != len(set(ids)):
        raise ConfigurationError(f"{path}: a key id appears twice")
    return keys


def write_trusted(path: Path, keys: Iterable[TrustedKey]) -> None:
    """Replace the trusted keys file atomically (readers see the old file or the new one)."""
    document = {"format": TRUSTED_FORMAT, "keys": [key.as_json() for key in keys]}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_private(folder: Path, key: SigningKey) -> Path:
    """Write a private key file readable by its owner only; never overwrites one."""
    path = folder / f"{key.key_id}.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key.file_content())
    return path


class KeyFolderLock:
    """An exclusive lock on a key folder, for changes to ``trusted.json`` by several processes."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"

    def __enter__(self) -> "KeyFolderLock":
        self.file = open(self.path, "a")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def generate_development_ring(folder: Path, senders: Iterable[str]) -> bool:
    """Make a key for each sender and trust them all, unless the folder has a ring; True if made."""
    folder.mkdir(parents=True, exist_ok=True)
    with KeyFolderLock(folder):
        if (folder / TRUSTED_FILE).exists():
            return False
        now = datetime.now(UTC).isoformat()
        trusted = []
        for sender in senders:
            key = SigningKey.generate(sender)
            write_private(folder, key)
            trusted.append(key.trusted(now))
        write_trusted(folder / TRUSTED_FILE, trusted)
        return True


class KeyRing:
    """The trusted public keys (re-read when ``trusted.json`` changes) and this process's private keys."""

    def __init__(self, trusted_path: Path | None, signing: Iterable[SigningKey], trusted: Iterable[TrustedKey] = ()) -> None:
        self.trusted_path = trusted_path
        self._signing: dict[str, list[SigningKey]] = {}
        for key in signing:
            self._signing.setdefault(key.sender, []).append(key)
        self._trusted: dict[str, TrustedKey] = {key.key_id: key for key in trusted}
        self._stamp: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if trusted_path is not None:
            self._reload(force=True)

    # -- verifying ----------------------------------------------------------------------------

    def trusted_key(self, key_id: str) -> TrustedKey | None:
        self._reload()
        return self._trusted.get(key_id)

    def trusted_keys(self) -> list[TrustedKey]:
        self._reload(force=True)
        return list(self._trusted.values())

    def _reload(self, force: bool = False) -> None:
        """Re-read ``trusted.json`` when it changed, looking at most every RELOAD_EVERY_SECONDS."""
        if self.trusted_path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < RELOAD_EVERY_SECONDS:
            return
        with self._lock:
            self._checked_at = now
            try:
                status = self.trusted_path.stat()
            except OSError as error:
                if force:
                    raise ConfigurationError(f"{self.trusted_path}: no trusted keys ({error.strerror})") from None
                return  # keep what we had: a file being replaced by hand must not drop every key
            stamp = (status.st_mtime_ns, status.st_size)
            if stamp == self._stamp:
                return
            try:
                self._trusted = {key.key_id: key for key in read_trusted(self.trusted_path)}
            except ConfigurationError:
                if force:
                    raise
                return  # a broken edit keeps the keys last read; `dualwrite keys list` shows the error
            self._stamp = stamp

    # -- signing ------------------------------------------------------------------------------

    def signer(self, sender: str) -> "SigningKey":
        """The key this process signs as ``sender`` with: its newest one the ring does not revoke."""
        self._reload()
        usable = [key for key in self._signing.get(sender, ()) if not self._revoked(key.key_id)]
        if not usable:
            where = self.trusted_path.parent if self.trusted_path else "DUALWRITE_SIGNING_KEYS"
            raise ConfigurationError(
                f"no usable signing key for {sender!r} (looked in {where} and DUALWRITE_SIGNING_KEYS); "
                f"make one with `dualwrite keys new --sender {sender}`"
            )
        return max(usable, key=lambda key: self._created(key.key_id))

    def can_sign_as(self, sender: str) -> bool:
        try:
            self.signer(sender)
        except ConfigurationError:
            return False
        return True

    def signing_senders(self) -> list[str]:
        return sorted(sender for sender in self._signing if self.can_sign_as(sender))

    def _revoked(self, key_id: str) -> bool:
        trusted = self._trusted.get(key_id)
        return trusted is not None and trusted.revoked

    def _created(self, key_id: str) -> str:
        trusted = self._trusted.get(key_id)
        return (trusted.created_at or "") if trusted else ""


def load_key_ring(folder: Path, extra_signing: str | None, *, generate_for: Iterable[str] | None) -> KeyRing:
    """The ring of a key folder (made first when ``generate_for`` names senders and there is none)."""
    if generate_for is not None and not (folder / TRUSTED_FILE).exists():
        try:
            generate_development_ring(folder, generate_for)
        except OSError as error:
            raise ConfigurationError(
                f"cannot make a development key ring in {folder}: {error.strerror or error}"
            ) from None
    trusted_path = folder / TRUSTED_FILE
    if not trusted_path.exists():
        raise ConfigurationError(
            f"no trusted keys in {folder} ({TRUSTED_FILE} missing); make them with `dualwrite keys new`, "
            "or set DUALWRITE_GENERATE_KEYS=true for a development ring"
        )
    signing: list[SigningKey] = []
    for path in sorted(folder.glob("*.key")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigurationError(f"{path}: cannot read the private key") from None
        signing += parse_signing_keys(text, str(path))
    if extra_signing:
        signing += parse_signing_keys(extra_signing, "DUALWRITE_SIGNING_KEYS")
    return KeyRing(trusted_path, signing)


def add_trusted(folder: Path, key: TrustedKey) -> None:
    """Trust one more public key (under the folder's lock); refuses an id already there."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TRUSTED_FILE
    with KeyFolderLock(folder):
        keys = read_trusted(path) if path.exists() else []
        if any(each.key_id == key.key_id for each in keys):
            raise ConfigurationError(f"{path}: a key {key.key_id!r} is trusted already")
        write_trusted(path, [*keys, key])


def revoke_trusted(folder: Path, key_id: str) -> TrustedKey:
    """Mark a trusted key revoked (kept in the file, so its letters still name it); returns it."""
    path = folder / TRUSTED_FILE
    with KeyFolderLock(folder):
        keys = read_trusted(path)
        found = next((key for key in keys if key.key_id == key_id), None)
        if found is None:
            raise ConfigurationError(f"{path}: no key {key_id!r}")
        if found.revoked:
            return found
        revoked = replace(found, revoked_at=datetime.now(UTC).isoformat())
        write_trusted(path, [revoked if key.key_id == key_id else key for key in keys])
        return revoked
