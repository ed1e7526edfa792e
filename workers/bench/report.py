"""The outcome of a run: figures, the targets beside them, the summary for people and the JSON document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.bench.measure import ProcessMemory

TARGET_LINES_PER_SECOND = 1000.0
TARGET_LIGHT_P99_MS = 1000.0
TARGET_PEAK_MB = 150.0


@dataclass(frozen=True)
class Target:
    name: str
    target: str
    measured: str
    met: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "measured": self.measured, "met": self.met}


def targets(lines_per_second: float, light_p99_ms: float | None, memory: list[ProcessMemory]) -> list[Target]:
    """Each target with the measured figure and whether it was met (a light phase of 0 reports is not judged)."""
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
        }


def _latency(latency: dict[str, Any]) -> str:
    return (
        f"p50 {latency['p50_ms']:,.0f} ms  p95 {latency['p95_ms']:,.0f} ms  p99 {latency['p99_ms']:,.0f} ms"
        f"  (max {latency['max_ms']:,.0f} ms, n={latency['count']})"
    )


def summary(result: BenchResult) -> list[str]:
    """The readable summary, one line each."""
    o = result.options
    t = result.throughput
    per_post = "one post message per report" if o["reports_per_post"] == 1 else f"{o['reports_per_post']} reports per post message"
    lines = [
        f"dualwrite bench: {o['reports']:,} reports x {o['lines']} lines = {t['expense_lines']:,} expense lines (all on projects), "
        f"{len(result.companies)} legal entities ({', '.join(result.companies)}), "
        f"{result.projects} projects ({result.billable_projects} billable)",
        f"workers:    finance, dataverse, bridge as separate processes, {o['processes']} process(es) x {o['threads']} threads each, "
        f"on {o['redis_url']} and PostgreSQL",
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
            f"Redis {cpu['redis']:.1f} s, bench {cpu['bench']:.1f} s = {cpu['total']:.1f} CPU-s, {cpu['per_1000_lines']:.2f} s per 1,000 lines: "
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
    b = result.baseline
    lines.append(
        f"baseline    bare dramatiq no-op actor, 1 process x {b['threads']} threads, same Redis: {b['messages']:,} messages in "
        f"{b['seconds']:.2f} s = {b['messages_per_second']:,.0f} messages/s"
    )
    lines.append(f"ratio       expense lines/s / no-op messages/s = {result.ratio:.2f}")
    if result.machine:
        m = result.machine
        lines.append(f"machine     {m['cpus']} CPUs; load average {m['load_start']:.2f} at start, {m['load_end']:.2f} at end")
    lines.append("")
    lines.append("targets (missing one is reported, not an exit failure)")
    width = max(len(x.name) for x in result.targets)
    for target in result.targets:
        lines.append(f"  {target.name.ljust(width)}  {target.target:<12}  {target.measured:<24}  {'PASS' if target.met else 'MISS'}")
    return lines
