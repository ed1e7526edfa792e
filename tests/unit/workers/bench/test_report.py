"""Options, targets and the summary of a bench run."""

from __future__ import annotations

import pytest

from workers.bench.measure import ProcessMemory
from workers.bench.options import BadOptions, BenchOptions
from workers.bench.report import BenchResult, targets, summary


def test_defaults_are_valid_and_name_throwaway_databases() -> None:
    options = BenchOptions().check()

    assert options.expected_lines == 1000 * 25
    assert options.database_url("finance") == "postgresql://postgres@127.0.0.1:5432/dualwrite_bench_finance"
    assert options.database_url("bridge").endswith("/dualwrite_bench_bridge")


def test_embedded_broker_is_refused_with_the_reason() -> None:
    with pytest.raises(BadOptions, match="refuses the embedded broker"):
        BenchOptions(redis_url="embedded://").check()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"redis_url": "amqp://guest@localhost//"}, "Redis only"),
        ({"postgres_url": "sqlite:///x.db"}, "postgresql"),
        ({"reports": 0}, "--reports"),
        ({"lines": 1001}, "--lines"),
        ({"legal_entities": 9}, "--legal-entities"),
        ({"threads": 0}, "--threads"),
        ({"import_interval": 0}, "--import-interval"),
    ],
)
def test_options_out_of_range_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(BadOptions, match=message):
        BenchOptions(**changes).check()


def test_password_is_hidden_in_the_json_but_kept_for_the_workers() -> None:
    options = BenchOptions(postgres_url="postgresql://bench:secret@db:5432/postgres")

    assert "secret" not in str(options.as_json())
    assert "secret" in options.database_url("finance")


def _memory(*peaks_kib: int) -> list[ProcessMemory]:
    return [ProcessMemory(f"w{n}", n, peak, "python") for n, peak in enumerate(peaks_kib)]


def test_targets_pass_and_miss() -> None:
    met = targets(1200.0, 450.0, _memory(100_000, 120_000))
    missed = targets(999.0, 1000.0, _memory(100_000, 150_000))

    assert [t.met for t in met] == [True, True, True]
    assert [t.met for t in missed] == [False, False, False]
    assert missed[2].measured == "153.6 MB (w1)"


def test_no_light_phase_is_not_judged() -> None:
    assert [t.name for t in targets(1000.0, None, [])] == ["expense lines per second, end to end"]


def test_summary_shows_every_figure_and_the_verdicts() -> None:
    latency = {"count": 200, "p50_ms": 800.0, "p95_ms": 1500.0, "p99_ms": 1700.0, "max_ms": 1800.0, "min_ms": 100.0}
    result = BenchResult(
        command="dualwrite bench",
        options=BenchOptions().as_json(),
        companies=["USPM (USD)", "DEMF (EUR)", "GBPS (GBP)"],
        projects=12,
        billable_projects=6,
        baseline={"messages": 20_000, "threads": 8, "seconds": 10.0, "messages_per_second": 2000.0},
        throughput={
            "expense_lines": 5000, "seconds": 5.0, "lines_per_second": 1000.0, "pipeline_seconds": 4.9, "latency_ms": latency,
            "cpu_seconds": {"workers": 7.0, "bench": 0.2, "postgres": 2.0, "redis": 0.3, "total": 9.5, "per_1000_lines": 1.9,
                            "capacity_lines_per_second": 1053.0},
        },
        light={"reports": 30, "latency_ms": {**latency, "count": 30, "p99_ms": 600.0}},
        memory=_memory(100_000),
        reconciliation=[],
    )
    result.targets = targets(1000.0, 600.0, result.memory)
    result.machine = {"cpus": 2, "load_start": 0.5, "load_end": 1.25}

    text = "\n".join(summary(result))

    assert result.ratio == 0.5
    assert "1,000 expense lines/s end to end" in text
    assert "p99 1,700 ms" in text and "p99 600 ms" in text
    assert "2,000 messages/s" in text and "= 0.50" in text
    assert "every 0.1 s" in text and "one post message per report" in text
    assert "2 CPUs; load average 0.50 at start, 1.25 at end" in text
    assert "= 9.5 CPU-s, 1.90 s per 1,000 lines: 2 otherwise idle CPUs could carry about 1,053 lines/s" in text
    assert text.count("PASS") == 3
    assert result.as_json()["all_targets_met"] is True
