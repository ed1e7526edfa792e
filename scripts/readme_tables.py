"""The README's reference tables, generated from the code so they cannot drift from it.

    .venv/bin/python scripts/readme_tables.py          # rewrite the tables in README.md
    .venv/bin/python scripts/readme_tables.py --check  # exit 1 if README.md is out of date

Each table sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in README.md;
tests/e2e/test_readme.py runs the check.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
sys.path.insert(0, str(REPO))

from contracts.catalog import default_registry, publish_queue  # noqa: E402
from contracts.envelope import Envelope, Side  # noqa: E402
from contracts.queues import TABLE_MAPS, all_queues  # noqa: E402
from contracts.schemas import schema_file_name  # noqa: E402
from contracts.senders import authorization  # noqa: E402
from shared.settings import EMBEDDED, Settings  # noqa: E402
from workers.cli.exit_codes import ExitCode  # noqa: E402


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def settings_table() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        if name.endswith("_db_url"):
            side = name.removesuffix("_db_url")
            default = f"SQLite file `{side}.sqlite3` in `DUALWRITE_DATA_DIR`"
        elif field.default is None:
            default = "unset"
        elif field.default == EMBEDDED:
            default = f"`{EMBEDDED}` (in-process Redis)"
        else:
            default = f"`{field.default}`"
        rows.append([f"`DUALWRITE_{name.upper()}`", default, field.description or ""])
    return markdown_table(["Variable", "Default", "Meaning"], rows)


def queues_table() -> str:
    rows = [
        [f"`{queue.name}`", queue.consumer.value, f"`{queue.table_map}`" if queue.table_map else "(commands)",
         queue.direction, f"`{queue.actor_name}`"]
        for queue in all_queues()
    ]
    return markdown_table(["Queue", "Consumed by", "Table map", "Direction", "Actor name"], rows)


def contracts_table() -> str:
    rows = []
    for contract in default_registry():
        schemas = ", ".join(
            f"[v{v}](contracts/schemas/{schema_file_name(contract, v)})" for v in range(1, contract.latest + 1)
        )
        rows.append(
            [f"`{contract.name}`", contract.kind.value, contract.scope.value, schemas,
             f"`{publish_queue(contract).name}`", contract.description]
        )
    return markdown_table(["Contract", "Kind", "Scope", "Versions (JSON Schema)", "Publish to", "What it carries"], rows)


def exit_code_comments() -> dict[str, str]:
    """The ``#:`` comment above each ExitCode member, read from the source."""
    source = (REPO / "workers" / "cli" / "exit_codes.py").read_text()
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif match := re.match(r"([A-Z_]+)\s*=", stripped):
            comments[match[1]] = " ".join(pending)
            pending = []
    ast.parse(source)  # the file is Python; a syntax error here would mean the regex misread it
    return comments


def exit_codes_table() -> str:
    comments = exit_code_comments()
    rows = [[str(int(code)), f"`{code.name}`", comments.get(code.name) or "Success."] for code in ExitCode]
    return markdown_table(["Status", "Name", "Meaning"], rows)


def flow_diagram() -> str:
    """Three lifelines (Dataverse, bridge, finance) and an arrow, named by its queue, for every map leg."""
    columns = {Side.DATAVERSE: 0, Side.BRIDGE: 1, Side.FINANCE: 2}
    gap = max(len(queue.name) for queue in all_queues()) + 10

    def lifelines() -> list[str]:
        line = [" "] * (2 * gap + 1)
        for column in columns.values():
            line[column * gap] = "|"
        return line

    def arrow(name: str, source: Side, target: Side) -> str:
        line = lifelines()
        start, end = sorted((columns[source] * gap, columns[target] * gap))
        shaft = f" {name} ".center(end - start - 1, "-")
        shaft = shaft[:-1] + ">" if columns[target] > columns[source] else "<" + shaft[1:]
        line[start + 1 : end] = shaft
        return "".join(line).rstrip()

    lines = [
        f"{queue.producer} --[{queue.name}]--> {queue.consumer} worker"
        for queue in all_queues()
        if queue.table_map is None
    ]
    lines += [
        "",
        "DATAVERSE worker".ljust(gap) + "BRIDGE worker".ljust(gap) + "FINANCE worker",
        "(database dataverse)".ljust(gap) + "(database bridge)".ljust(gap) + "(database finance)",
    ]
    for each in TABLE_MAPS:
        lines.append("".join(lifelines()).rstrip())
        lines.append(arrow(each.outbound.name, each.source, Side.BRIDGE))
        lines.append(arrow(each.inbound.name, Side.BRIDGE, each.target))
        if each.two_way:
            lines.append(arrow(each.reverse_outbound.name, each.target, Side.BRIDGE))
            lines.append(arrow(each.reverse_inbound.name, Side.BRIDGE, each.source))
    return "```text\n" + "\n".join(lines) + "\n```"


def envelope_table() -> str:
    schema = Envelope.model_json_schema()
    sides = " / ".join(schema["$defs"]["Side"]["enum"])
    extra = {
        "source": f"Who published it: {sides}. Upstream systems send `upstream`.",
        "occurred_at": "When the message was created: ISO 8601 with a time zone.",
    }
    rows = []
    for name, field in schema["properties"].items():
        kind = _json_type(field if "$ref" not in field else {"type": "string"})
        required = "yes" if name in schema["required"] else "no (null)"
        rows.append([f"`{name}`", kind, required, field.get("description") or extra.get(name, "")])
    return markdown_table(["Field", "JSON", "Required", "Meaning"], rows)


def _json_type(field: dict) -> str:
    if "anyOf" in field:
        return " or ".join(_json_type(option) for option in field["anyOf"])
    kind = field.get("type", "any")
    if "format" in field:
        kind += f" ({field['format']})"
    if "pattern" in field:
        kind += f" `{field['pattern']}`"
    return kind


def senders_table() -> str:
    """Who may write what (contracts/senders.yaml, and the table maps' legs); operators everywhere."""
    table = authorization()
    rows = []
    for queue in all_queues():
        for contract, senders in table.by_queue[queue.name].items():
            names = ", ".join(f"`{sender}`" for sender in sorted(senders)) or "nobody"
            rows.append([f"`{queue.name}`", f"`{contract}`" if contract else "its map's rows", names])
    return markdown_table(["Queue", "Contract", "Heard from (besides `operator`)"], rows)


def upstream_table() -> str:
    table = authorization()
    rows = [[f"`{name}`", system.description, ", ".join(f"`{c}`" for c in system.commands)] for name, system in table.upstream.items()]
    return markdown_table(["Upstream system", "What it is", "Commands it may send"], rows)


TABLES: dict[str, Callable[[], str]] = {
    "flow": flow_diagram,
    "envelope": envelope_table,
    "settings": settings_table,
    "queues": queues_table,
    "contracts": contracts_table,
    "exit-codes": exit_codes_table,
    "senders": senders_table,
    "upstream-systems": upstream_table,
}


def render(readme: str) -> str:
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- generated:{name} --> block")
        readme = pattern.sub(lambda m: m[1] + table() + "\n" + m[2], readme)
    return readme


def main(argv: list[str]) -> int:
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print("README.md tables are out of date: run .venv/bin/python scripts/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        README.write_text(wanted, encoding="utf-8")
        print("README.md tables updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
