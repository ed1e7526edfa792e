"""dramatiq's own Prometheus middleware, fitted to our worker processes.

dramatiq's ``Prometheus`` middleware expects the ``dramatiq`` command: it creates its metrics at
process boot in prometheus_client's multiprocess mode (files in one temporary folder shared by every
dramatiq on the machine) and serves them from a process that command forks, on port 9191. Our
workers start ``dramatiq.Worker`` themselves, one exporter per process on the port the settings
give. So we keep its hooks and its metrics (``dramatiq_messages_total``, errors, retries, rejects,
in progress, delayed, duration histogram) and register them in the runtime's own registry.
"""

from __future__ import annotations

import os

from dramatiq.middleware.prometheus import Prometheus

# Imported here, before dramatiq's hook sets PROMETHEUS_MULTIPROC_DIR: prometheus_client decides
# once, on import, whether values live in memory (ours) or in multiprocess files.
from prometheus_client import CollectorRegistry

#: The variables dramatiq's middleware sets for the whole process; we put them back as they were.
_MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class DramatiqPrometheus(Prometheus):
    """dramatiq's message metrics, in our registry, served by our exporter (no forked server)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        saved = {name: os.environ.get(name) for name in _MULTIPROCESS_VARIABLES}
        try:
            # Declares dramatiq's metrics (on a registry of its own, which we then share). The
            # variables it sets would switch processes spawned later to multiprocess files.
            super().after_process_boot(broker=None)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        for metric in (
            self.total_messages,
            self.total_errored_messages,
            self.total_retried_messages,
            self.total_rejected_messages,
            self.inprogress_messages,
            self.inprogress_delayed_messages,
            self.message_durations,
        ):
            registry.register(metric)

    @property
    def forks(self) -> list:
        return []  # our exporter serves the registry; nothing to fork

    def after_process_boot(self, broker) -> None:  # noqa: ANN001
        """Done in __init__: our workers are not started by the ``dramatiq`` command."""

    def after_worker_shutdown(self, broker, worker) -> None:  # noqa: ANN001
        """Nothing to clean: no multiprocess files were written."""
