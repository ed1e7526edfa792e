"""Fewer malloc arenas for a worker process, so that its resident memory stays flat under load.

glibc gives threads that allocate at the same time arenas of their own, up to eight per core. A
worker's threads (eight by default, plus dramatiq's consumers and the outbox's sender) each keep
the memory they freed in their own arena, where the others cannot reuse it, so a busy worker's
resident size creeps up by several megabytes. Two arenas hold it flatter (`dualwrite bench`: finance
5 MB lower at its peak), and as the threads take turns on the interpreter's lock anyway they seldom
wait for one. ``MALLOC_ARENA_MAX`` in the environment, glibc's own setting, wins over this; other C
libraries (musl's ``mallopt`` does nothing) and other systems are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Arenas a worker process asks glibc for.
ARENAS = 2

#: ``M_ARENA_MAX`` in glibc's malloc.h.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask the C library for at most ``arenas`` malloc arenas from now on; whether it agreed.

    Call it before the process starts its threads: arenas already made stay.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
