"""A map's declaration applied to rows: its filter, its field mappings and their transforms.

Plain functions on JSON rows (the payload as it travels), free of broker and database: the
carrier calls them for each message, the tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from contracts.maps import FieldDirection, FieldMapping, MapDeclaration, RowFilter, option_text

Row = dict[str, Any]
#: A filter's conditions: each field's allowed values, as text.
Conditions = dict[str, set[str]]


def _as_text(conditions: Mapping[str, Any]) -> Conditions:
    """Each condition's allowed value(s) as text, the form a row's value is compared in."""
    return {
        name: {option_text(value) for value in (wanted if isinstance(wanted, list) else [wanted])}
        for name, wanted in conditions.items()
    }


def _matches(row: Mapping[str, Any], conditions: Conditions) -> bool:
    for name, allowed in conditions.items():
        if option_text(row.get(name)) not in allowed:
            return False
    return True


def keeper(row_filter: RowFilter | None) -> Callable[[Mapping[str, Any]], bool]:
    """Whether the map carries a row, as a test of the row: the filter's values are turned to text
    once for all the rows it is given, not once for each."""
    if row_filter is None:
        return lambda row: True
    include, exclude = _as_text(row_filter.include_when), _as_text(row_filter.exclude_when)

    def keeps_row(row: Mapping[str, Any]) -> bool:
        if include and not _matches(row, include):
            return False
        return not (exclude and _matches(row, exclude))

    return keeps_row


def keeps(row_filter: RowFilter | None, row: Mapping[str, Any]) -> bool:
    """Whether the map carries this row."""
    return keeper(row_filter)(row)


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _transformed(field: FieldMapping, value: Any, *, backwards: bool) -> Any:
    if _empty(value) and field.default is not None and not backwards:
        return field.default
    if field.value_map:
        mapping = field.value_map if not backwards else {option_text(v): k for k, v in field.value_map.items()}
        return mapping.get(option_text(value), value)
    return value


def map_row(declaration: MapDeclaration, row: Mapping[str, Any], *, backwards: bool = False) -> Row:
    """The row as the other side names and values it.

    Forwards (source to target) every field is carried; backwards (a two-way map's target
    changes going to the source) only fields whose direction is ``both``, value maps inverted.
    A field absent from the row stays absent unless it has a default.
    """
    mapped: Row = {}
    for field in declaration.fields:
        if backwards and field.direction is FieldDirection.ONE_WAY:
            continue
        read, write = (field.target, field.source) if backwards else (field.source, field.target)
        if read not in row and (backwards or field.default is None):
            continue
        mapped[write] = _transformed(field, row.get(read), backwards=backwards)
    return mapped


def carried_rows(declaration: MapDeclaration, rows: Iterable[Mapping[str, Any]], *, backwards: bool = False) -> list[Row]:
    """The rows the map sends on: filtered, then mapped (as they are when the mapping is the identity).

    Backwards (a two-way map's target side changes going to its source side) the filter, written
    in the source side's terms, does not apply, and only fields of direction ``both`` travel.
    """
    if backwards:
        return [map_row(declaration, row, backwards=True) for row in rows]
    if declaration.filter is not None:
        rows = list(filter(keeper(declaration.filter), rows))
    if declaration.is_identity:
        return [dict(row) for row in rows]
    return [map_row(declaration, row) for row in rows]


def integration_keys(declaration: MapDeclaration, rows: Iterable[Mapping[str, Any]], legal_entity: str | None) -> list[str]:
    """Each row's integration key as text, e.g. ``legal_entity=DEMF, project_id=P-1``."""
    keys = []
    for row in rows:
        parts = [
            f"{name}={legal_entity if name == 'legal_entity' else row.get(name)}" for name in declaration.key
        ]
        keys.append(", ".join(parts))
    return keys
