"""Every command, given bad input, says what is wrong in one line and exits with the documented status.

No traceback, ever: not for a file that is missing, a folder, not UTF-8, not a mapping; not for an
option out of range or of the wrong shape (``--legal-entity 'US PM'``, ``--timeout nan``); not for a
``DUALWRITE_*`` setting that is malformed. The statuses are those of workers/cli/exit_codes.py and
the README: 2 for the command line, 3 for an input document, 5 for the configuration.

No server is needed: the embedded SQLite files of a temporary folder, and a broker URL on a closed
port for the commands that refuse the embedded broker before they look at their input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workers.cli import main
from workers.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[4]
#: A broker nobody listens on: the commands below refuse their input before they would connect.
CLOSED_BROKER = {"DUALWRITE_BROKER_URL": "redis://127.0.0.1:1/0"}
USAGE, INVALID, CONFIGURATION = ExitCode.USAGE, ExitCode.INVALID_INPUT, ExitCode.CONFIGURATION


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    status: ExitCode
    says: str
    env: dict[str, str] = field(default_factory=dict)


def files(folder: Path) -> dict[str, str]:
    """Input files of every kind a command may be handed, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "categories.json": '{"rows": [{"category": "HOTEL", "name": "Hotel"}]}',
        "expense_categories.json": '{"rows": [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}]}',
        "broken.json": '{"rows": [',
        "list.json": "[1, 2]",
        "list.yaml": "- a\n- b\n",
        "string.yaml": '"just words"\n',
        "empty.yaml": "",
        "broken.yaml": "legal_entities: [\n",
        "a_file": "not a folder",
    }
    for name, text in written.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "latin1.json").write_bytes('{"rows": [{"name": "Caf\u00e9"}]}'.encode("latin-1"))
    (folder / "latin1.yaml").write_bytes("legal_entities: Caf\u00e9\n".encode("latin-1"))
    return {name: str(folder / name) for name in [*written, "latin1.json", "latin1.yaml"]} | {
        "missing": str(folder / "missing.json"),
        "folder": str(folder),
    }


PUBLISH = ("publish", "create_transaction_categories")

#: ``@name`` in an argument stands for the input file of that name (see :func:`files`).
CASES: dict[str, Case] = {
    # -- the command line itself
    "no command": Case((), USAGE, "required"),
    "unknown command": Case(("nope",), USAGE, "invalid choice"),
    # -- publish: the document
    "publish a missing file": Case((*PUBLISH, "@missing"), INVALID, "cannot read"),
    "publish a folder": Case((*PUBLISH, "@folder"), INVALID, "Is a directory"),
    "publish a file not UTF-8": Case((*PUBLISH, "@latin1.json"), INVALID, "not UTF-8"),
    "publish malformed JSON": Case((*PUBLISH, "@broken.json"), INVALID, "not valid JSON"),
    "publish a JSON list": Case((*PUBLISH, "@list.json"), INVALID, "must be a JSON object"),
    "publish an unknown contract": Case(("publish", "create_unicorns", "@categories.json"), INVALID, "unknown contract"),
    # -- publish: the options
    "publish --legal-entity with a space": Case(
        ("publish", "create_expense_categories", "@expense_categories.json", "--legal-entity", "US PM"), USAGE, "--legal-entity"
    ),
    "publish --correlation-id too long": Case((*PUBLISH, "@categories.json", "--correlation-id", "x" * 201), USAGE, "--correlation-id"),
    "publish --version 0": Case((*PUBLISH, "@categories.json", "--version", "0"), USAGE, "--version"),
    "publish --version not a number": Case((*PUBLISH, "@categories.json", "--version", "one"), USAGE, "--version"),
    "publish --message-id not a UUID": Case((*PUBLISH, "@categories.json", "--message-id", "42"), USAGE, "--message-id"),
    # -- setup: the document
    "setup a missing file": Case(("setup", "@missing"), INVALID, "cannot read"),
    "setup a folder": Case(("setup", "@folder"), INVALID, "Is a directory"),
    "setup a file not UTF-8": Case(("setup", "@latin1.yaml"), INVALID, "not UTF-8"),
    "setup YAML that is a list": Case(("setup", "@list.yaml"), INVALID, "must be a mapping"),
    "setup YAML that is a string": Case(("setup", "@string.yaml"), INVALID, "must be a mapping"),
    "setup an empty file": Case(("setup", "@empty.yaml"), INVALID, "must be a mapping"),
    "setup malformed YAML": Case(("setup", "@broken.yaml"), INVALID, "not valid YAML"),
    "setup malformed JSON": Case(("setup", "@broken.json"), INVALID, "not valid JSON"),
    # -- worker
    "worker of no side": Case(("worker", "accounts"), USAGE, "invalid choice"),
    "worker --threads 0": Case(("worker", "finance", "--threads", "0"), USAGE, "--threads"),
    "worker --processes 1000": Case(("worker", "finance", "--processes", "1000"), USAGE, "--processes"),
    "worker --threads not a number": Case(("worker", "finance", "--threads", "many"), USAGE, "--threads"),
    # -- demo
    "demo --log-level unknown": Case(("demo", "--log-level", "LOUD"), USAGE, "--log-level"),
    "demo --data-dir a file": Case(("demo", "--data-dir", "@a_file"), USAGE, "not a folder"),
    # -- queues
    "queues --watch 0": Case(("queues", "--watch", "0"), USAGE, "--watch"),
    "queues --watch -1": Case(("queues", "--watch", "-1"), USAGE, "--watch"),
    "queues --watch nan": Case(("queues", "--watch", "nan"), USAGE, "--watch"),
    "queues --watch inf": Case(("queues", "--watch", "inf"), USAGE, "--watch"),
    # -- maps
    "maps log of no map": Case(("maps", "log", "nope"), USAGE, "no table map named 'nope'"),
    "maps log --limit 0": Case(("maps", "log", "msdyn_expensecategories", "--limit", "0"), USAGE, "--limit"),
    "maps pause of no map": Case(("maps", "pause", "nope"), USAGE, "no table map"),
    "maps resume --timeout nan": Case(("maps", "resume", "msdyn_expensecategories", "--wait", "--timeout", "nan"), USAGE, "--timeout"),
    "maps resume --timeout -1": Case(("maps", "resume", "msdyn_expensecategories", "--timeout", "-1"), USAGE, "--timeout"),
    "maps activate --version 0": Case(("maps", "activate", "msdyn_expensecategories", "--version", "0"), USAGE, "no version 0"),
    "maps activate --version 99": Case(("maps", "activate", "msdyn_expensecategories", "--version", "99"), USAGE, "no version 99"),
    "maps initial-sync without --master": Case(("maps", "initial-sync", "msdyn_expensecategories"), USAGE, "--master"),
    "maps initial-sync --master of no side": Case(("maps", "initial-sync", "msdyn_expensecategories", "--master", "hr"), USAGE, "invalid choice"),
    "maps initial-sync --page-size 0": Case(
        ("maps", "initial-sync", "msdyn_expensecategories", "--master", "finance", "--page-size", "0"), USAGE, "--page-size"
    ),
    "maps initial-sync --timeout inf": Case(
        ("maps", "initial-sync", "msdyn_expensecategories", "--master", "finance", "--timeout", "inf"), USAGE, "--timeout"
    ),
    # -- the other operator commands
    "audit --limit 0": Case(("audit", "--limit", "0"), USAGE, "--limit"),
    "audit --limit not a number": Case(("audit", "--limit", "ten"), USAGE, "--limit"),
    "jobs --status unknown": Case(("jobs", "--status", "lost"), USAGE, "invalid choice"),
    "jobs retry of nothing": Case(("jobs", "retry"), USAGE, "--failed"),
    "trace of an unknown id": Case(("trace", "R-NOPE-404"), INVALID, "R-NOPE-404"),
    "db upgrade --side unknown": Case(("db", "upgrade", "--side", "hr"), USAGE, "invalid choice"),
    "health --side unknown": Case(("health", "--side", "hr"), USAGE, "invalid choice"),
    "contracts export --dir a file": Case(("contracts", "export", "--dir", "@a_file"), USAGE, "not a folder"),
    # -- bench (refused before it touches a server)
    "bench --reports 0": Case(("bench", "--reports", "0"), USAGE, "--reports"),
    "bench --timeout nan": Case(("bench", "--timeout", "nan"), USAGE, "--timeout"),
    "bench --redis-url with a bad port": Case(("bench", "--redis-url", "redis://127.0.0.1:port/13"), USAGE, "--redis-url"),
    "bench --postgres-url not PostgreSQL": Case(("bench", "--postgres-url", "mysql://root@127.0.0.1/x"), USAGE, "--postgres-url"),
    "bench --worker-log-level unknown": Case(("bench", "--worker-log-level", "LOUD"), USAGE, "--worker-log-level"),
    # -- DUALWRITE_* settings
    "a broker URL of another scheme": Case(("queues",), CONFIGURATION, "DUALWRITE_BROKER_URL", {"DUALWRITE_BROKER_URL": "ftp://host/x"}),
    "a broker URL with a bad port": Case(
        ("queues",), CONFIGURATION, "DUALWRITE_BROKER_URL", {"DUALWRITE_BROKER_URL": "redis://127.0.0.1:port/0"}
    ),
    "an AMQP URL with a bad option": Case(
        ("queues",), CONFIGURATION, "DUALWRITE_BROKER_URL", {"DUALWRITE_BROKER_URL": "amqp://127.0.0.1/%2F?heartbeat=often"}
    ),
    "a database URL that is no URL": Case(
        ("db", "status"), CONFIGURATION, "DUALWRITE_FINANCE_DB_URL", {"DUALWRITE_FINANCE_DB_URL": "finance database"}
    ),
    "a database SQLAlchemy does not know": Case(
        ("db", "status"), CONFIGURATION, "DUALWRITE_BRIDGE_DB_URL", {"DUALWRITE_BRIDGE_DB_URL": "oracle2://db/x"}
    ),
    "threads that are not a number": Case(
        ("contracts", "list"), CONFIGURATION, "DUALWRITE_WORKER_THREADS", {"DUALWRITE_WORKER_THREADS": "many"}
    ),
    "an unknown log level": Case(("contracts", "list"), CONFIGURATION, "DUALWRITE_LOG_LEVEL", {"DUALWRITE_LOG_LEVEL": "LOUD"}),
    "a negative connect timeout": Case(
        ("contracts", "list"), CONFIGURATION, "DUALWRITE_CONNECT_TIMEOUT_SECONDS", {"DUALWRITE_CONNECT_TIMEOUT_SECONDS": "-1"}
    ),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A data folder whose SQLite databases are at head (so the commands reach their own checks), and the input files."""
    root = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as patch:
        _operator_environment(patch, root / "data")
        assert main(["db", "upgrade"]) == ExitCode.OK
    yield root / "data", files(root / "files")


def _operator_environment(patch: pytest.MonkeyPatch, data_dir: Path, extra: dict[str, str] | None = None) -> None:
    """Only the settings of the case: the data folder, a broker nobody listens on, quiet logs."""
    for name in [name for name in os.environ if name.startswith("DUALWRITE_")]:
        patch.delenv(name)
    patch.setenv("DUALWRITE_DATA_DIR", str(data_dir))
    patch.setenv("DUALWRITE_LOG_LEVEL", "WARNING")
    for name, value in {**CLOSED_BROKER, **(extra or {})}.items():
        patch.setenv(name, value)


def _argv(case: Case, inputs: dict[str, str]) -> list[str]:
    return [inputs[argument[1:]] if argument.startswith("@") else argument for argument in case.argv]


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_bad_input_is_one_clear_line_and_the_documented_status(
    name: str, workspace: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    data_dir, inputs = workspace
    _operator_environment(monkeypatch, data_dir, case.env)

    # When the command is run with the bad input
    try:
        status = main(_argv(case, inputs))
    except SystemExit as exit:  # argparse's own refusals
        status = exit.code
    out, err = capsys.readouterr()

    # Then it exits with the documented status and names the problem, without a traceback
    assert status == case.status, f"exit {status}, wanted {case.status}; stderr: {err}"
    assert case.says in err, err
    assert "Traceback" not in out + err and "unexpected error" not in err, err
    said = [line for line in err.splitlines() if line.startswith("dualwrite")]
    assert len(said) == 1, err


#: A few of the cases above, run as a person runs them: a process of its own, its whole stderr read.
IN_A_PROCESS = ["publish --legal-entity with a space", "setup a file not UTF-8", "queues --watch nan", "an AMQP URL with a bad option"]


@pytest.fixture(scope="module")
def in_a_process(workspace: tuple[Path, dict[str, str]]) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Each case of IN_A_PROCESS run as ``python -m workers ...``, all at once (each import takes a second or more)."""
    data_dir, inputs = workspace

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
        environment.update({"DUALWRITE_DATA_DIR": str(data_dir), "DUALWRITE_LOG_LEVEL": "WARNING", **CLOSED_BROKER, **case.env})
        return subprocess.run(
            [sys.executable, "-m", "workers", *_argv(case, inputs)],
            env=environment, cwd=REPO, capture_output=True, text=True, timeout=60,
        )

    with ThreadPoolExecutor(max_workers=len(IN_A_PROCESS)) as pool:
        yield {name: pool.submit(run, CASES[name]) for name in IN_A_PROCESS}


@pytest.mark.parametrize("name", IN_A_PROCESS, ids=IN_A_PROCESS)
def test_no_traceback_reaches_the_terminal(name: str, in_a_process: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    case = CASES[name]

    done = in_a_process[name].result()

    assert done.returncode == case.status, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and case.says in done.stderr, done.stderr
