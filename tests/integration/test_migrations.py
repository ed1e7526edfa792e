"""Schema migrations, ``dualwrite db``, workers refusing a database that is behind, ``dualwrite health``.

Each test runs on the embedded default (SQLite) and on the real Redis + PostgreSQL (the
``backend`` fixture skips those off CI when they are down, and fails under CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select, text, update

from contracts.envelope import Side
from shared import migrations
from shared.settings import Settings
from shared.side import open_database
from shared.side_database import SideDatabase
from shared.waiting import wait_until
from tests.conftest import services_settings
from workers.cli import main
from workers.cli.exit_codes import ExitCode
from workers.dataverse import tables as dataverse_tables
from workers.finance import tables as finance_tables
from workers.process import serve
from workers.runtime import ALL_SIDES, SPECS, Runtime

#: Each side's newest revision: the bridge has the table maps' tables besides the operators' ones.
HEADS = {"finance": "0008_inbox_parts", "dataverse": "0008_inbox_parts", "bridge": "0010_inbox_parts"}
INITIAL = "0001_initial"


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """``serve`` installs SIGTERM and SIGINT handlers, as a worker process should; give pytest its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def databases(backend: Any) -> Iterator[dict[str, SideDatabase]]:
    opened = {side.value: open_database(SPECS[side], backend.settings) for side in ALL_SIDES}
    yield opened
    for database in opened.values():
        database.dispose()


def configure_cli(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> dict[str, str]:
    """The DUALWRITE_* variables an operator would set for these settings, for the CLI in process."""
    environment = {"DUALWRITE_BROKER_URL": settings.broker_url, "DUALWRITE_DATA_DIR": str(settings.data_dir)}
    for side in ("finance", "dataverse", "bridge"):
        url = getattr(settings, f"{side}_db_url")
        if url:
            environment[f"DUALWRITE_{side.upper()}_DB_URL"] = url
        else:
            monkeypatch.delenv(f"DUALWRITE_{side.upper()}_DB_URL", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return environment


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def schema_differences(database: SideDatabase) -> list[Any]:
    with database.engine.connect() as connection, warnings.catch_warnings():
        # SQLite's indexes on lower(id) cannot be reflected: unique_indexes_on_lower_ids checks them
        warnings.filterwarnings("ignore", message=".*expression-based index")
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, database.metadata)


def upgrade_to(database: SideDatabase, revision: str) -> None:
    with database.engine.begin() as connection:
        command.upgrade(migrations.config(database, connection), revision)


def revision_before(database: SideDatabase, revision: str) -> str:
    """The revision ``revision`` upgrades from."""
    down = ScriptDirectory.from_config(migrations.config(database)).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def unique_indexes_on_lower_ids(database: SideDatabase) -> dict[str, str]:
    """The unique indexes on lower(id) the database holds, by name, with their definitions."""
    with database.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            found = connection.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'uq\\_%\\_lower\\_%'"
            ))
        else:
            found = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'uq\\_%\\_lower\\_%' ESCAPE '\\'"))
        return dict(found.all())


def expected_unique_indexes_on_lower_ids(database: SideDatabase) -> set[str]:
    return {index.name for table in database.metadata.tables.values() for index in table.indexes if index.unique and "_lower_" in index.name}


# -- the migrations ------------------------------------------------------------------------------


def test_upgrade_head_on_empty_databases_yields_exactly_the_metadata_schema(databases: dict[str, SideDatabase]) -> None:
    for side, database in databases.items():
        assert migrations.upgrade(database) == (None, HEADS[side])
        assert schema_differences(database) == [], f"{side}: migrations and metadata differ"
        assert set(unique_indexes_on_lower_ids(database)) == expected_unique_indexes_on_lower_ids(database)
        assert migrations.revisions(database).at_head


def test_the_comparison_sees_a_schema_one_revision_behind(databases: dict[str, SideDatabase]) -> None:
    upgrade_to(databases["finance"], INITIAL)

    added = {diff[3].name for diff in schema_differences(databases["finance"]) if diff[0] == "add_column"}
    assert added == {"outcome", "resolved_at", "resolved_by", "replayed_body", "row_version", "row_origin", "digest", "copy_digest", "carried_by"}


def test_db_upgrade_creates_all_three_then_is_idempotent(
    backend: Any, databases: dict[str, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)

    code, first = cli_json(capsys, "db", "upgrade")
    assert code == ExitCode.OK
    assert [(s["side"], s["before"], s["after"]) for s in first["sides"]] == [(side.value, None, HEADS[side.value]) for side in ALL_SIDES]

    code, again = cli_json(capsys, "db", "upgrade")
    assert code == ExitCode.OK
    assert [(s["before"], s["after"], s["changed"]) for s in again["sides"]] == [(HEADS[s["side"]], HEADS[s["side"]], False) for s in again["sides"]]
    for database in databases.values():
        assert schema_differences(database) == []

    code, status = cli_json(capsys, "db", "status")
    assert code == ExitCode.OK and all(s["current"] == s["head"] == HEADS[s["side"]] for s in status["sides"])


def test_db_upgrade_of_one_side_leaves_the_others_and_status_says_so(
    backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)

    code, upgraded = cli_json(capsys, "db", "upgrade", "--side", "bridge")
    assert code == ExitCode.OK and [s["side"] for s in upgraded["sides"]] == ["bridge"]

    code, status = cli_json(capsys, "db", "status")
    assert code == ExitCode.SCHEMA_BEHIND
    assert {s["side"]: s["current"] for s in status["sides"]} == {"dataverse": None, "bridge": HEADS["bridge"], "finance": None}


def test_a_database_made_before_migrations_is_adopted(databases: dict[str, SideDatabase]) -> None:
    # Given finance made by create_all (today's tables, no alembic_version), and bridge as it was
    # before the dead-letter outcome columns (the initial revision, its version table since lost)
    finance, bridge = databases["finance"], databases["bridge"]
    finance.create_tables()
    upgrade_to(bridge, INITIAL)
    with bridge.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))

    # When upgraded, then each is at head with the metadata's schema, rows of the old one kept
    assert migrations.upgrade(finance) == (None, HEADS["finance"])
    assert migrations.upgrade(bridge) == (None, HEADS["bridge"])
    for database in (finance, bridge):
        assert schema_differences(database) == []
    columns = {column["name"] for column in inspect(bridge.engine).get_columns("dead_letters")}
    assert {"outcome", "resolved_by"} <= columns


def test_an_existing_database_is_upgraded_to_dataverse_companies_and_unique_indexes_on_lower_ids(
    databases: dict[str, SideDatabase],
) -> None:
    # Given finance and Dataverse as they were before Dataverse had companies and either side these
    # indexes, holding a project, an expense category and a report
    finance, dataverse = databases["finance"], databases["dataverse"]
    upgrade_to(finance, revision_before(finance, "0007_ids_in_any_case"))
    upgrade_to(dataverse, revision_before(dataverse, "0006_legal_entities"))
    with dataverse.engine.begin() as connection:
        connection.execute(insert(dataverse_tables.projects), [
            {"project_id": "PRJ-1", "legal_entity": "USPM", "name": "One", "project_manager": "maria", "billable": True},
        ])
    with finance.engine.begin() as connection:
        connection.execute(insert(finance_tables.expense_reports), [
            {"legal_entity": "USPM", "report_id": "R-1", "worker": "alice", "status": "draft"},
        ])
        connection.execute(insert(finance_tables.expense_categories), [
            {"legal_entity": "USPM", "expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL", "expense_type": "hotel"},
        ])

    # When they are upgraded
    assert migrations.upgrade(finance)[1] == HEADS["finance"]
    assert migrations.upgrade(dataverse)[1] == HEADS["dataverse"]

    # Then each holds the unique index on lower(id) of every id the case check covers, rows kept
    for database in (finance, dataverse):
        held = unique_indexes_on_lower_ids(database)
        assert set(held) == expected_unique_indexes_on_lower_ids(database) != set()
        assert all("UNIQUE" in definition.upper() and "lower(" in definition for definition in held.values()), held
    assert len(unique_indexes_on_lower_ids(finance)) == 4 and len(unique_indexes_on_lower_ids(dataverse)) == 3
    with dataverse.engine.connect() as connection:
        assert connection.scalars(select(dataverse_tables.projects.c.project_id)).all() == ["PRJ-1"]
        # And Dataverse has its companies' table, empty until `dualwrite setup` loads it
        assert connection.execute(select(dataverse_tables.legal_entities)).all() == []
    with finance.engine.connect() as connection:
        assert connection.scalars(select(finance_tables.expense_reports.c.report_id)).all() == ["R-1"]


def test_an_upgrade_over_ids_differing_only_in_case_stops_naming_them_and_changes_nothing(
    backend: Any, databases: dict[str, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given Dataverse before these revisions, holding PRJ-1 and prj-1 (written before the sides refused such ids)
    configure_cli(monkeypatch, backend.settings)
    dataverse = databases["dataverse"]
    before = revision_before(dataverse, "0006_legal_entities")
    upgrade_to(dataverse, before)
    projects = dataverse_tables.projects
    with dataverse.engine.begin() as connection:
        connection.execute(insert(projects), [
            {"project_id": "PRJ-1", "legal_entity": "USPM", "name": "One", "project_manager": "maria", "billable": True},
            {"project_id": "prj-1", "legal_entity": "DEMF", "name": "One again", "project_manager": "jonas", "billable": True},
        ])

    # When an operator upgrades it, the upgrade stops, naming both ids, and leaves the database as it was
    code, report = cli_json(capsys, "db", "upgrade", "--side", "dataverse")
    assert code == ExitCode.FAILED
    [side] = report["sides"]
    assert side["ok"] is False
    assert "projects holds project_id values that differ only in case: PRJ-1 / prj-1" in side["error"]
    assert "rename or merge them, then run `dualwrite db upgrade` again" in side["error"]
    assert migrations.revisions(dataverse).current == before
    assert "legal_entities" not in inspect(dataverse.engine).get_table_names()
    assert unique_indexes_on_lower_ids(dataverse) == {}

    # When the operator renames one, the upgrade goes through
    with dataverse.engine.begin() as connection:
        connection.execute(update(projects).where(projects.c.project_id == "prj-1").values(project_id="PRJ-1-DE"))
    code, report = cli_json(capsys, "db", "upgrade", "--side", "dataverse")
    assert code == ExitCode.OK and report["sides"][0]["after"] == HEADS["dataverse"]


# -- workers refuse a database that is behind ----------------------------------------------------


@pytest.mark.usefixtures("signal_handlers")
def test_a_worker_refuses_a_database_one_revision_behind(
    backend: Any, databases: dict[str, SideDatabase], capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade_to(databases["finance"], INITIAL)
    capsys.readouterr()

    assert serve(backend.settings, [Side.FINANCE]) == ExitCode.SCHEMA_BEHIND

    message = capsys.readouterr().err
    assert "finance database is behind" in message
    assert f"at revision {INITIAL}" in message and f"needs {HEADS['finance']}" in message
    assert "dualwrite db upgrade --side finance" in message
    # Nothing was altered behind the operator's back
    assert migrations.revisions(databases["finance"]).current == INITIAL


@pytest.mark.usefixtures("signal_handlers")
def test_a_worker_refuses_an_empty_database(backend: Any, databases: dict[str, SideDatabase], capsys: pytest.CaptureFixture[str]) -> None:
    assert serve(backend.settings, [Side.BRIDGE]) == ExitCode.SCHEMA_BEHIND

    assert "bridge database is behind" in capsys.readouterr().err
    assert inspect(databases["bridge"].engine).get_table_names() == []


@pytest.mark.postgres
@pytest.mark.redis
def test_dualwrite_worker_process_refuses_a_database_behind(
    redis_db: Any, postgres_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command, as compose starts it: on Redis and PostgreSQL (their fixtures fail under CI)."""
    postgres_server.reset()
    settings = services_settings(redis_db.url, postgres_server, tmp_path / "data")
    dataverse = open_database(SPECS[Side.DATAVERSE], settings)
    try:
        upgrade_to(dataverse, INITIAL)
    finally:
        dataverse.dispose()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(configure_cli(monkeypatch, settings))

    done = subprocess.run(
        [sys.executable, "-m", "workers", "worker", "dataverse"], env=environment, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == ExitCode.SCHEMA_BEHIND, done.stderr
    assert f"the dataverse database is behind its schema: it is at revision {INITIAL}, the code needs {HEADS['dataverse']}" in done.stderr
    assert "run `dualwrite db upgrade --side dataverse`" in done.stderr


# -- dualwrite health ----------------------------------------------------------------------------


def test_health_is_ok_with_a_running_runtime(
    backend: Any, databases: dict[str, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)
    for database in databases.values():
        migrations.upgrade(database)
    with Runtime(backend.settings) as runtime:
        runtime.start()

        if backend.real_services:  # a consumer's first fetch writes its heartbeat
            wait_until(lambda: cli_json(capsys, "health")[0] == ExitCode.OK, timeout=30, what="a fresh heartbeat")
        code, report = cli_json(capsys, "health")

    assert code == ExitCode.OK and report["ok"] is True
    checks = {check["name"]: check for check in report["checks"]}
    assert set(checks) == {"broker", "database:finance", "database:dataverse", "database:bridge", "heartbeats"}
    assert all(checks[f"database:{side}"]["ok"] for side in ("finance", "dataverse", "bridge"))
    assert checks["heartbeats"]["ok"] is (True if backend.real_services else None)


def test_health_is_not_ok_with_a_bad_database_url(
    backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)
    monkeypatch.setenv("DUALWRITE_FINANCE_DB_URL", "postgresql://nobody@127.0.0.1:1/nowhere")

    code, report = cli_json(capsys, "health", "--side", "finance")

    assert code == ExitCode.UNHEALTHY and report["ok"] is False
    finance = next(check for check in report["checks"] if check["name"] == "database:finance")
    assert finance["ok"] is False and "unavailable" in finance["detail"]


def test_health_is_not_ok_on_a_database_behind(
    backend: Any, databases: dict[str, SideDatabase], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_cli(monkeypatch, backend.settings)
    upgrade_to(databases["bridge"], INITIAL)

    code, report = cli_json(capsys, "health", "--side", "bridge")

    assert code == ExitCode.UNHEALTHY
    bridge = next(check for check in report["checks"] if check["name"] == "database:bridge")
    assert bridge == {"name": "database:bridge", "ok": False, "detail": f"schema at {INITIAL}, head is {HEADS['bridge']}: run `dualwrite db upgrade`"}


@pytest.mark.parametrize("side", ["finance", "dataverse", "bridge"])
def test_the_head_a_worker_checks_is_alembics_head(side: str) -> None:
    # A worker reads its side's head from the revision files without importing Alembic
    from alembic.config import Config

    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(migrations.HERE))
    alembic_config.set_main_option("version_locations", str(migrations.HERE / "versions" / side))
    alembic_config.set_main_option("path_separator", "os")
    assert migrations.head(side) == ScriptDirectory.from_config(alembic_config).get_current_head()


def test_the_revision_a_worker_reads_is_alembics(databases: dict[str, SideDatabase]) -> None:
    for database in databases.values():
        with database.engine.connect() as connection:
            assert migrations.current(connection) is None  # an empty database
        before, after = migrations.upgrade(database)
        assert before is None and after == migrations.head(database.side)
        with database.engine.connect() as connection:
            assert migrations.current(connection) == MigrationContext.configure(connection).get_current_revision()


def test_a_worker_checks_its_schema_without_importing_alembic() -> None:
    code = (
        "import sys; import workers.process; from shared import migrations; migrations.head('finance'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
