"""``dualwrite bench``: the whole expense flow under load, on real Redis (or RabbitMQ) and PostgreSQL.

The three workers run as separate processes (``python -m workers worker ...``) on throwaway
databases; the bench publishes as an upstream system would and reads the databases to time it.

- :mod:`workers.bench.options`: what one run measures (pure);
- :mod:`workers.bench.load`: the generated set-up, categories, projects and reports (pure);
- :mod:`workers.bench.prepare`: publishing them and waiting until they are applied;
- :mod:`workers.bench.brokers`: the run's broker: a Redis db of its own, or a throwaway RabbitMQ vhost;
- :mod:`workers.bench.services`: throwaway databases, the broker, worker processes, clean-up;
- :mod:`workers.bench.measure`: percentiles, per-report latency, CPU, peak and sampled memory (pure parts + reads);
- :mod:`workers.bench.phases`: the throughput, light-load and idle phases;
- :mod:`workers.bench.initial_sync_phase`: ``--initial-sync``, an initial sync timed as an operator starts one;
- :mod:`workers.bench.profile`: ``--profile``, py-spy on the workers and their top functions;
- :mod:`workers.bench.noop`: the baseline, a bare dramatiq no-op actor (``python -m workers.bench.noop``);
- :mod:`workers.bench.report`: targets, the summary and the JSON document (pure);
- :mod:`workers.bench.run`: one run, start to clean-up.

It is not part of the test suite; its pure parts are unit-tested in ``tests/unit/workers/bench``.
``docs/benchmark.md`` describes every option and line of the summary.
"""
