"""The benchmarks' library: what ``bench/*.py`` run, and the helpers they share.

* :mod:`bench.lib.harness`: scratch databases, the replay exchange in its own process, machine and
  process CPU figures, polling, free ports, the repository root for Ray's workers;
* :mod:`bench.lib.writer`: the bulk candle writer against raw asyncpg COPY (``bench/ingest.py``);
* :mod:`bench.lib.ingest`: backfill throughput and live latency on Ray (``bench/backfill.py``,
  ``bench/live.py``);
* :mod:`bench.lib.serving` and :mod:`bench.lib.loadgen`: API throughput and latency against a no-op
  Serve floor (``bench/serve.py``); :mod:`bench.lib.memory`: resident memory of the whole system
  (``bench/serve.py --memory``);
* :mod:`bench.lib.gcs_ft`: GCS fault tolerance on a Redis-backed local head (``bench/gcs_ft.py``).

Everything here uses the product's public names only.
"""
