"""A stop signal that lands just as a worker begins to wait for one still stops it (workers/stop_signals.py).

Each scenario runs in a process of its own: one thread sends SIGTERM to the process the moment the
main thread is about to wait, thousands of times over, while other threads churn the GIL as a
worker's consumer threads do. The handler-and-Event the workers used before hangs within a few
hundred rounds; ``sigwait`` on a blocked signal never does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 1000
#: No new round for this long: the main thread is stuck in its wait.
STUCK_SECONDS = 5.0
#: The scenario's first line (once it has imported and set up) may take this long on a busy machine.
STARTUP_SECONDS = 60.0

SCENARIO = r'''
import os, signal, sys, threading, time
from workers.stop_signals import STOP_SIGNALS, stop_signals_blocked, wait_for_stop_signal

def churn():
    total = 0
    while True:
        for i in range(2000):
            total += i
        time.sleep(0.0001)

def rounds(count, wait):
    for n in range(count):
        barrier = threading.Barrier(2)
        def send():
            barrier.wait()
            os.kill(os.getpid(), signal.SIGTERM)
        sender = threading.Thread(target=send)
        sender.start()
        barrier.wait()
        wait()
        sender.join()
        print(n, flush=True)
    print("done", flush=True)

def blocked_in_every_thread():
    wanted = sum(1 << (s - 1) for s in STOP_SIGNALS)
    for task in os.listdir("/proc/self/task"):
        status = open(f"/proc/self/task/{task}/status").read()
        mask = int(status.split("SigBlk:")[1].split()[0], 16)
        if mask & wanted != wanted:
            return False
    return True

mode, count = sys.argv[1], int(sys.argv[2])
if mode == "handler-and-event":
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    for _ in range(4):
        threading.Thread(target=churn, daemon=True).start()
    print("handler installed", flush=True)
    def wait_and_reset():
        stopping.wait()
        stopping.clear()
    rounds(count, wait_and_reset)
else:
    with stop_signals_blocked():
        for _ in range(4):
            threading.Thread(target=churn, daemon=True).start()
        print("blocked in every thread" if blocked_in_every_thread() else "some thread can take a stop signal", flush=True)
        rounds(count, wait_for_stop_signal)
'''


def run_rounds(mode: str, count: int) -> list[str]:
    """The scenario's output lines, up to where it finished or got stuck (then it is killed)."""
    repository = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", SCENARIO, mode, str(count)], cwd=repository, stdout=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        while True:
            # One round takes milliseconds: a line that does not come within STUCK_SECONDS never will
            # (the first comes once the interpreter has started, which a busy machine may take seconds to do).
            line = _readline_within(child, STUCK_SECONDS if lines else STARTUP_SECONDS)
            if line is None:
                break
            lines.append(line)
            if line == "done":
                break
    finally:
        child.kill()
        child.wait()
    return lines


def _readline_within(child: subprocess.Popen[str], seconds: float) -> str | None:
    import selectors

    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = child.stdout.readline()
                return line.strip() if line else None
    return None


def test_sigterm_sent_as_the_worker_begins_to_wait_always_ends_the_wait() -> None:
    lines = run_rounds("sigwait", ROUNDS)
    assert lines[0] == "blocked in every thread"
    assert lines[-1] == "done", f"stuck after {len(lines) - 1} of {ROUNDS} rounds"


def test_a_handler_setting_the_event_the_main_thread_waits_on_gets_stuck() -> None:
    """Why workers no longer stop this way: a few rounds in, a signal is lost or deadlocks the handler."""
    lines = run_rounds("handler-and-event", 20 * ROUNDS)
    assert lines[0] == "handler installed", lines
    assert lines[-1] != "done", "20,000 signals at the wait's doorstep, none lost: has CPython changed?"
