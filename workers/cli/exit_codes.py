"""Named exit statuses of the ``dualwrite`` command."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: The command ran and found something wrong (a demo step that did not come out as expected).
    FAILED = 1
    #: The command line itself was wrong (argparse uses 2 too).
    USAGE = 2
    #: The input document does not match its contract; nothing was sent.
    INVALID_INPUT = 3
    #: The broker or a database could not be reached (a worker: within DUALWRITE_CONNECT_TIMEOUT_SECONDS).
    UNAVAILABLE = 4
    #: DUALWRITE_* settings are missing, malformed or inconsistent (the message names the setting, never its value).
    CONFIGURATION = 5
    #: A side's database is behind its schema migrations: run ``dualwrite db upgrade``.
    SCHEMA_BEHIND = 6
    #: ``dualwrite health`` found the broker, a database, its schema or the worker heartbeats unhealthy.
    UNHEALTHY = 7
