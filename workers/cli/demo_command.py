"""``dualwrite demo``: every flow end to end on the embedded broker, in one process."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from shared.logging import configure_logging
from shared.settings import EMBEDDED, Settings
from workers.cli.arguments import log_level
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json
from workers.cli.reconcile_command import print_report


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "demo", help="run every flow end to end on the embedded broker and check each step"
    )
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")
    parser.add_argument("--data-dir", type=Path, help="keep the SQLite files here (default: a temporary folder)")
    parser.add_argument("--log-level", type=log_level, default="ERROR", help="worker log level shown on stderr (default ERROR)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workers.demo import Demo, StepResult
    from workers.runtime import Runtime

    if args.data_dir is not None:
        try:
            args.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file of that name, a folder not ours to write
            why = "not a folder" if isinstance(error, (FileExistsError, NotADirectoryError)) else error.strerror or error
            fail(f"--data-dir {args.data_dir}: {why}")
            return ExitCode.USAGE
    configure_logging(args.log_level, "console")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="dualwrite-demo-"))
    demo_settings = Settings(
        broker_url=EMBEDDED,
        data_dir=data_dir,
        finance_db_url=None,
        dataverse_db_url=None,
        bridge_db_url=None,
        worker_threads=4,
        # The demo runs Import from staging itself, as an operator would, to show each stage.
        import_interval_seconds=3600,
    )

    def show(step: StepResult) -> None:
        if args.json:
            return
        print(f"{step.number}. {step.title}")
        for hop in step.hops:
            timing = f"waited {hop.waited_ms} ms, ran {hop.ran_ms} ms" if hop.ran_ms is not None else ""
            version = f" v{hop.version}" if hop.version else ""
            rows = f", {hop.rows} row(s)" if hop.rows is not None else ""
            result = f"{hop.result}: {hop.detail}" if hop.detail else hop.result
            print(f"     {hop.side:<9} {hop.queue:<48} {hop.contract}{version}{rows}  {result}  {timing}".rstrip())
        print(f"   {'ok  ' if step.ok else 'FAIL'} {step.outcome}\n")

    runtime = Runtime(demo_settings)
    try:
        runtime.create_tables()
        runtime.start()
        demo = Demo(runtime, on_step=show)
        demo.run()
    finally:
        runtime.stop()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    reconciliation = getattr(demo, "reconciliation", [])
    if args.json:
        print_json(
            {
                "ok": demo.ok,
                "steps": [step.as_json() for step in demo.results],
                "reconcile": [company.as_json() for company in reconciliation],
            }
        )
    else:
        if reconciliation:
            print_report(reconciliation, all(company.ok for company in reconciliation))
            print()
        passed = sum(step.ok for step in demo.results)
        print(f"{'ok' if demo.ok else 'FAILED'}: {passed} of {len(demo.results)} steps came out as expected")
    return ExitCode.OK if demo.ok else ExitCode.FAILED
