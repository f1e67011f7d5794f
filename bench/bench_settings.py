"""Settings for benchmarks: the real settings plus the ceiling views (bench/bench_urls.py)."""

from scheduler_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.bench_urls"
