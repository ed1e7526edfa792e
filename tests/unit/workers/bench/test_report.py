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


# -- RabbitMQ, the idle phase, resident memory, the initial sync, the profile ---------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"broker": "amqp", "amqp_url": "embedded://"}, "refuses the embedded broker"),
        ({"broker": "amqp", "amqp_url": "redis://127.0.0.1:6379/13"}, "amqp:// or amqps://"),
        ({"broker": "amqp", "amqp_url": "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=5"}, "takes no parameters"),
        ({"broker": "amqp", "amqp_url": "amqp://guest:guest@127.0.0.1:notaport"}, "not an AMQP URL"),
        ({"broker": "amqp", "amqp_url": "amqp://"}, "names no host"),
        ({"broker": "kafka"}, "--broker"),
        ({"idle_seconds": -1}, "--idle-seconds"),
        ({"idle_seconds": float("nan")}, "--idle-seconds"),
        ({"initial_sync": -1}, "--initial-sync"),
        ({"initial_sync_page_size": 1001}, "--initial-sync-page-size"),
    ],
)
def test_new_options_out_of_range_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(BadOptions, match=message):
        BenchOptions(**changes).check()


def test_amqp_url_is_checked_only_for_a_run_on_rabbitmq() -> None:
    assert BenchOptions(amqp_url="embedded://").check().broker == "redis"
    options = BenchOptions(broker="amqp", amqp_url="amqp://bench:hidden-pw@rabbit:5672").check()

    assert options.broker_label == "RabbitMQ" and BenchOptions().broker_label == "Redis"
    assert options.as_json()["amqp_url"] == "amqp://bench:***@rabbit:5672"
    assert "hidden-pw" not in str(options.as_json())


def _parse(*argv: str):  # noqa: ANN202
    from workers.cli import build_parser
    from workers.cli.bench_command import options_from

    return options_from(build_parser().parse_args(["bench", *argv]))


def test_command_line_defaults_are_the_options_defaults() -> None:
    assert _parse() == BenchOptions()


def test_command_line_new_options() -> None:
    options = _parse(
        "--broker", "amqp", "--amqp-url", "amqp://u:p@rabbit:5672", "--idle-seconds", "2.5", "--initial-sync", "20000",
        "--initial-sync-page-size", "1000", "--profile", "--profile-dir", "/tmp/profiles",
    )

    assert (options.broker, options.amqp_url, options.idle_seconds) == ("amqp", "amqp://u:p@rabbit:5672", 2.5)
    assert (options.initial_sync, options.initial_sync_page_size) == (20000, 1000)
    assert (options.profile, options.profile_dir) == (True, "/tmp/profiles")
    assert options.check() is options


def test_command_line_unknown_broker_is_a_usage_error(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as stopped:
        _parse("--broker", "kafka")

    assert stopped.value.code == 2
    assert "invalid choice: 'kafka'" in capsys.readouterr().err


def _result(broker: str = "redis") -> BenchResult:
    latency = {"count": 200, "p50_ms": 800.0, "p95_ms": 1500.0, "p99_ms": 1700.0, "max_ms": 1800.0, "min_ms": 100.0}
    cpu_key = "redis" if broker == "redis" else "rabbitmq"
    result = BenchResult(
        command="dualwrite bench",
        options=BenchOptions(broker=broker).as_json(),
        companies=["USPM (USD)"],
        projects=4,
        billable_projects=2,
        baseline={"messages": 20_000, "threads": 8, "seconds": 5.0, "messages_per_second": 4000.0},
        throughput={
            "expense_lines": 5000, "seconds": 5.0, "lines_per_second": 1000.0, "pipeline_seconds": 4.9, "latency_ms": latency,
            "cpu_seconds": {"workers": 7.0, "bench": 0.2, "postgres": 2.0, cpu_key: 0.8, "total": 10.0, "per_1000_lines": 2.0,
                            "capacity_lines_per_second": 1000.0},
        },
        light=None,
        memory=_memory(100_000),
        reconciliation=[],
    )
    result.machine = {"cpus": 2, "load_start": 0.5, "load_end": 1.25}
    if broker == "amqp":
        result.broker = {"kind": "amqp", "label": "RabbitMQ", "url": "amqp://guest:***@127.0.0.1:5672/dualwrite-bench-0123456789"}
    return result


def test_summary_on_rabbitmq_names_its_broker_everywhere() -> None:
    result = _result("amqp")
    result.targets = targets(1000.0, None, result.memory)

    text = "\n".join(summary(result))

    assert "on RabbitMQ amqp://guest:***@127.0.0.1:5672/dualwrite-bench-0123456789 and PostgreSQL" in text
    assert "PostgreSQL (bench databases) 2.0 s, RabbitMQ 0.8 s, bench 0.2 s = 10.0 CPU-s, 2.00 s per 1,000 lines" in text
    assert "same RabbitMQ: 20,000 messages in 5.00 s = 4,000 messages/s" in text
    assert "ratio       expense lines/s / no-op messages/s = 0.25 (both on RabbitMQ)" in text
    assert "Redis" not in text
    assert result.as_json()["broker"]["kind"] == "amqp"


def test_summary_on_redis_keeps_its_lines() -> None:
    result = _result()
    result.targets = targets(1000.0, None, result.memory)

    text = "\n".join(summary(result))

    assert "on redis://127.0.0.1:6379/13 and PostgreSQL" in text
    assert "Redis 0.8 s, bench 0.2 s" in text and "same Redis:" in text
    assert result.as_json()["broker"] == {"kind": "redis", "label": "Redis"}
    for new in ("rss", "idle", "initial_sync", "profile"):
        assert result.as_json()[new] is None
    assert not any(line.startswith(("rss", "idle", "initial sync", "profile")) for line in summary(result))


def test_idle_target_and_line() -> None:
    result = _result()
    result.idle = {
        "seconds": 5.0,
        "cpu_percent_of_one_core": {"finance": 1.2, "dataverse": 0.4, "bridge": None},
        "servers_cpu_percent_of_one_core": {"postgres": 0.3, "redis": 0.5},
    }
    result.targets = targets(1000.0, None, result.memory, {"finance": 1.2, "dataverse": 0.4, "bridge": None})
    missed = targets(1000.0, None, [], {"finance": 2.0, "dataverse": 0.4})

    text = "\n".join(summary(result))

    assert (
        "idle        5.0 s with every worker idle, CPU as % of one core: finance 1.2 %, dataverse 0.4 %, bridge ? % "
        "(target < 2 % each; Import from staging every 0.1 s); PostgreSQL (bench databases) 0.3 %, Redis 0.5 %"
    ) in text
    assert [(t.name, t.measured, t.met) for t in result.targets][-1] == ("idle CPU per worker process, % of a core", "1.2 % (finance)", True)
    assert (missed[-1].measured, missed[-1].met) == ("2.0 % (finance)", False)
    assert [t.name for t in targets(1000.0, None, [], {"finance": None})] == ["expense lines per second, end to end"]


def test_rss_lines() -> None:
    result = _result()
    result.rss = {
        "interval_seconds": 1.0, "samples": 26, "seconds": 25.3,
        "by_process": {
            "finance": {"p10_mb": 120.1, "p50_mb": 130.2, "p90_mb": 131.0, "peak_mb": 131.5},
            "dataverse": {"p10_mb": 100.0, "p50_mb": None, "p90_mb": 101.0, "peak_mb": 101.0},
        },
    }
    result.targets = targets(1000.0, None, result.memory)

    lines = summary(result)
    at = next(n for n, line in enumerate(lines) if line.startswith("rss"))

    assert lines[at] == (
        "rss         resident memory (VmRSS) sampled every 1 s through the throughput phase (26 samples over 25.3 s): "
        "at 10 % / 50 % / 90 % of it, and the largest sample"
    )
    assert lines[at + 1] == "              finance    120.1 / 130.2 / 131.0 MB, peak 131.5 MB"
    assert lines[at + 2] == "              dataverse  100.0 / ? / 101.0 MB, peak 101.0 MB"
    assert lines[at - 1].startswith("memory      peak resident (VmHWM)")


def test_initial_sync_lines() -> None:
    result = _result("amqp")
    result.initial_sync = {
        "table_map": "msdyn_transactioncategories", "master": "dataverse", "rows": 20_000, "page_size": 500,
        "seconds": 12.5, "rows_per_second": 1600.0, "settled_seconds": 12.7, "run": {"pages": 41},
        "cpu_seconds": {"workers": 9.0, "postgres": 3.0, "rabbitmq": 0.5, "bench": 0.1, "total": 12.6, "per_1000_rows": 0.63},
    }
    result.targets = targets(1000.0, None, result.memory)

    text = "\n".join(summary(result))

    assert (
        "initial sync msdyn_transactioncategories, 20,000 rows from dataverse in pages of 500: finance holds all after "
        "12.50 s = 1,600 rows/s (run finished in the bridge after 12.70 s; 41 pages)"
    ) in text
    assert "cpu: workers 9.0 s, PostgreSQL 3.0 s, RabbitMQ 0.5 s, bench 0.1 s = 12.6 CPU-s, 0.63 s per 1,000 rows" in text
    assert result.as_json()["initial_sync"]["rows_per_second"] == 1600.0


def test_profile_lines() -> None:
    result = _result()
    result.profile = {
        "tool": "py-spy", "rate": 100, "phase": "throughput", "directory": "/tmp/p",
        "processes": [
            {"side": "finance", "role": "finance", "pid": 42, "samples": 1234, "gil_seconds_sampled": 12.34, "file": "/tmp/p/finance.pyspy.txt",
             "top_own_time": [{"function": "validate (pydantic/main.py:748)", "samples": 123, "share": 0.0997}]},
        ],
        "problems": ["bridge: py-spy wrote no profile (exit 1): Permission denied"],
    }
    result.targets = targets(1000.0, None, result.memory)

    lines = summary(result)
    at = next(n for n, line in enumerate(lines) if line.startswith("profile"))

    assert "raw stacks in /tmp/p" in lines[at] and "top 15 functions by own time" in lines[at]
    assert lines[at + 1] == "  finance (pid 42): 1,234 samples = 12.3 s holding the GIL; /tmp/p/finance.pyspy.txt"
    assert lines[at + 2] == "     10.0 %      123  validate (pydantic/main.py:748)"
    assert lines[at + 3] == "  not profiled: bridge: py-spy wrote no profile (exit 1): Permission denied"
