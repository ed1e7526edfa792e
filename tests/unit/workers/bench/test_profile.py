"""py-spy's raw stacks read into each worker process's top functions by own time."""

from __future__ import annotations

from workers.bench.noop import ACKED, AckCounter, acked_at
from workers.bench.profile import own_time, profiles_of, split_stack

RAW = [
    '<module> (workers/__main__.py:1);main (workers/cli/__init__.py:60);handle (shared/consumer.py:10) 7\n',
    '<module> (workers/__main__.py:1);main (workers/cli/__init__.py:60);validate (pydantic/main.py:748) 5\n',
    '<module> (workers/__main__.py:1);handle (shared/consumer.py:10);validate (pydantic/main.py:748) 4\n',
    "garbage\n",
    "\n",
]

SUBPROCESSES = [
    'process 100:"python -m workers worker finance --processes 2";process 101:"python -B -c from multiprocessing.spawn import spawn_main; '
    'spawn_main(tracker_fd=4)";<module> (<string>:1);handle (shared/consumer.py:10) 3\n',
    'process 100:"python -m workers worker finance --processes 2";process 102:"python -B -c import a;a.b()";f (x.py:1) 2\n',
    'process 100:"python -m workers worker finance --processes 2";sigwait (signal.py:80) 1\n',
]


def test_a_raw_line_is_its_processes_its_frames_and_its_count() -> None:
    assert split_stack("a (x.py:1);b (y.py:2) 12\n") == ([], ["a (x.py:1)", "b (y.py:2)"], 12)
    assert split_stack(SUBPROCESSES[1]) == ([100, 102], ["f (x.py:1)"], 2)
    assert split_stack('process 7:"python -c x;y" 4') == ([7], [], 4)
    assert split_stack("no count here") is None


def test_own_time_is_the_top_frame_per_process() -> None:
    counts = own_time(RAW, default_pid=42)

    assert list(counts) == [42]
    assert counts[42].most_common() == [("validate (pydantic/main.py:748)", 9), ("handle (shared/consumer.py:10)", 7)]


def test_each_process_of_a_worker_is_profiled_on_its_own() -> None:
    profiles = profiles_of(SUBPROCESSES, 100, {100: "finance supervisor", 101: "finance process 101"})

    assert [(p.role, p.pid, p.samples, p.top) for p in profiles] == [
        ("finance supervisor", 100, 1, [("sigwait (signal.py:80)", 1)]),
        ("finance process 101", 101, 3, [("handle (shared/consumer.py:10)", 3)]),
        ("process 102", 102, 2, [("f (x.py:1)", 2)]),
    ]
    shown = profiles[1].as_json()
    assert shown["gil_seconds_sampled"] == 0.03
    assert shown["top_own_time"] == [{"function": "handle (shared/consumer.py:10)", "samples": 3, "share": 1.0}]


def test_top_is_cut_at_fifteen() -> None:
    raw = [f"f{n} (m.py:{n}) {100 - n}\n" for n in range(20)]

    (profile,) = profiles_of(raw, 1, {1: "bridge"})

    assert len(profile.top) == 15 and profile.top[0] == ("f0 (m.py:0)", 100)
    assert profile.samples == sum(100 - n for n in range(20))


def test_the_noop_worker_says_when_it_acked_every_message(capsys) -> None:  # noqa: ANN001
    counter = AckCounter(3)
    for _ in range(4):
        counter.after_ack(None, None)  # type: ignore[arg-type]

    printed = capsys.readouterr().out
    assert printed.startswith(f"{ACKED} 3 ") and printed.count("\n") == 1
    assert acked_at("noop worker ready\n" + printed, 3) == float(printed.split()[2])
    assert acked_at("noop worker ready\nACKED 2 17.5\n", 3) is None
