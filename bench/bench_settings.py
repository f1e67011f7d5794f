"""Settings for benchmarks: the real settings plus the ceiling views (bench/bench_urls.py)."""

import os

from scheduler_site.settings import *  # noqa: F401,F403
from scheduler_site.settings import DATABASES

ROOT_URLCONF = "bench.bench_urls"

# bench/submit.py --trace-locks: every process of the service logs its transactions.
if os.environ.get("BENCH_LOCK_TRACE"):
    from bench.locktrace import install

    install(os.environ["BENCH_LOCK_TRACE"], DATABASES["default"]["ENGINE"])
