"""A declaration applied to rows: filter, field names, defaults and value maps, both ways."""

from __future__ import annotations

from contracts.maps import load_declarations, map_declaration
from workers.bridge.mapping import carried_rows, integration_keys, keeps, map_row

[WIDGETS] = load_declarations(
    """
maps:
  - name: msdyn_widgets
    source: finance
    target: dataverse
    two_way: false
    contract: msdyn_widgets
    version: 1
    key: [legal_entity, widget_id]
    filter:
      include_when: {kind: [small, medium]}
      exclude_when: {archived: true}
    fields:
      - {source: widget_id}
      - {source: kind}
      - {source: archived}
      - {source: colour, target: msdyn_colour, value_map: {1: red, 2: blue}}
      - {source: size, default: M}
      - {source: note, direction: one_way}
"""
)


def test_fields_are_renamed_value_mapped_and_defaulted_on_the_way_to_the_target() -> None:
    row = {"widget_id": "W1", "kind": "small", "archived": False, "colour": 2, "size": "", "note": "n"}

    assert map_row(WIDGETS, row) == {
        "widget_id": "W1", "kind": "small", "archived": False, "msdyn_colour": "blue", "size": "M", "note": "n",
    }


def test_a_missing_field_gets_its_default_and_an_unmapped_option_value_travels_as_it_is() -> None:
    row = {"widget_id": "W1", "kind": "small", "archived": False, "colour": 9}

    assert map_row(WIDGETS, row) == {"widget_id": "W1", "kind": "small", "archived": False, "msdyn_colour": 9, "size": "M"}


def test_backwards_the_value_map_is_inverted_and_one_way_fields_stay_behind() -> None:
    target_row = {"widget_id": "W1", "kind": "small", "archived": False, "msdyn_colour": "red", "size": "L", "note": "n"}

    assert map_row(WIDGETS, target_row, backwards=True) == {
        "widget_id": "W1", "kind": "small", "archived": False, "colour": "1", "size": "L",
    }


def test_the_filter_keeps_rows_matching_every_include_and_not_every_exclude_condition() -> None:
    assert keeps(WIDGETS.filter, {"kind": "small", "archived": False})
    assert keeps(WIDGETS.filter, {"kind": "medium"})
    assert not keeps(WIDGETS.filter, {"kind": "large", "archived": False})
    assert not keeps(WIDGETS.filter, {"kind": "small", "archived": True})
    assert keeps(None, {"anything": 1})


def test_actuals_flagged_skip_sync_are_not_carried_and_the_others_travel_unchanged() -> None:
    actuals = map_declaration("msdyn_actuals")
    rows = [{"actual_id": "A1", "skip_sync": False, "amount": "10.00"}, {"actual_id": "A2", "skip_sync": True, "amount": "5.00"}]

    assert actuals.is_identity
    assert carried_rows(actuals, rows) == [rows[0]]


def test_integration_keys_name_the_company_from_the_envelope() -> None:
    assert integration_keys(WIDGETS, [{"widget_id": "W1"}, {"widget_id": "W2"}], "DEMF") == [
        "legal_entity=DEMF, widget_id=W1",
        "legal_entity=DEMF, widget_id=W2",
    ]
