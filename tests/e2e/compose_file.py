"""Reading compose.yaml as the tests need it: services, worker commands, resolved environments."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
WORKER_SIDES = ("finance", "dataverse", "bridge")

#: ``${NAME:-default}``, the only interpolation form compose.yaml uses for worker settings.
DEFAULTED = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}$")


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, Any]:
    return load()["services"]


def command_argv(service: dict[str, Any]) -> list[str]:
    """A service's command as an argument list, whichever form compose.yaml writes it in."""
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def interpolation(value: Any) -> tuple[str, str] | None:
    """(variable, default) of a ``${NAME:-default}`` value; None for a literal."""
    match = DEFAULTED.match(str(value))
    return (match["name"], match["default"]) if match else None


def resolved_environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as compose sets it when none of its variables is overridden."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    resolved = {}
    for key, value in environment.items():
        found = interpolation(value)
        resolved[key] = found[1] if found else str(value)
    return resolved
