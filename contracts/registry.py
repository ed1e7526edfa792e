"""Versioned contracts: a registry of versions with pure upcasters applied before validation.

A published version never changes. A change is a new version plus a pure function that turns a
payload of the previous version into one of the new version. Consumers always receive the newest
version; publishers of an older version are still served.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.batch import Batch
from contracts.envelope import Envelope, Part
from shared.errors import InvalidContract, UnknownContract, UnknownContractVersion

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
PayloadT = TypeVar("PayloadT", bound=Batch)
T = TypeVar("T")


class Scope(StrEnum):
    """Whether a contract's rows belong to one legal entity or are shared by all."""

    LEGAL_ENTITY = "legal_entity"
    GLOBAL = "global"


class Kind(StrEnum):
    """A table map carries rows between the sides; a command asks one side to act."""

    TABLE_MAP = "table_map"
    COMMAND = "command"


@dataclass(frozen=True)
class Contract:
    """All versions of one contract; ``upcasters[i]`` turns version i+1 into version i+2."""

    name: str
    kind: Kind
    scope: Scope
    versions: tuple[type[Batch], ...]
    upcasters: tuple[Upcaster, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.upcasters) != len(self.versions) - 1:
            raise ValueError(f"{self.name}: {len(self.versions)} versions need {len(self.versions) - 1} upcasters")

    @property
    def latest(self) -> int:
        return len(self.versions)

    def model(self, version: int) -> type[Batch]:
        if not 1 <= version <= self.latest:
            raise UnknownContractVersion(
                f"contract {self.name!r} has no version {version} (known: 1..{self.latest})"
            )
        return self.versions[version - 1]

    def upcast(self, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
        """The payload as the newest version, through each upcaster in turn."""
        self.model(from_version)
        for step in self.upcasters[from_version - 1 :]:
            payload = step(payload)
        return payload


@dataclass(frozen=True)
class MessagePart:
    """One business document's rows in a message: ``payload.rows[start:stop]``, applied once by its id."""

    message_id: str
    correlation_id: str
    causation_id: str | None
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def message_parts(envelope: Envelope, rows: int) -> tuple[MessagePart, ...]:
    """The parts of a message with ``rows`` rows: its ``parts``, or the whole message as one."""
    if envelope.parts is None:
        return (MessagePart(str(envelope.message_id), envelope.correlation_id, envelope.causation_id, 0, rows),)
    parts, start = [], 0
    for part in envelope.parts:
        parts.append(MessagePart(str(part.message_id), part.correlation_id, part.causation_id, start, start + part.rows))
        start += part.rows
    if start != rows:
        raise InvalidContract(f"envelope.parts: the parts count {start} rows, the payload has {rows}")
    return tuple(parts)


def by_part(items: Iterable[T], part_of: Callable[[T], MessagePart]) -> list[tuple[MessagePart, list[T]]]:
    """Items grouped by the part each came from, parts in the order their first item came."""
    groups: dict[str, tuple[MessagePart, list[T]]] = {}
    for item in items:
        part = part_of(item)
        groups.setdefault(part.message_id, (part, []))[1].append(item)
    return list(groups.values())


@dataclass(frozen=True)
class Decoded(Generic[PayloadT]):
    """A message as a consumer sees it: the envelope and the newest version of its payload.

    ``parts`` say which rows belong to which business document (one part unless the sender
    combined several documents' rows into one message; see ``shared.outbox``).
    """

    envelope: Envelope
    payload: PayloadT
    version: int
    parts: tuple[MessagePart, ...] = ()
    #: The id of the message as it travelled (its envelope's, unless reduced with ``only``).
    carried_by: str = ""

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", message_parts(self.envelope, len(self.payload.rows)))
        if not self.carried_by:
            object.__setattr__(self, "carried_by", str(self.envelope.message_id))

    @property
    def rows(self) -> list[Any]:
        return list(self.payload.rows)

    def part_of(self, index: int) -> MessagePart:
        """The part row ``index`` belongs to."""
        for part in self.parts:
            if part.start <= index < part.stop:
                return part
        raise IndexError(f"row {index} is in no part of message {self.envelope.message_id}")

    def only(self, kept: Iterable[MessagePart]) -> "Decoded[PayloadT]":
        """This message reduced to some of its parts (the others were applied before, or are
        applied one by one): its envelope and payload hold only their rows, and a single part
        is the message it was before it was combined with others."""
        kept = list(kept)
        if [part.message_id for part in kept] == [part.message_id for part in self.parts]:
            return self
        rows: list[Any] = []
        raw: list[Any] = []
        parts: list[MessagePart] = []
        for part in kept:
            parts.append(MessagePart(part.message_id, part.correlation_id, part.causation_id, len(rows), len(rows) + part.rows))
            rows.extend(self.payload.rows[part.start : part.stop])
            raw.extend(self.envelope.payload["rows"][part.start : part.stop])
        update: dict[str, Any] = {"payload": {**self.envelope.payload, "rows": raw}}
        if len(kept) == 1:
            [part] = kept
            update |= {
                "message_id": uuid.UUID(part.message_id),
                "correlation_id": part.correlation_id,
                "causation_id": part.causation_id,
                "parts": None,
            }
        else:
            update["parts"] = [Part(message_id=p.message_id, correlation_id=p.correlation_id,
                                    causation_id=p.causation_id, rows=p.rows) for p in parts]
        envelope = self.envelope.model_copy(update=update)
        payload = self.payload.model_copy(update={"rows": rows})
        return Decoded(envelope=envelope, payload=payload, version=self.version, parts=tuple(parts), carried_by=self.carried_by)


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field, e.g. ``payload.rows.0.amount: ...``."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"])
        parts.append(f"{prefix}{where}: {problem['msg']}" if where else f"{prefix.rstrip('.') or '(document)'}: {problem['msg']}")
    return "; ".join(parts)


@dataclass
class ContractRegistry:
    """Every contract the system knows, by name."""

    _contracts: dict[str, Contract] = field(default_factory=dict)

    def register(self, contract: Contract) -> Contract:
        if contract.name in self._contracts:
            raise ValueError(f"contract {contract.name!r} is registered twice")
        self._contracts[contract.name] = contract
        return contract

    def __iter__(self) -> Iterator[Contract]:
        return iter(sorted(self._contracts.values(), key=lambda c: c.name))

    def get(self, name: str) -> Contract:
        try:
            return self._contracts[name]
        except KeyError:
            raise UnknownContract(f"unknown contract {name!r}") from None

    def decode(self, raw: str | bytes) -> Decoded[Any]:
        """Parse an envelope, upcast its payload to the newest version and validate it."""
        try:
            envelope = Envelope.model_validate_json(raw)
        except ValidationError as error:
            raise InvalidContract(describe_validation_error(error, "envelope.")) from None
        return self.decode_envelope(envelope)

    def decode_envelope(self, envelope: Envelope) -> Decoded[Any]:
        contract = self.get(envelope.contract)
        contract.model(envelope.version)  # UnknownContractVersion before anything else
        if envelope.version < contract.latest:
            # Validate as the version the publisher wrote first: a reason then names the publisher's
            # own fields (``amount``, not the upcast ``unit_cost``), and upcasters only see valid input.
            try:
                contract.model(envelope.version).model_validate(envelope.payload)
            except ValidationError as error:
                raise InvalidContract(
                    f"{contract.name} v{envelope.version}: {describe_validation_error(error, 'payload.')}"
                ) from None
        try:
            payload = contract.upcast(envelope.payload, envelope.version)
        except Exception as error:  # noqa: BLE001 - a broken upcast can never succeed on retry
            raise InvalidContract(
                f"{contract.name} v{envelope.version}: payload cannot be upcast ({type(error).__name__}: {error})"
            ) from None
        try:
            model = contract.versions[-1].model_validate(payload)
        except ValidationError as error:
            raise InvalidContract(
                f"{contract.name} v{contract.latest}: {describe_validation_error(error, 'payload.')}"
            ) from None
        check_scope(contract, envelope)
        parts = message_parts(envelope, len(model.rows))
        return Decoded(envelope=envelope, payload=model, version=contract.latest, parts=parts)

    def key_fields(self, name: str, version: int) -> tuple[str, ...]:
        """The row fields that form a contract version's integration key (none if unknown)."""
        contract = self._contracts.get(name)
        if contract is None or not 1 <= version <= contract.latest:
            return ()
        return contract.model(version).key_fields

    def validate_payload(self, name: str, version: int, payload: dict[str, Any]) -> Batch:
        """Validate a payload as the given version (used by publishers before they send)."""
        model = self.get(name).model(version)
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            raise InvalidContract(f"{name} v{version}: {describe_validation_error(error, 'payload.')}") from None


def check_scope(contract: Contract, envelope: Envelope) -> None:
    """Company-scoped rows need their company; shared reference data must not name one."""
    if contract.scope is Scope.LEGAL_ENTITY and envelope.legal_entity is None:
        raise InvalidContract(f"envelope.legal_entity: required by company-scoped contract {contract.name!r}")
    if contract.scope is Scope.GLOBAL and envelope.legal_entity is not None:
        raise InvalidContract(
            f"envelope.legal_entity: contract {contract.name!r} is shared by all companies and takes none"
        )


def build_registry(contracts: Iterable[Contract]) -> ContractRegistry:
    registry = ContractRegistry()
    for contract in contracts:
        registry.register(contract)
    return registry


def payload_of(model: BaseModel) -> dict[str, Any]:
    """A payload model as wire JSON data (Decimals as strings)."""
    return model.model_dump(mode="json")
