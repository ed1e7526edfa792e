"""The outcome of a run: figures, the targets beside them, the summary for people and the JSON document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.bench.measure import ProcessMemory
from workers.bench.profile import TOP as TOP_FUNCTIONS

TARGET_LINES_PER_SECOND = 1000.0
TARGET_LIGHT_P99_MS = 1000.0
TARGET_PEAK_MB = 150.0
TARGET_IDLE_CPU_PERCENT = 2.0

#: The broker's name and the key of its server's CPU in the figures, by ``--broker``.
BROKER_LABELS = {"redis": ("Redis", "redis"), "amqp": ("RabbitMQ", "rabbitmq")}


@dataclass(frozen=True)
class Target:
    name: str
    target: str
    measured: str
    met: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "measured": self.measured, "met": self.met}


def targets(
    lines_per_second: float,
    light_p99_ms: float | None,
    memory: list[ProcessMemory],
    idle_percent: Mapping[str, float | None] | None = None,
) -> list[Target]:
    """Each target with the measured figure and whether it was met (a light phase of 0 reports, or no
    idle phase, is not judged)."""
    found = [
        Target(
            "expense lines per second, end to end",
            f">= {TARGET_LINES_PER_SECOND:,.0f}/s",
            f"{lines_per_second:,.0f}/s",
            lines_per_second >= TARGET_LINES_PER_SECOND,
        )
    ]
    if light_p99_ms is not None:
        found.append(
            Target("p99 latency at light load", f"< {TARGET_LIGHT_P99_MS:,.0f} ms", f"{light_p99_ms:,.0f} ms", light_p99_ms < TARGET_LIGHT_P99_MS)
        )
    if memory:
        peak = max(memory, key=lambda m: m.peak_kib)
        found.append(Target("peak memory per worker process", f"< {TARGET_PEAK_MB:,.0f} MB", f"{peak.peak_mb:,.1f} MB ({peak.role})", peak.peak_mb < TARGET_PEAK_MB))
    known = {role: value for role, value in (idle_percent or {}).items() if value is not None}
    if known:
        role, busiest = max(known.items(), key=lambda item: item[1])
        found.append(
            Target(
                "idle CPU per worker process, % of a core",
                f"< {TARGET_IDLE_CPU_PERCENT:g} %",
                f"{busiest:.1f} % ({role})",
                busiest < TARGET_IDLE_CPU_PERCENT,
            )
        )
    return found


@dataclass
class BenchResult:
    command: str
    options: dict[str, Any]
    companies: list[str]
    projects: int
    billable_projects: int
    baseline: dict[str, Any]
    throughput: dict[str, Any]
    light: dict[str, Any] | None
    memory: list[ProcessMemory]
    reconciliation: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    #: CPUs and 1-minute load averages at the start and the end: other work on the machine shows here.
    machine: dict[str, Any] = field(default_factory=dict)
    #: Ed25519 signing and verifying per message, measured on the run's envelopes (signature_cost.py).
    signatures: dict[str, Any] = field(default_factory=dict)
    #: The broker of the run: kind (redis, amqp), label, URL shown (password hidden), how its vhost was made.
    broker: dict[str, Any] = field(default_factory=dict)
    #: VmRSS of every worker process sampled through the throughput phase (measure.RssSamples.as_json).
    rss: dict[str, Any] | None = None
    #: The idle phase (phases.IdleResult.as_json), None when --idle-seconds 0.
    idle: dict[str, Any] | None = None
    #: The initial sync phase (initial_sync_phase.InitialSyncResult.as_json), None without --initial-sync.
    initial_sync: dict[str, Any] | None = None
    #: py-spy's profiles (profile.Profiler.stop), None without --profile.
    profile: dict[str, Any] | None = None

    @property
    def ratio(self) -> float:
        return self.throughput["lines_per_second"] / self.baseline["messages_per_second"]

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "options": self.options,
            "legal_entities": self.companies,
            "projects": {"total": self.projects, "billable": self.billable_projects},
            "throughput": self.throughput,
            "light_load": self.light,
            "memory": [m.as_json() for m in self.memory],
            "baseline": self.baseline,
            "ratio_lines_per_noop_message": round(self.ratio, 3),
            "targets": [t.as_json() for t in self.targets],
            "all_targets_met": all(t.met for t in self.targets),
            "reconcile": self.reconciliation,
            "machine": self.machine,
            "signatures": self.signatures,
            "broker": self.broker or {"kind": self.broker_kind, "label": self.broker_label},
            "rss": self.rss,
            "idle": self.idle,
            "initial_sync": self.initial_sync,
            "profile": self.profile,
        }

    @property
    def broker_kind(self) -> str:
        return self.broker.get("kind") or self.options.get("broker", "redis")

    @property
    def broker_label(self) -> str:
        return BROKER_LABELS.get(self.broker_kind, (self.broker_kind, self.broker_kind))[0]

    @property
    def broker_cpu_key(self) -> str:
        return BROKER_LABELS.get(self.broker_kind, (self.broker_kind, self.broker_kind))[1]


def _latency(latency: dict[str, Any]) -> str:
    return (
        f"p50 {latency['p50_ms']:,.0f} ms  p95 {latency['p95_ms']:,.0f} ms  p99 {latency['p99_ms']:,.0f} ms"
        f"  (max {latency['max_ms']:,.0f} ms, n={latency['count']})"
    )


def summary(result: BenchResult) -> list[str]:
    """The readable summary, one line each."""
    o = result.options
    t = result.throughput
    label, cpu_key = result.broker_label, result.broker_cpu_key
    where = o["redis_url"] if result.broker_kind == "redis" else f"RabbitMQ {result.broker.get('url', o.get('amqp_url'))}"
    per_post = "one post message per report" if o["reports_per_post"] == 1 else f"{o['reports_per_post']} reports per post message"
    lines = [
        f"dualwrite bench: {o['reports']:,} reports x {o['lines']} lines = {t['expense_lines']:,} expense lines (all on projects), "
        f"{len(result.companies)} legal entities ({', '.join(result.companies)}), "
        f"{result.projects} projects ({result.billable_projects} billable)",
        f"workers:    finance, dataverse, bridge as separate processes, {o['processes']} process(es) x {o['threads']} threads each, "
        f"on {where} and PostgreSQL",
        f"import:     Import from staging every {o['import_interval']:g} s (DUALWRITE_IMPORT_INTERVAL_SECONDS; the default 2 s "
        "would dominate latency)",
        f"posting:    {per_post}",
        "",
        f"throughput  {t['expense_lines']:,} lines in {t['seconds']:.2f} s = {t['lines_per_second']:,.0f} expense lines/s end to end "
        f"(first post -> reconcile ok; last journal posted after {t['pipeline_seconds']:.2f} s)",
        f"latency     post -> project cost, all reports posted at once: {_latency(t['latency_ms'])}",
    ]
    cpu = t.get("cpu_seconds")
    if cpu:
        lines.append(
            f"cpu         throughput phase: workers {cpu['workers']:.1f} s, PostgreSQL (bench databases) {cpu['postgres']:.1f} s, "
            f"{label} {cpu.get(cpu_key, 0.0):.1f} s, bench {cpu['bench']:.1f} s = {cpu['total']:.1f} CPU-s, {cpu['per_1000_lines']:.2f} s per 1,000 lines: "
            f"{result.machine.get('cpus', '?')} otherwise idle CPUs could carry about {cpu['capacity_lines_per_second']:,.0f} lines/s"
        )
    if result.light is not None:
        lines.append(f"light load  {result.light['reports']} reports posted one at a time: {_latency(result.light['latency_ms'])}")
    s = result.signatures
    if s.get("envelopes"):
        cpu_total = (cpu or {}).get("workers")
        share = f", {s['cpu_seconds'] / cpu_total:.1%} of the workers' CPU in the throughput phase" if cpu_total else ""
        lines.append(
            f"signatures  Ed25519 per message ({s['median_bytes']:,}-byte msdyn_expenses envelopes): sign {s['sign_us']:.0f} us, "
            f"verify {s['verify_us']:.0f} us; {s['messages']:,} messages applied in the run = {s['cpu_seconds']:.2f} CPU-s{share}"
        )
    if s.get("messages") and s.get("parts"):
        lines.append(
            f"batching    {s['messages']:,} messages applied in the whole run carried {s['parts']:,} documents' parts "
            f"({s['parts'] / s['messages']:.1f} per message)"
        )
    memory = ", ".join(f"{m.role} {m.peak_mb:,.1f} MB" for m in result.memory)
    lines.append(f"memory      peak resident (VmHWM) per worker process: {memory}")
    lines += rss_lines(result.rss)
    b = result.baseline
    lines.append(
        f"baseline    bare dramatiq no-op actor, 1 process x {b['threads']} threads, same {label}: {b['messages']:,} messages in "
        f"{b['seconds']:.2f} s = {b['messages_per_second']:,.0f} messages/s"
    )
    lines.append(f"ratio       expense lines/s / no-op messages/s = {result.ratio:.2f} (both on {label})")
    lines += idle_lines(result.idle, label, o)
    lines += initial_sync_lines(result.initial_sync, label, cpu_key)
    lines += profile_lines(result.profile)
    if result.machine:
        m = result.machine
        lines.append(f"machine     {m['cpus']} CPUs; load average {m['load_start']:.2f} at start, {m['load_end']:.2f} at end")
    lines.append("")
    lines.append("targets (missing one is reported, not an exit failure)")
    width = max(len(x.name) for x in result.targets)
    for target in result.targets:
        lines.append(f"  {target.name.ljust(width)}  {target.target:<12}  {target.measured:<24}  {'PASS' if target.met else 'MISS'}")
    return lines


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:,.1f}"


def rss_lines(rss: dict[str, Any] | None) -> list[str]:
    """Each worker process's VmRSS at 10 %, 50 % and 90 % of the throughput phase, and the largest sample."""
    if not rss or not rss.get("by_process"):
        return []
    width = max(len(role) for role in rss["by_process"])
    lines = [
        f"rss         resident memory (VmRSS) sampled every {rss['interval_seconds']:g} s through the throughput phase "
        f"({rss['samples']:,} samples over {rss['seconds']:,.1f} s): at 10 % / 50 % / 90 % of it, and the largest sample"
    ]
    for role, shown in rss["by_process"].items():
        lines.append(
            f"              {role.ljust(width)}  {_mb(shown['p10_mb'])} / {_mb(shown['p50_mb'])} / {_mb(shown['p90_mb'])} MB, "
            f"peak {_mb(shown['peak_mb'])} MB"
        )
    return lines


def idle_lines(idle: dict[str, Any] | None, label: str, options: Mapping[str, Any]) -> list[str]:
    if not idle:
        return []
    processes = ", ".join(
        f"{role} {'?' if value is None else f'{value:.1f}'} %" for role, value in idle["cpu_percent_of_one_core"].items()
    )
    servers = idle.get("servers_cpu_percent_of_one_core") or {}
    names = {"postgres": "PostgreSQL (bench databases)"}
    shown = ", ".join(f"{names.get(part, label)} {value:.1f} %" for part, value in servers.items())
    return [
        f"idle        {idle['seconds']:.1f} s with every worker idle, CPU as % of one core: {processes} "
        f"(target < {TARGET_IDLE_CPU_PERCENT:g} % each; Import from staging every {options.get('import_interval', 0.1):g} s)"
        + (f"; {shown}" if shown else "")
    ]


def initial_sync_lines(sync: dict[str, Any] | None, label: str, cpu_key: str) -> list[str]:
    if not sync:
        return []
    run = sync.get("run") or {}
    cpu = sync.get("cpu_seconds") or {}
    lines = [
        f"initial sync {sync['table_map']}, {sync['rows']:,} rows from {sync['master']} in pages of {sync['page_size']:,}: "
        f"finance holds all after {sync['seconds']:.2f} s = {sync['rows_per_second']:,.0f} rows/s "
        f"(run finished in the bridge after {sync['settled_seconds']:.2f} s; {run.get('pages', '?')} pages)"
    ]
    if cpu:
        lines.append(
            f"              cpu: workers {cpu['workers']:.1f} s, PostgreSQL {cpu['postgres']:.1f} s, "
            f"{label} {cpu.get(cpu_key, 0.0):.1f} s, "
            f"bench {cpu['bench']:.1f} s = {cpu['total']:.1f} CPU-s, {cpu['per_1000_rows']:.2f} s per 1,000 rows"
        )
    return lines


def profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    lines = [
        f"profile     {profile['tool']} at {profile['rate']} samples/s of the thread holding the GIL, every worker process, through "
        f"the {profile['phase']} phase (raw stacks in {profile['directory']}; py-spy shares the CPUs: this run's figures are not "
        f"comparable); top {TOP_FUNCTIONS} functions by own time:"
    ]
    for each in profile.get("processes", []):
        name = each["role"] if str(each["pid"]) in each["role"] else f"{each['role']} (pid {each['pid']})"
        lines.append(
            f"  {name}: {each['samples']:,} samples = {each['gil_seconds_sampled']:,.1f} s holding the GIL; {each['file']}"
        )
        for function in each["top_own_time"]:
            lines.append(f"    {function['share'] * 100:5.1f} %  {function['samples']:>7,}  {function['function']}")
    for problem in profile.get("problems", []):
        lines.append(f"  not profiled: {problem}")
    return lines
