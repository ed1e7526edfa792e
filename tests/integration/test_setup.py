"""``dualwrite setup FILE`` loads each side's companies: finance's whole set-up, and the same companies
into Dataverse, which refuses any other as finance does. On the embedded default and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from contracts.envelope import Side
from shared.side import open_database
from shared.side_database import SideDatabase
from tests.integration.support import DEMO_SETUP_FILE
from tests.integration.test_migrations import cli_json, configure_cli
from workers.cli import main
from workers.cli.exit_codes import ExitCode
from workers.dataverse import tables as dataverse
from workers.finance import tables as finance
from workers.runtime import SPECS


@pytest.fixture
def databases(backend: Any) -> Iterator[dict[Side, SideDatabase]]:
    opened = {side: open_database(SPECS[side], backend.settings) for side in (Side.FINANCE, Side.DATAVERSE)}
    yield opened
    for database in opened.values():
        database.dispose()


def companies(database: SideDatabase, table: Any) -> list[tuple[str, str]]:
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(table.c.legal_entity, table.c.name).order_by(table.c.legal_entity))]


def test_setup_loads_the_companies_into_finance_and_dataverse_and_again_changes_nothing(
    backend: Any, databases: dict[Side, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)

    # When an operator loads the demo's set-up on fresh databases (the command creates their schema)
    code, counts = cli_json(capsys, "setup", str(DEMO_SETUP_FILE))

    # Then finance holds its companies with their set-up, and Dataverse the same companies
    assert code == ExitCode.OK
    assert (counts["legal_entities"], counts["dataverse_legal_entities"]) == (2, 2)
    expected = [("DEMF", "Contoso Projekt GmbH"), ("USPM", "Contoso Project Management US")]
    assert companies(databases[Side.FINANCE], finance.legal_entities) == expected
    assert companies(databases[Side.DATAVERSE], dataverse.legal_entities) == expected

    # And running it again changes nothing
    code, again = cli_json(capsys, "setup", str(DEMO_SETUP_FILE))
    assert (code, again) == (ExitCode.OK, counts)
    assert companies(databases[Side.DATAVERSE], dataverse.legal_entities) == expected


def test_setup_names_the_side_whose_database_it_cannot_reach(
    backend: Any, databases: dict[Side, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given Dataverse's database out of reach
    configure_cli(monkeypatch, backend.settings)
    monkeypatch.setenv("DUALWRITE_DATAVERSE_DB_URL", "postgresql://nobody@127.0.0.1:1/nowhere")

    # When an operator loads the set-up
    capsys.readouterr()
    code = main(["setup", str(DEMO_SETUP_FILE)])

    # Then the command says which database it could not reach; finance's part, loaded first, is kept
    # (running the command again once Dataverse is back completes it)
    assert code == ExitCode.UNAVAILABLE
    assert "dualwrite: dataverse database unavailable" in capsys.readouterr().err
    assert [code for code, _ in companies(databases[Side.FINANCE], finance.legal_entities)] == ["DEMF", "USPM"]
