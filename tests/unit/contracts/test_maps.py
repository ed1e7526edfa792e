"""The table map declarations: loading, checking, and agreement with the contracts they name."""

from __future__ import annotations

import pytest

from contracts.catalog import default_registry
from contracts.envelope import Side
from contracts.maps import MAPS, FieldDirection, MapDeclarationError, load_declarations, map_declaration
from contracts.queues import TABLE_MAPS, table_map

MINIMAL = """
defaults:
  alerts: [{failures: 3, within_minutes: 5}]
maps:
  - name: msdyn_widgets
    source: finance
    target: dataverse
    contract: msdyn_widgets
    version: 1
    key: [legal_entity, widget_id]
    fields:
      - {source: widget_id}
      - {source: colour, target: msdyn_colour, value_map: {1: red, 2: blue}, default: 1}
      - {source: note, direction: one_way}
"""


def test_a_minimal_declaration_loads_with_its_defaults() -> None:
    [widgets] = load_declarations(MINIMAL)

    assert (widgets.source, widgets.target, widgets.master, widgets.two_way) == (Side.FINANCE, Side.DATAVERSE, Side.FINANCE, False)
    assert widgets.key == ("legal_entity", "widget_id") and widgets.row_key == ("widget_id",)
    colour = widgets.fields[1]
    assert (colour.target, colour.default, colour.value_map) == ("msdyn_colour", 1, {"1": "red", "2": "blue"})
    assert widgets.fields[0].target == "widget_id" and widgets.fields[2].direction is FieldDirection.ONE_WAY
    assert [rule.describe() for rule in widgets.alerts] == ["3 failures in 5 minutes"]
    assert widgets.filter is None and widgets.initial_sync is False
    assert not widgets.is_identity


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("source: finance\n    target: dataverse", "source: finance\n    target: finance"), "source and target must be finance and dataverse"),
        (("key: [legal_entity, widget_id]", "key: [legal_entity, gadget_id]"), "key field(s) not among the fields: gadget_id"),
        (("- {source: note, direction: one_way}", "- {source: note, target: msdyn_colour}"), "target field(s) mapped twice: msdyn_colour"),
        (("version: 1", "version: 0"), "maps.0.version"),
        (("- {source: note, direction: one_way}", "- {source: note, direction: sideways}"), "maps.0.fields.2.direction"),
        (("contract: msdyn_widgets", "contract: msdyn_widgets\n    colour: blue"), "maps.0.colour: Extra inputs are not permitted"),
    ],
)
def test_a_broken_declaration_is_refused_naming_what_is_wrong(change: tuple[str, str], complaint: str) -> None:
    broken = MINIMAL.replace(*change)
    assert broken != MINIMAL

    with pytest.raises(MapDeclarationError) as refused:
        load_declarations(broken, "widgets.yaml")

    assert str(refused.value).startswith("widgets.yaml: ") and complaint in str(refused.value)


def test_a_map_declared_twice_or_a_document_without_maps_is_refused() -> None:
    twice = MINIMAL + MINIMAL.split("maps:\n", 1)[1]
    with pytest.raises(MapDeclarationError, match="declared twice: msdyn_widgets"):
        load_declarations(twice)
    with pytest.raises(MapDeclarationError, match="expected a mapping"):
        load_declarations("- just a list")
    with pytest.raises(MapDeclarationError, match="not YAML"):
        load_declarations("maps: [unclosed")


def test_every_declared_map_names_a_table_map_contract_whose_fields_it_maps() -> None:
    registry = default_registry()
    for declaration in MAPS:
        contract = registry.get(declaration.contract)
        assert contract.kind.value == "table_map", declaration.name
        assert 1 <= declaration.version <= contract.latest, declaration.name
        row_fields = set(contract.model(declaration.version).model_fields["rows"].annotation.__args__[0].model_fields)
        assert {field.source for field in declaration.fields} == row_fields, declaration.name
        assert set(declaration.row_key) <= row_fields, declaration.name


def test_the_queue_topology_is_derived_from_the_declarations() -> None:
    assert [(m.name, m.source, m.target) for m in TABLE_MAPS] == [(d.name, d.source, d.target) for d in MAPS]
    assert table_map("msdyn_expenses").outbound.name == "msdyn_expenses.finance-to-bridge"
    assert map_declaration("msdyn_actuals").filter.exclude_when == {"skip_sync": True}
    with pytest.raises(KeyError, match="no table map named 'msdyn_nothing'"):
        map_declaration("msdyn_nothing")
