"""Every Dataverse handler runs only for a company Dataverse knows; shared reference data names none."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from shared.errors import BusinessRuleViolation
from workers.dataverse.bootstrap import endpoints
from workers.dataverse.companies import for_known_companies


class _Connection:
    """Answers the companies look-up: the code when known, None otherwise."""

    def __init__(self, *known: str) -> None:
        self.known = set(known)

    def scalar(self, _statement: Any, parameters: dict[str, str]) -> str | None:
        code = parameters["b_legal_entity"]
        return code if code in self.known else None


def message(legal_entity: str | None) -> Any:
    return SimpleNamespace(envelope=SimpleNamespace(legal_entity=legal_entity))


def run(handlers: dict[str, Any], contract: str, legal_entity: str | None, *known: str) -> list[str]:
    ran: list[str] = []
    checked = for_known_companies({name: (lambda m, uow, name=name: ran.append(name)) for name in handlers})
    checked[contract](message(legal_entity), SimpleNamespace(connection=_Connection(*known)))
    return ran


def test_a_message_for_a_known_company_and_one_naming_none_are_handled() -> None:
    assert run({"create_projects": None}, "create_projects", "USPM", "USPM", "DEMF") == ["create_projects"]
    assert run({"create_transaction_categories": None}, "create_transaction_categories", None) == ["create_transaction_categories"]


def test_a_message_for_an_unknown_company_is_refused_before_its_handler_runs() -> None:
    with pytest.raises(BusinessRuleViolation, match=r"^legal entity 'ZZ01' is not a company of dataverse \(its companies are those loaded with `dualwrite setup`\); nothing written$"):
        run({"create_projects": None}, "create_projects", "ZZ01", "USPM")


@pytest.mark.parametrize("endpoint", endpoints(), ids=lambda endpoint: endpoint.queue.name)
def test_every_handler_of_every_queue_is_behind_the_check(endpoint: Any) -> None:
    for contract, handler in endpoint.handlers.items():
        with pytest.raises(BusinessRuleViolation, match="not a company of dataverse"):
            handler(message("ZZ01"), SimpleNamespace(connection=_Connection()))
