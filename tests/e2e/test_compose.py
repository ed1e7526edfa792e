"""compose.yaml, checked as a file and then run without Docker.

Docker does not run on the development machines or in CI, so the deployment is proven in two
halves: the file itself (every worker runs a real ``dualwrite`` command, is configured only by
``DUALWRITE_*`` settings, has a health check and a restart policy, and each side has a database
of its own), then the very same worker commands started as local OS processes against the local
Redis or RabbitMQ and PostgreSQL, carrying the category flow from publisher to both sides.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from contracts.catalog import default_registry, publish_queue
from contracts.envelope import Side, new_envelope
from shared.settings import Settings
from tests.e2e import compose_file
from tests.e2e.brokers import Broker, signature_options
from tests.e2e.compose_file import REPO, WORKER_SIDES
from tests.e2e.deployment import LocalDeployment
from workers.bridge import tables as bridge_tables
from workers.cli import build_parser
from workers.dataverse import tables as dataverse_tables
from workers.finance import tables as finance_tables

SIDE_TABLES = {"finance": finance_tables, "dataverse": dataverse_tables, "bridge": bridge_tables}
URL_SETTINGS = ("DUALWRITE_BROKER_URL", "DUALWRITE_FINANCE_DB_URL", "DUALWRITE_DATAVERSE_DB_URL", "DUALWRITE_BRIDGE_DB_URL")


# -- the file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", WORKER_SIDES)
def test_each_worker_service_runs_a_real_dualwrite_command(side: str) -> None:
    argv = compose_file.command_argv(compose_file.services()[side])

    assert argv[0] == "dualwrite", f"{side}: the command must be the dualwrite console script, not {argv[0]!r}"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{side}: {' '.join(argv)!r} is not a valid dualwrite command line")
    assert (args.command, args.side) == ("worker", side)


@pytest.mark.parametrize("side", WORKER_SIDES)
def test_workers_are_configured_only_by_dualwrite_settings(side: str) -> None:
    environment = compose_file.services()[side]["environment"]
    known = {f"DUALWRITE_{name.upper()}": name for name in Settings.model_fields}

    unknown = sorted(set(environment) - set(known))
    assert not unknown, f"{side}: not DUALWRITE_* settings of shared/settings.py: {unknown}"
    for key, value in environment.items():
        assert compose_file.interpolation(value), f"{side}: {key} must be ${{{key}:-default}}, overridable from the shell"
        assert compose_file.interpolation(value)[0] == key, f"{side}: {key} reads another variable: {value}"


def test_every_setting_with_a_default_can_be_set_through_compose() -> None:
    """Optional features without a default (a metrics port, say) stay off unless added by hand."""
    environment = compose_file.services()["finance"]["environment"]
    settings = {
        f"DUALWRITE_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.default is not None or name.endswith("_db_url")
    } - {"DUALWRITE_DATA_DIR"}

    missing = sorted(settings - set(environment))
    assert not missing, f"add these to the x-worker environment of compose.yaml, with their defaults: {missing}"


def test_worker_defaults_in_compose_are_valid_and_match_the_code() -> None:
    defaults = compose_file.resolved_environment(compose_file.services()["finance"])
    configured = Settings(**{known.removeprefix("DUALWRITE_").lower(): value for known, value in defaults.items()})
    code_defaults = Settings.model_construct()

    for key in defaults:
        if key in URL_SETTINGS:
            continue
        name = key.removeprefix("DUALWRITE_").lower()
        assert getattr(configured, name) == getattr(code_defaults, name), (
            f"compose.yaml's default {key}={defaults[key]} differs from shared/settings.py"
        )


def test_all_workers_share_one_configuration() -> None:
    services = compose_file.services()
    environments = {side: services[side]["environment"] for side in WORKER_SIDES}

    assert environments["finance"] == environments["dataverse"] == environments["bridge"]


def test_broker_is_redis_by_default_and_switchable_by_one_variable() -> None:
    for side in WORKER_SIDES:
        value = compose_file.services()[side]["environment"]["DUALWRITE_BROKER_URL"]
        assert compose_file.interpolation(value) == ("DUALWRITE_BROKER_URL", "redis://redis:6379/0")


def test_every_service_has_a_health_check_and_a_restart_policy() -> None:
    for name, service in compose_file.services().items():
        if name == "migrate":  # a one-shot: runs to completion, again only if it failed
            assert service.get("restart") == "on-failure"
            continue
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
        assert service.get("healthcheck", {}).get("test"), f"{name}: health check"


def test_migrate_service_upgrades_every_database_before_the_workers_start() -> None:
    services = compose_file.services()
    argv = compose_file.command_argv(services["migrate"])

    args = build_parser().parse_args(argv[1:])
    assert argv[0] == "dualwrite" and (args.command, args.db_action, args.side) == ("db", "upgrade", None)
    assert services["migrate"]["environment"] == services["finance"]["environment"]
    for side in WORKER_SIDES:
        assert services[side]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("side", WORKER_SIDES)
def test_workers_scale_with_replicas_and_wait_for_healthy_services(side: str) -> None:
    service = compose_file.services()[side]

    replicas = compose_file.interpolation(service["deploy"]["replicas"])
    assert replicas and replicas[0] == f"{side.upper()}_REPLICAS" and int(replicas[1]) >= 1
    assert {name: dependency["condition"] for name, dependency in service["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "rabbitmq": "service_healthy",
        "migrate": "service_completed_successfully",
    }


@pytest.mark.parametrize("side", WORKER_SIDES)
def test_worker_health_check_is_dualwrite_health_of_its_side(side: str) -> None:
    test = compose_file.services()[side]["healthcheck"]["test"]

    assert test == ["CMD", "dualwrite", "health", "--side", side]
    args = build_parser().parse_args(test[2:])
    assert (args.command, args.side) == ("health", side)


def test_each_side_has_its_own_database_created_by_the_postgres_init_script() -> None:
    services = compose_file.services()
    defaults = compose_file.resolved_environment(services["finance"])
    databases = {side: make_url(defaults[f"DUALWRITE_{side.upper()}_DB_URL"]).database for side in WORKER_SIDES}
    mounts = [volume.split(":") for volume in services["postgres"]["volumes"] if volume.startswith("./")]
    init_scripts = [REPO / source for source, target, *_ in mounts if target.startswith("/docker-entrypoint-initdb.d/")]

    assert len(set(databases.values())) == 3, f"the sides share a database: {databases}"
    assert init_scripts, "postgres mounts no init script"
    created = set(re.findall(r"CREATE DATABASE (\w+);", "".join(path.read_text() for path in init_scripts)))
    assert set(databases.values()) <= created


# -- the same commands, run as local processes ---------------------------------------------------


@pytest.mark.postgres
def test_compose_workers_carry_the_category_flow_as_local_processes(local_deployment: LocalDeployment, broker: Broker) -> None:
    deployment = local_deployment
    shared = finance_tables.shared_categories
    expense_categories = dataverse_tables.expense_categories
    services = compose_file.services()

    # Given the migrate service of compose.yaml, run to completion, and its three workers started as local processes
    migrated = deployment.run_process(*compose_file.command_argv(services["migrate"])[1:])
    assert [(side["side"], side["before"]) for side in migrated["sides"]] == [(side, None) for side in ("dataverse", "bridge", "finance")]
    # And finance's companies loaded, as an operator does after the first deployment (USPM among them)
    assert deployment.run_cli("setup", str(REPO / "workers" / "demo_data" / "setup.yaml"))["legal_entities"] == 2
    for side in WORKER_SIDES:
        deployment.start(side, compose_file.command_argv(services[side]))

    # When Dataverse gets a transaction category from upstream
    deployment.publish("create_transaction_categories", [{"category": "HOTEL", "name": "Hotel"}])

    # Then finance holds its four shared categories, one per transaction class
    deployment.wait_for("four shared categories in finance", lambda: len(deployment.rows("finance", select(shared.c.category))) >= 4)
    assert sorted(deployment.rows("finance", select(shared.c.category, shared.c.transaction_class))) == [
        ("HOTEL", "expense"),
        ("HOTEL", "fee"),
        ("HOTEL", "hour"),
        ("HOTEL", "item"),
    ]

    # When an operator enables it for expense and finance creates an expense category for USPM
    deployment.publish("enable_expense_on_shared_category", [{"category": "HOTEL", "expense_type": "hotel"}])
    deployment.wait_for(
        "HOTEL enabled for expense",
        lambda: deployment.rows("finance", select(shared.c.expense_type).where(shared.c.can_be_used_in_expense.is_(True))),
    )
    published = deployment.publish(
        "create_expense_categories",
        [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}],
        "--legal-entity",
        "USPM",
    )
    assert published["queue"] == "finance.commands"

    # Then Dataverse holds it for USPM only, carried by msdyn_expensecategories through the bridge
    held = deployment.wait_for(
        "Dataverse holds the USPM expense category",
        lambda: deployment.rows(
            "dataverse",
            select(
                expense_categories.c.legal_entity,
                expense_categories.c.expense_category,
                expense_categories.c.transaction_category,
                expense_categories.c.expense_type,
            ),
        ),
    )
    assert held == [("USPM", "HOTEL", "HOTEL", "hotel")]

    # And a publisher with nothing but a Redis or AMQP client is served too (the README's wire format)
    registry = default_registry()
    queue = publish_queue(registry.get("create_transaction_categories"))
    envelope = new_envelope(
        contract="create_transaction_categories",
        version=1,
        source=Side.UPSTREAM,
        payload={"rows": [{"category": "AIRFARE", "name": "Airfare"}]},
        correlation_id=f"e2e:plain-{broker.name}-publisher",
    )
    body = envelope.model_dump_json()
    broker.publish_plain(body, queue.name, queue.actor_name, signature_options(deployment.keys_dir, "project-operations", body))
    deployment.wait_for(
        "finance holds AIRFARE's four shared categories",
        lambda: len(deployment.rows("finance", select(shared.c.category).where(shared.c.category == "AIRFARE"))) == 4,
    )

    # And no side dead-lettered anything on the way, and each worker's health check passes
    for side, tables in SIDE_TABLES.items():
        dead_letters = tables.messaging.dead_letters
        assert deployment.rows(side, select(dead_letters.c.error_type, dead_letters.c.error)) == [], f"{side} dead-lettered"
    healthy = deployment.health_checks({side: services[side]["healthcheck"]["test"] for side in WORKER_SIDES})
    assert all(healthy[side].endswith("\nhealthy") for side in WORKER_SIDES), healthy

    # When the workers get SIGTERM, as `docker compose stop` sends it; then each exits 0
    statuses = deployment.terminate()
    logs = {worker.side: worker.log_tail() for worker in deployment.workers}
    assert statuses == {side: 0 for side in WORKER_SIDES}, logs
