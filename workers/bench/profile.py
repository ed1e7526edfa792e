"""``--profile``: py-spy on every worker process through the throughput phase, and what it found.

py-spy attaches to each running worker (``py-spy record --pid PID --subprocesses --function
--gil --format raw``), samples it from outside the process (100 times a second) and writes, on
SIGINT, one line per distinct stack: ``frame;frame;...;frame COUNT``. ``--gil`` keeps only the
thread holding the GIL: the time a process spends running Python (py-spy's own idle detection
took threads blocked in a socket read, ``Condition.wait`` or libpq's wait for busy ones here, and
they drowned everything else). C code that releases the GIL (libpq's I/O) is not seen. With
``--subprocesses`` each stack starts with the process that took it (``process PID:"command"``),
so a worker run with ``--processes`` > 1 is shown process by process. Own time of a function =
the samples with it at the top of the stack; ``--function`` names a function by its first line.

Attaching needs ptrace rights over the workers: root, or ``kernel.yama.ptrace_scope`` 0, or
CAP_SYS_PTRACE. A py-spy that could not attach is reported in the summary; the run goes on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Samples per second of each py-spy.
RATE = 100
#: Functions shown per process.
TOP = 15

_PROCESS_FRAME = re.compile(r'process (\d+):"')


def find_py_spy() -> str | None:
    """py-spy beside this Python (a virtual environment's bin) or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def split_stack(line: str) -> tuple[list[int], list[str], int] | None:
    """One raw line: (the pids of its ``process`` frames, outermost first; its function frames; its count).

    A process frame quotes the process's command line, which may hold ``;`` (``-c "import a;a.b()"``).
    """
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    pids = []
    while (match := _PROCESS_FRAME.match(stack)) is not None:
        end = stack.find('";', match.end())
        if end == -1:  # a process frame with no function under it
            stack = ""
            pids.append(int(match[1]))
            break
        pids.append(int(match[1]))
        stack = stack[end + 2 :]
    frames = [frame for frame in stack.split(";") if frame]
    return pids, frames, int(count)


def own_time(lines: Iterable[str], default_pid: int) -> dict[int, Counter[str]]:
    """Samples per process (its pid), per function at the top of the stack."""
    found: dict[int, Counter[str]] = {}
    for line in lines:
        parsed = split_stack(line)
        if parsed is None:
            continue
        pids, frames, count = parsed
        pid = pids[-1] if pids else default_pid
        found.setdefault(pid, Counter())[frames[-1] if frames else "(no Python frame)"] += count
    return found


@dataclass
class ProcessProfile:
    role: str
    pid: int
    samples: int
    #: (function, samples), most first.
    top: list[tuple[str, int]]

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "pid": self.pid,
            "samples": self.samples,
            "gil_seconds_sampled": round(self.samples / RATE, 2),
            "top_own_time": [
                {"function": function, "samples": count, "share": round(count / self.samples, 4) if self.samples else 0.0}
                for function, count in self.top
            ],
        }


def profiles_of(raw: Iterable[str], worker_pid: int, roles: Mapping[int, str], top: int = TOP) -> list[ProcessProfile]:
    """The profile of each process py-spy sampled under one worker, with the role the bench gives it."""
    shown = []
    for pid, counts in sorted(own_time(raw, worker_pid).items()):
        shown.append(ProcessProfile(roles.get(pid, f"process {pid}"), pid, sum(counts.values()), counts.most_common(top)))
    return shown


@dataclass
class Profiler:
    """One py-spy per worker process, from :meth:`start` to :meth:`stop`."""

    directory: Path
    py_spy: str
    #: (side, pid) of each worker the bench started.
    workers: list[tuple[str, int]]
    running: dict[str, tuple[subprocess.Popen[bytes], Path, Path, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for side, pid in self.workers:
            output = self.directory / f"{side}.pyspy.txt"
            log = self.directory / f"{side}.pyspy.log"
            command = [
                self.py_spy, "record", "--pid", str(pid), "--subprocesses", "--function", "--gil",
                "--rate", str(RATE), "--format", "raw", "--output", str(output),
            ]
            with log.open("wb") as log_file:
                process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            self.running[side] = (process, output, log, pid)

    def failed_to_attach(self) -> list[str]:
        """The sides whose py-spy exited already (it could not attach)."""
        return [side for side, (process, _, _, _) in self.running.items() if process.poll() is not None]

    def stop(self, roles: Mapping[int, str]) -> dict[str, Any]:
        """Stop every py-spy (SIGINT: it writes its file), read the files; the profile section of the result."""
        for process, _, _, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        found: list[dict[str, Any]] = []
        for side, (process, output, log, pid) in self.running.items():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if not output.is_file():
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
                self.problems.append(f"{side}: py-spy wrote no profile (exit {process.returncode}): {' '.join(tail)}")
                continue
            with output.open(errors="replace") as raw:
                for each in profiles_of(raw, pid, roles):
                    found.append({"side": side, "file": str(output), **each.as_json()})
        return {"tool": "py-spy", "rate": RATE, "phase": "throughput", "only": "the thread holding the GIL", "directory": str(self.directory), "processes": found, "problems": self.problems}

    def kill(self) -> None:
        """Stop whatever still runs (clean-up after a failure)."""
        for process, _, _, _ in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
