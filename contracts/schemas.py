"""JSON Schema documents of every contract version, for publishers in any language.

Each document describes a whole message (the envelope with that version's payload), so a
publisher can validate exactly what it sends. The committed files under ``contracts/schemas/``
are the published versions; a test fails if one of them would change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.envelope import LEGAL_ENTITY_PATTERN, Envelope
from contracts.registry import Contract, ContractRegistry, Scope

SCHEMA_DIR = Path(__file__).parent / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(contract: Contract, version: int) -> str:
    return f"{contract.name}.v{version}.schema.json"


def message_schema(contract: Contract, version: int) -> dict[str, Any]:
    """The envelope's schema with ``contract``, ``version`` and ``payload`` pinned to one version."""
    envelope = Envelope.model_json_schema(mode="validation")
    payload = contract.model(version).model_json_schema(mode="validation")
    definitions = {**envelope.pop("$defs", {}), **payload.pop("$defs", {})}
    properties = dict(envelope["properties"])
    properties["contract"] = {"const": contract.name, "title": "Contract"}
    properties["version"] = {"const": version, "title": "Version"}
    properties["payload"] = payload
    required = list(envelope["required"])
    if contract.scope is Scope.LEGAL_ENTITY:
        properties["legal_entity"] = {"type": "string", "pattern": LEGAL_ENTITY_PATTERN, "title": "Legal Entity"}
        required.append("legal_entity")
    else:
        properties["legal_entity"] = {"type": "null", "title": "Legal Entity", "default": None}
    return {
        "$schema": DIALECT,
        "title": f"{contract.name} v{version}",
        "description": contract.description,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required,
        "$defs": definitions,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def all_schemas(registry: ContractRegistry) -> dict[str, str]:
    """File name -> rendered schema, for every version of every contract."""
    return {
        schema_file_name(contract, version): render(message_schema(contract, version))
        for contract in registry
        for version in range(1, contract.latest + 1)
    }


def export_schemas(registry: ContractRegistry, directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema; returns the files whose content changed (or that are new)."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in all_schemas(registry).items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
