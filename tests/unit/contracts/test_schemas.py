"""Published JSON Schemas never change: the committed files must match what the contracts generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.catalog import default_registry
from contracts.schemas import SCHEMA_DIR, all_schemas, export_schemas

HOW_TO_CHANGE = (
    "Published contract versions never change. A change to a contract must be a NEW version "
    "(a new model appended to the contract's versions) plus an upcaster from the previous version; "
    "then run `dualwrite contracts export` and commit the new schema file."
)


def schema_drift(expected: dict[str, str], directory: Path) -> list[str]:
    """Every difference between the generated schemas and the committed files, one line each."""
    committed = {path.name: path.read_text() for path in directory.glob("*.schema.json")}
    problems = []
    for name in sorted(expected.keys() - committed.keys()):
        problems.append(f"{name}: a contract version has no committed schema file")
    for name in sorted(committed.keys() - expected.keys()):
        problems.append(f"{name}: a committed schema file has no contract version (a published version was removed)")
    for name in sorted(expected.keys() & committed.keys()):
        if committed[name] != expected[name]:
            problems.append(f"{name}: the committed schema would change")
    return problems


def drift_report(problems: list[str]) -> str:
    return "\n".join([*problems, "", HOW_TO_CHANGE])


def test_the_committed_schemas_are_exactly_what_the_contracts_generate():
    problems = schema_drift(all_schemas(default_registry()), SCHEMA_DIR)

    assert not problems, drift_report(problems)


# The drift check itself, on a scratch copy of the committed files.


@pytest.fixture
def committed_copy(tmp_path: Path) -> tuple[dict[str, str], Path]:
    expected = all_schemas(default_registry())
    for name, text in expected.items():
        (tmp_path / name).write_text(text)
    return expected, tmp_path


def test_the_drift_check_passes_on_an_exact_copy(committed_copy):
    expected, directory = committed_copy

    assert schema_drift(expected, directory) == []


def test_the_drift_check_fails_when_a_published_schema_would_change(committed_copy):
    expected, directory = committed_copy
    changed = dict(expected)
    document = json.loads(changed["create_expense_estimates.v1.schema.json"])
    document["properties"]["payload"]["title"] = "Renamed"
    changed["create_expense_estimates.v1.schema.json"] = json.dumps(document, indent=2, sort_keys=True) + "\n"

    problems = schema_drift(changed, directory)

    assert problems == ["create_expense_estimates.v1.schema.json: the committed schema would change"]
    assert "new version" in drift_report(problems).lower()
    assert "upcaster" in drift_report(problems)
    assert "`dualwrite contracts export`" in drift_report(problems)


def test_the_drift_check_fails_when_a_version_has_no_committed_file(committed_copy):
    expected, directory = committed_copy
    (directory / "create_expense_estimates.v2.schema.json").unlink()

    assert schema_drift(expected, directory) == [
        "create_expense_estimates.v2.schema.json: a contract version has no committed schema file"
    ]


def test_the_drift_check_fails_when_a_committed_file_has_no_version(committed_copy):
    expected, directory = committed_copy
    (directory / "create_expense_estimates.v3.schema.json").write_text("{}\n")

    assert schema_drift(expected, directory) == [
        "create_expense_estimates.v3.schema.json: a committed schema file has no contract version "
        "(a published version was removed)"
    ]


def test_export_writes_only_what_changed(tmp_path):
    registry = default_registry()

    first = export_schemas(registry, tmp_path)
    second = export_schemas(registry, tmp_path)

    assert len(first) == len(all_schemas(registry))
    assert second == []
    assert schema_drift(all_schemas(registry), tmp_path) == []


def test_a_schema_describes_the_whole_message_of_one_version():
    schemas = all_schemas(default_registry())

    v1 = json.loads(schemas["create_expense_estimates.v1.schema.json"])
    v2 = json.loads(schemas["create_expense_estimates.v2.schema.json"])
    shared = json.loads(schemas["msdyn_transactioncategories.v1.schema.json"])

    assert v1["properties"]["contract"] == {"const": "create_expense_estimates", "title": "Contract"}
    assert v1["properties"]["version"]["const"] == 1 and v2["properties"]["version"]["const"] == 2
    assert "legal_entity" in v1["required"]
    assert v1["additionalProperties"] is False
    assert shared["properties"]["legal_entity"]["type"] == "null"
    assert "legal_entity" not in shared["required"]
    amount = v1["$defs"]["ExpenseEstimateLineV1"]["properties"]["amount"]
    assert amount["type"] == "string"  # money travels as a string, never a JSON number
