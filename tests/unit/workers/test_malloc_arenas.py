"""A worker process asks glibc for two malloc arenas, unless the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from workers.malloc_arenas import limit_malloc_arenas

ASK = "from workers.malloc_arenas import limit_malloc_arenas; print(limit_malloc_arenas())"


def asked_in_a_fresh_process(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", ASK], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_glibc_agrees_to_two_arenas_and_other_c_libraries_are_left_alone() -> None:
    expected = "True" if platform.libc_ver()[0] == "glibc" else "False"
    assert asked_in_a_fresh_process({}) == expected


def test_the_operators_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
