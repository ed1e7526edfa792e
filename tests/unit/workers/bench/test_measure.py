"""Percentiles, per-report latency and peak memory, as the bench computes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.bench.measure import (
    LatencySummary,
    RssSamples,
    cpu_percent,
    cpu_snapshot,
    cpu_used,
    descendants,
    parent_pid,
    percentile,
    process_cpu_ticks,
    process_memory,
    read_rss,
    report_latencies,
    stat_cpu_ticks,
    value_at,
    vm_hwm_kib,
    vm_rss_kib,
    worker_processes,
)


@pytest.mark.parametrize(
    ("p", "expected"),
    [(50, 50), (95, 95), (99, 99), (100, 100), (1, 1), (0.5, 1)],
)
def test_nearest_rank_percentile_of_1_to_100(p: float, expected: int) -> None:
    assert percentile(list(range(100, 0, -1)), p) == expected


def test_p99_of_few_values_is_the_largest() -> None:
    values = [0.1] * 29 + [0.9]

    assert percentile(values, 99) == 0.9
    assert percentile(values, 50) == 0.1


def test_percentile_of_one_value() -> None:
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("p", [0, -1, 101])
def test_percentile_out_of_range(p: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], p)


def test_percentile_of_nothing() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_in_milliseconds() -> None:
    summary = LatencySummary.of([0.2, 0.1, 0.4, 0.3])

    assert summary == LatencySummary(count=4, p50_ms=200.0, p95_ms=400.0, p99_ms=400.0, max_ms=400.0, min_ms=100.0)


def test_report_latency_is_its_last_line_posted_minus_its_post() -> None:
    posted = [("T1-1", 10.5), ("T1-2", 11.0), ("T2-1", 10.2), ("T2-2", 10.4), ("X9-1", 50.0)]

    latencies = report_latencies(posted, {"T1": 10.0, "T2": 10.1}, lines_per_report=2)

    assert latencies == pytest.approx({"T1": 1.0, "T2": 0.3})


def test_report_with_a_line_missing_is_not_measured() -> None:
    assert report_latencies([("T1-1", 10.5)], {"T1": 10.0}, lines_per_report=2) == {}


STATUS = """Name:\tpython
VmPeak:\t  400000 kB
VmHWM:\t  101376 kB
VmRSS:\t   98000 kB
"""


def test_vm_hwm() -> None:
    assert vm_hwm_kib(STATUS) == 101376
    assert vm_hwm_kib("Name:\tkthreadd\n") is None


def test_parent_pid_with_spaces_and_parentheses_in_the_name() -> None:
    assert parent_pid("4242 (python (worker) 1) S 4200 4242 4242 0 -1") == 4200


def _fake_proc(root: Path, processes: dict[int, tuple[int, int]]) -> Path:
    for pid, (ppid, hwm) in processes.items():
        directory = root / str(pid)
        directory.mkdir()
        (directory / "stat").write_text(f"{pid} (python) S {ppid} {pid} {pid} 0 -1")
        (directory / "status").write_text(f"Name:\tpython\nVmHWM:\t  {hwm} kB\n")
        (directory / "cmdline").write_bytes(b"python\0-m\0workers\0")
    (root / "self").mkdir()
    return root


def test_descendants_and_their_memory(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, {100: (1, 50_000), 101: (100, 90_000), 102: (100, 95_000), 103: (101, 10_000), 200: (1, 1)})

    assert descendants(100, proc) == [101, 102, 103]
    memory = process_memory("finance", 100, proc)
    assert [(m.role, m.pid, m.peak_kib) for m in memory] == [
        ("finance supervisor", 100, 50_000),
        ("finance process 101", 101, 90_000),
        ("finance process 102", 102, 95_000),
        ("finance process 103", 103, 10_000),
    ]
    assert [m.role for m in process_memory("bridge", 200, proc)] == ["bridge"]
    assert memory[1].peak_mb == 92.2  # KiB * 1024 / 10^6


def test_cpu_ticks_are_user_plus_system_time() -> None:
    stat = "4242 (python (x)) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 9 0 100 0 0"

    assert stat_cpu_ticks(stat) == 300


def test_cpu_used_between_snapshots() -> None:
    used = cpu_used(
        {"workers": 10.0, "bench": 1.0, "postgres": 2.0, "redis": 5.0},
        {"workers": 19.0, "bench": 1.5, "postgres": 5.0, "redis": 5.5},
        lines=5000,
        cpus=2,
    )

    assert used == {
        "workers": 9.0, "bench": 0.5, "postgres": 3.0, "redis": 0.5,
        "total": 13.0, "per_1000_lines": 2.6, "capacity_lines_per_second": 769.0,
    }


def test_vm_rss() -> None:
    assert vm_rss_kib(STATUS) == 98000
    assert vm_rss_kib("Name:\tkthreadd\n") is None


def _with_ticks(proc: Path, pid: int, ppid: int, utime: int, stime: int, comm: str = "python", cmdline: bytes = b"python\0") -> None:
    directory = proc / str(pid)
    directory.mkdir(exist_ok=True)
    (directory / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194304 100 0 0 0 {utime} {stime} 0 0 20 0 9 0 100 0 0")
    (directory / "status").write_text(f"Name:\t{comm}\nVmHWM:\t  2000 kB\nVmRSS:\t  {pid} kB\n")
    (directory / "comm").write_text(f"{comm}\n")
    (directory / "cmdline").write_bytes(cmdline)


def test_the_broker_server_counted_is_the_runs(tmp_path: Path) -> None:
    _with_ticks(tmp_path, 10, 1, 300, 100, comm="redis-server")
    _with_ticks(tmp_path, 20, 1, 500, 500, comm="beam.smp")
    _with_ticks(tmp_path, 30, 1, 50, 50, cmdline=b"postgres: postgres dualwrite_bench_finance 127.0.0.1(5) idle\0")

    on_redis = cpu_snapshot([], tmp_path)
    on_rabbitmq = cpu_snapshot([], tmp_path, broker="rabbitmq")

    assert on_redis["redis"] == 4.0 and "rabbitmq" not in on_redis
    assert on_rabbitmq["rabbitmq"] == 10.0 and "redis" not in on_rabbitmq
    assert on_redis["postgres"] == on_rabbitmq["postgres"] == 1.0


def test_idle_cpu_is_a_percentage_of_one_core(tmp_path: Path) -> None:
    _with_ticks(tmp_path, 100, 1, 10, 5)
    before = process_cpu_ticks([("finance", 100), ("gone", 999)], tmp_path)
    _with_ticks(tmp_path, 100, 1, 14, 6)
    after = process_cpu_ticks([("finance", 100), ("gone", 999)], tmp_path)

    assert before == {"finance": 15, "gone": None}
    assert cpu_percent(before, after, 5.0, ticks_per_second=100) == {"finance": 1.0, "gone": None}
    assert cpu_percent({"finance": 15}, {"finance": 15}, 0.0) == {"finance": None}


def test_worker_processes_are_named_as_the_memory_line_names_them(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, {100: (1, 50_000), 101: (100, 90_000), 200: (1, 1)})

    assert worker_processes([("finance", 100), ("bridge", 200)], proc) == [
        ("finance supervisor", 100), ("finance process 101", 101), ("bridge", 200),
    ]


def test_rss_is_read_per_process(tmp_path: Path) -> None:
    _with_ticks(tmp_path, 300, 1, 0, 0)

    assert read_rss([("finance", 300), ("gone", 999)], tmp_path) == {"finance": 300, "gone": None}


def test_value_at_takes_the_nearest_sample_with_a_value() -> None:
    times = [0.0, 1.0, 2.0, 3.0]

    assert value_at(times, [10, 20, 30, 40], 1.4) == 20
    assert value_at(times, [10, 20, 30, 40], 1.5) == 20  # a tie: the earlier one
    assert value_at(times, [10, None, 30, 40], 0.9) == 10
    assert value_at(times, [10, None, 30, 40], 1.2) == 30
    assert value_at(times, [None, None, None, None], 1.0) is None


def test_rss_samples_show_10_50_and_90_percent_of_the_phase_and_the_peak() -> None:
    samples = RssSamples(1.0, pids={"finance": 1, "bridge": 3})
    for second in range(11):  # 0 .. 10 s: finance grows 1 MiB a second, bridge stays flat
        samples.add(float(second), {"finance": 100_000 + second * 1024, "bridge": 50_000})
    samples.add(10.5, {"finance": 95_000, "bridge": None})

    shown = samples.summary()

    assert list(shown) == ["finance", "bridge"]
    # 10.5 s: 10 % is the sample at 1 s, 50 % the one at 5 s, 90 % the one at 9 s
    assert shown["finance"] == {"p10_mb": 103.4, "p50_mb": 107.6, "p90_mb": 111.8, "peak_mb": 112.9}
    assert shown["bridge"] == {"p10_mb": 51.2, "p50_mb": 51.2, "p90_mb": 51.2, "peak_mb": 51.2}
    document = samples.as_json()
    assert (document["samples"], document["seconds"], document["interval_seconds"]) == (12, 10.5, 1.0)
    assert document["rss_kib"]["bridge"][-1] is None


def test_a_process_seen_late_has_no_value_before() -> None:
    samples = RssSamples(1.0)
    samples.add(0.0, {"finance": 1000})
    samples.add(1.0, {"finance": 1000, "finance process 7": 2000})

    assert samples.processes == {"finance": [1000, 1000], "finance process 7": [None, 2000]}
    assert RssSamples(1.0).summary() == {}
