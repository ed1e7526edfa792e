"""The table maps, declared as data in ``contracts/maps.yaml`` and loaded into frozen models.

One place says what every map is: which side publishes its rows and which receives them, which
side masters them, the contract and version it runs, its integration key, how each field maps
(with a default for an empty value and a value map between the two sides' option values), an
optional filter, whether its master can export its rows for an initial sync, and the alert
rules that pause it. The bridge applies a declaration generically (``workers.bridge.mapping``):
adding a simple map is a declaration plus a contract, no new handler.

YAML rather than a Python literal: operators and integration engineers read and review it
without reading code, and non-Python tools can load it; the models below check it at import.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.envelope import Side
from contracts.row_versions import VERSION_FIELDS

DECLARATIONS = Path(__file__).with_name("maps.yaml")

#: A value a filter condition or a default may take in a row (JSON scalars).
Scalar = str | int | float | bool | None


def option_text(value: Any) -> str:
    """A value as value maps and filters compare it: ``true``, ``192350001``, ``hotel``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FieldDirection(StrEnum):
    """Which way a field travels on a map."""

    BOTH = "both"
    #: From the source side to the target side only; a two-way map does not carry it back.
    ONE_WAY = "one_way"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(Frozen):
    """One field of a map: its name on each side, which way it travels, and its transforms."""

    source: str
    target: str = ""
    direction: FieldDirection = FieldDirection.BOTH
    #: Sent instead of an empty source value (missing, null or the empty string).
    default: Scalar = None
    #: Source option value -> target option value; keys are compared as text ("192350001").
    value_map: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("value_map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads ``192350001: expense`` with an integer key; keys are compared as text.
        if isinstance(value, dict):
            return {option_text(key): each for key, each in value.items()}
        return value

    @model_validator(mode="after")
    def _target_defaults_to_source(self) -> "FieldMapping":
        if not self.target:
            object.__setattr__(self, "target", self.source)
        return self

    @property
    def is_identity(self) -> bool:
        return self.source == self.target and self.default is None and not self.value_map


class RowFilter(Frozen):
    """Which rows a map carries: those matching every ``include_when`` and not every ``exclude_when``.

    A condition's value may be a list: the row's value must then be one of them.
    """

    include_when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    exclude_when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)


class AlertRule(Frozen):
    """``failures`` failed messages of a map within ``within_minutes`` minutes: the map is paused."""

    failures: int = Field(ge=1)
    within_minutes: float = Field(gt=0)
    action: Literal["pause", "stop"] = "pause"

    def describe(self) -> str:
        minutes = f"{self.within_minutes:g}"
        return f"{self.failures} failures in {minutes} minutes"


class MapDeclaration(Frozen):
    """A dual-write table map as data."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")
    source: Side
    target: Side
    #: The side whose rows win a conflict and that exports its rows in an initial sync.
    master: Side | None = None
    #: Whether the target side's changes travel back too (fields of direction ``both``); its rows
    #: then carry their version (``contracts/row_versions.py``), and the master wins a conflict.
    two_way: bool = False
    contract: str
    #: The contract version the map runs (its active version, unless an operator activated a newer one).
    version: int = Field(ge=1)
    #: The row fields that identify a row on both sides; ``legal_entity`` means the envelope's.
    key: tuple[str, ...] = Field(min_length=1)
    fields: tuple[FieldMapping, ...] = Field(min_length=1)
    filter: RowFilter | None = None
    initial_sync: bool = False
    alerts: tuple[AlertRule, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> "MapDeclaration":
        if self.master is None:
            object.__setattr__(self, "master", self.source)
        sides = {Side.FINANCE, Side.DATAVERSE}
        if {self.source, self.target} != sides:
            raise ValueError(f"map {self.name}: source and target must be finance and dataverse, one each")
        if self.master not in sides:
            raise ValueError(f"map {self.name}: master must be finance or dataverse")
        for what, names in (("source", [f.source for f in self.fields]), ("target", [f.target for f in self.fields])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"map {self.name}: {what} field(s) mapped twice: {', '.join(repeated)}")
        unversioned = [n for n in VERSION_FIELDS if n not in {f.source for f in self.fields}] if self.two_way else []
        if unversioned:
            raise ValueError(f"map {self.name}: a two-way map's rows carry their version: declare {', '.join(unversioned)}")
        unknown = [k for k in self.key if k != "legal_entity" and k not in {f.source for f in self.fields}]
        if unknown:
            raise ValueError(f"map {self.name}: key field(s) not among the fields: {', '.join(unknown)}")
        return self

    @property
    def is_identity(self) -> bool:
        """True when every field keeps its name and value: rows travel exactly as received."""
        return all(field.is_identity for field in self.fields)

    @property
    def row_key(self) -> tuple[str, ...]:
        """The integration key's row fields (``legal_entity`` travels in the envelope)."""
        return tuple(k for k in self.key if k != "legal_entity")

    def key_as_named_by(self, side: str) -> tuple[str, ...]:
        """The integration key's fields as ``side`` names them in its rows (the target may rename them)."""
        if side != self.target:
            return self.key
        targets = {field.source: field.target for field in self.fields}
        return tuple(targets.get(k, k) for k in self.key)


class MapDeclarations(Frozen):
    """The whole file: global defaults, then the maps."""

    defaults: dict[str, Any] = Field(default_factory=dict)
    maps: tuple[MapDeclaration, ...]


class MapDeclarationError(ValueError):
    """Raised when a map declaration file cannot be read or does not describe valid maps."""


def load_declarations(text: str, where: str = "maps.yaml") -> tuple[MapDeclaration, ...]:
    """Parse and check a declaration document; maps without alert rules get the default ones."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MapDeclarationError(f"{where}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise MapDeclarationError(f"{where}: expected a mapping with 'maps'")
    default_alerts = (document.get("defaults") or {}).get("alerts") or []
    for entry in document.get("maps") or []:
        if isinstance(entry, dict) and "alerts" not in entry:
            entry["alerts"] = default_alerts
    try:
        declared = MapDeclarations.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise MapDeclarationError(f"{where}: {problems}") from None
    names = [m.name for m in declared.maps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MapDeclarationError(f"{where}: map(s) declared twice: {', '.join(repeated)}")
    return declared.maps


@cache
def _declared() -> tuple[MapDeclaration, ...]:
    return load_declarations(DECLARATIONS.read_text(encoding="utf-8"), str(DECLARATIONS))


MAPS: tuple[MapDeclaration, ...] = _declared()


def map_declaration(name: str) -> MapDeclaration:
    for declaration in MAPS:
        if declaration.name == name:
            return declaration
    known = ", ".join(m.name for m in MAPS)
    raise KeyError(f"no table map named {name!r} (known: {known})")
