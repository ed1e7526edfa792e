"""Fixtures of the unit tier: the contract registry and message builders, no servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from contracts.catalog import default_registry
from contracts.registry import ContractRegistry

from .messages import envelope_document

EnvelopeBuilder = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def registry() -> ContractRegistry:
    """The registry of every contract the system ships."""
    return default_registry()


@pytest.fixture(scope="session")
def envelope() -> EnvelopeBuilder:
    """Builds an envelope document; ``json.dumps`` it to get the wire body."""
    return envelope_document


@pytest.fixture(scope="session")
def wire() -> Callable[..., str]:
    """Builds the wire body of an envelope in one go."""
    return lambda *args, **kwargs: json.dumps(envelope_document(*args, **kwargs))


@pytest.fixture
def estimate_row_v1() -> dict[str, Any]:
    """One version-1 expense estimate line: three nights at a hotel, as a total."""
    return {
        "project_id": "PRJ-100",
        "line_number": 1,
        "expense_category": "HOTEL",
        "date": "2026-03-02",
        "amount": "360.00",
        "currency": "USD",
    }


@pytest.fixture
def estimate_row_v2() -> dict[str, Any]:
    """The same line in version 2: quantity times unit cost."""
    return {
        "project_id": "PRJ-100",
        "line_number": 1,
        "expense_category": "HOTEL",
        "date": "2026-03-02",
        "quantity": "3",
        "unit_cost": "120.00",
        "currency": "USD",
    }
