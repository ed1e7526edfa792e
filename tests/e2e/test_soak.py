"""A short ``dualwrite soak`` on Redis and on RabbitMQ: every fault once, nothing lost, nothing doubled.

The command runs as an operator runs it (``python -m workers soak --json``): it starts a private
PostgreSQL cluster and a private Redis (AOF) or RabbitMQ node of its own, the three workers with
two processes each and the periodic repair, posts 2,000 expense lines over 30 seconds while a
worker group and a worker process are SIGKILLed, the broker is restarted, three queued messages
are taken off the broker, PostgreSQL is restarted and every database connection is terminated,
then checks every document hop by hop. The test asserts the command's verdict and the figures
under it: each fault injected and recovered, every hop holding each business key exactly once,
reconcile ok in every legal entity, no dead letter.

The machine's shared servers are not used (so nothing here needs DUALWRITE_TEST_* URLs); a
machine without the server binaries skips, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable
from workers.cli.exit_codes import ExitCode

#: In the default run (CI's ./scripts/test -q); `-m scale` selects the process-level tests alone.
pytestmark = pytest.mark.scale

REPOSITORY = Path(__file__).resolve().parents[2]
LINES = 2_000
#: The command's own deadlines (set-up waits, --timeout) end it long before this on a loaded machine.
COMMAND_TIMEOUT = 900
SHORT_SOAK = [
    "--lines", str(LINES), "--duration", "30",
    "--kills", "2", "--broker-restarts", "1", "--broker-losses", "1", "--db-restarts", "1", "--connection-kills", "1",
    "--timeout", "300", "--json",
]
FAULTS = {"kill": 2, "broker-restart": 1, "broker-loss": 1, "db-restart": 1, "conn-kill": 1}


def soak(broker: str) -> tuple[int, dict, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    done = subprocess.run(
        [sys.executable, "-m", "workers", "soak", "--broker", broker, *SHORT_SOAK],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )
    if done.returncode == ExitCode.UNAVAILABLE:
        unavailable(f"the soak's private servers ({broker})", RuntimeError(done.stderr.strip().splitlines()[-1]))
    try:
        result = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"soak exited {done.returncode} without its JSON:\n{done.stderr[-6000:]}", pytrace=False)
    return done.returncode, result, done.stderr


@pytest.mark.parametrize("broker", [pytest.param("redis", id="redis"), pytest.param("amqp", id="rabbitmq")])
def test_a_short_soak_loses_and_doubles_nothing_through_every_fault(broker: str) -> None:
    # Given the flow on private servers, when every kind of fault strikes while reports are posted
    status, result, progress = soak(broker)
    context = f"{json.dumps({k: result[k] for k in ('table', 'faults', 'hops', 'dead_letters', 'unexpected_exits', 'notes')}, indent=1)}\n{progress[-4000:]}"

    # Then every fault was injected and recovered from
    injected = {kind: sum(1 for f in result["faults"] if f["kind"] == kind and f["error"] is None) for kind in FAULTS}
    assert injected == FAULTS, context
    assert all(f["recovery_seconds"] is not None for f in result["faults"]), context
    assert {row["kind"]: (row["injected"], row["lost"], row["doubled"]) for row in result["table"]} == {
        kind: (count, 0, 0) for kind, count in FAULTS.items()
    }, context

    # and every document went all the way, each business key exactly once at every hop
    assert result["finished"] and result["expected_lines"] == LINES, context
    assert (result["lost_lines"], result["doubled_lines"]) == (0, 0), context
    for hop in result["hops"]:
        assert hop["ok"] and hop["found"] == hop["expected"] and hop["missing"] == hop["doubled"] == 0, context
    hops = {hop["hop"]: hop["expected"] for hop in result["hops"]}
    assert hops["expense records"] == hops["cost actuals"] == LINES, context
    assert hops["project transactions"] == LINES + hops["sales actuals"], context

    # and both sides agree to the cent in every legal entity, nothing was dead-lettered
    assert result["reconcile_ok"] and len(result["reconciliation"]) == 3, context
    assert sum(company["counts"]["project_cost_transactions"] for company in result["reconciliation"]) == LINES, context
    assert result["dead_letters"] == [], context

    # and the command's verdict says the same
    assert status == ExitCode.OK and result["ok"] is True, context
