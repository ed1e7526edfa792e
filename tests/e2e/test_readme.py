"""The README stays true to the code: generated tables current, every command and option documented."""

from __future__ import annotations

import argparse
import re
import runpy
import tomllib

from tests.e2e.compose_file import REPO
from workers.cli import build_parser

README = REPO / "README.md"


def subcommands(parser: argparse.ArgumentParser, prefix: str = "dualwrite") -> dict[str, argparse.ArgumentParser]:
    """Every command line a user types, e.g. ``dualwrite contracts list``, with its parser.

    Leaves always count; a command with subcommands counts too when it takes options of its own
    (``dualwrite jobs --status failed``).
    """
    found: dict[str, argparse.ArgumentParser] = {}
    children = [
        (name, child)
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, child in action.choices.items()
    ]
    for name, child in children:
        found.update(subcommands(child, f"{prefix} {name}"))
    if not children or (prefix != "dualwrite" and options(parser)):
        found[prefix] = parser
    return found


def options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"]


def cli_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Command line") : text.index("## Wire format")]


def test_generated_tables_match_the_code() -> None:
    readme_tables = runpy.run_path(str(REPO / "scripts" / "readme_tables.py"), run_name="readme_tables")

    current = README.read_text(encoding="utf-8")
    assert current == readme_tables["render"](current), (
        "README.md's generated tables are out of date: run .venv/bin/python scripts/readme_tables.py"
    )


def test_every_subcommand_and_option_is_documented() -> None:
    section = cli_section()

    for command, parser in subcommands(build_parser()).items():
        assert f"`{command}" in section, f"README's Command line section does not document {command!r}"
        row = next(line for line in section.splitlines() if f"`{command} " in line or f"`{command}`" in line)
        for option in options(parser):
            assert option in row, f"README does not document {command} {option}"


def test_every_linked_schema_file_exists() -> None:
    links = re.findall(r"\]\((contracts/schemas/[^)]+)\)", README.read_text(encoding="utf-8"))

    assert links
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing, f"README links to schema files that do not exist: {missing}"


def test_every_path_in_the_layout_exists() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Layout") : text.index("## Why these libraries")]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    parent = ""
    missing = []
    for line in block.splitlines():
        if not line.strip() or line.startswith(" " * 20):
            continue  # a continued description
        indented = line.startswith("  ")
        names = [name.strip() for name in line.split("  ")[0 if not indented else 1].split(",")]
        if not indented:
            parent = names[0] if names[0].endswith("/") else ""
        for name in names:
            path = (parent if indented else "") + name
            if not (REPO / path).exists():
                missing.append(path)
    assert not missing, f"README's Layout names paths that do not exist: {missing}"


def test_every_dependency_is_explained_under_why_these_libraries() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    names = {re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Why these libraries") : text.index("## Measured figures")].lower()

    unexplained = sorted(name for name in names if name not in table)
    assert not unexplained, f"README's 'Why these libraries' does not explain: {unexplained}"
