"""Settings for benchmarks: the real settings plus the bare-Django ceiling view."""

from scheduler_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.bench_urls"
