"""``dualwrite ARGS`` run in the test process, as an operator's shell would run it, without a new interpreter.

A ``python -m workers`` process costs a second or more of imports (several on a busy machine) and
proves nothing more about a command than ``workers.cli.main`` does: ``workers/__main__.py`` is
``sys.exit(main())``. The real entry point keeps its own process tests (exit statuses and a clean
stderr in tests/unit/workers/cli/test_bad_input.py, the workers' processes in tests/e2e and
tests/integration/test_worker_connect.py, signals in tests/unit/workers/test_stop_signals.py).

What a fresh process would start from is set up for the command and put back afterwards:

- the environment holds exactly the ``DUALWRITE_*`` variables given (none inherited from the test run);
- no secret is remembered for redaction, and no logging handler is installed (a command that sets
  logging up installs its own, writing to the command's stderr);
- what the command writes on stdout and stderr is captured, and given back as a ``CompletedProcess``
  like ``subprocess.run``'s; what other threads of this process write meanwhile (the workers a test
  runs here, logging as they apply messages) is not the command's output and goes where it went before.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TextIO

import pytest

from shared.redaction import forget_secrets
from shared.settings import Settings
from workers.cli import main

SIDES = ("finance", "dataverse", "bridge")


def operator_environment(settings: Settings) -> dict[str, str]:
    """The ``DUALWRITE_*`` variables an operator sets to reach the broker and databases of ``settings``."""
    environment = {"DUALWRITE_BROKER_URL": settings.broker_url, "DUALWRITE_DATA_DIR": str(settings.data_dir)}
    for side in SIDES:
        url = getattr(settings, f"{side}_db_url")
        if url:
            environment[f"DUALWRITE_{side.upper()}_DB_URL"] = url
    return environment


class _ThisThread(io.TextIOBase):
    """A stream for ``sys.stdout`` or ``sys.stderr``: this thread's writes to ``mine``, other threads' to ``others``."""

    def __init__(self, mine: io.StringIO, others: TextIO) -> None:
        self.mine, self.others, self.thread = mine, others, threading.get_ident()

    def _target(self) -> TextIO:
        return self.mine if threading.get_ident() == self.thread else self.others

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()


def run_dualwrite(
    argv: Sequence[str], environment: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``dualwrite ARGV`` with exactly the ``DUALWRITE_*`` of ``environment`` (other variables are
    ignored), in the working folder ``cwd`` when given; its status and output."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("DUALWRITE_")]:
            patch.delenv(name)
        for name, value in environment.items():
            if name.startswith("DUALWRITE_"):
                patch.setenv(name, value)
        if cwd is not None:  # the default data folder (.dualwrite: SQLite files, development keys) is under it
            patch.chdir(cwd)
        forget_secrets()
        root.handlers[:] = []  # as in a fresh process: a command that logs sets its own handler up
        try:
            with redirect_stdout(_ThisThread(out, sys.stdout)), redirect_stderr(_ThisThread(err, sys.stderr)):
                try:
                    status = main(list(argv))
                except SystemExit as exit:  # argparse's own refusals
                    status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        finally:
            root.handlers[:], root.level = handlers, level
            forget_secrets()
    return subprocess.CompletedProcess(["dualwrite", *argv], int(status), out.getvalue(), err.getvalue())
