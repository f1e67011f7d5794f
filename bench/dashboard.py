"""Dashboard benchmark: time to a fully drawn /order-scheduler at a million orders.

    /work/main/.venv/bin/python bench/dashboard.py [--loads 15] [--refill]

Uses bench/read.py's database (data/bench_read.sqlite3, or DATABASE_URL: 1,000,000
orders, 50,000 of them today and 50,000 yesterday; filled once, then reused), collects
the static files as `make run` does, and serves the app with gunicorn (bench/common.py
WebServer: the worker class `manage.py serve` uses). Headless Chromium (Debian's, driven
by Playwright) then opens the page signed in, again and again, and reads from the
browser's own clock:

- html: navigation start to the last byte of the server-rendered page (its status,
  statistics and latest 100 orders are computed for each load);
- drawn: navigation start to the `dashboard-drawn` mark, which the page's script sets
  on the frame after its first data render with the three charts drawn.

"cold" loads each use a new browser context (empty HTTP cache: the stylesheet, script,
Chart.js and the translation catalog are fetched too); "warm" loads reload in one
context, as a trader's open tab does. Medians over --loads of each, after two warm-ups.
The target is a fully drawn page in under 500 ms.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench import read  # noqa: E402  (sets up Django on the read benchmark's database)
from bench.common import WebServer  # noqa: E402
from tests.helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const drawn = performance.getEntriesByName('dashboard-drawn')[0];
  return {html: nav.responseEnd, dom: nav.domContentLoadedEventEnd, drawn: drawn.startTime,
          rows: document.querySelectorAll('#orders-body tr[data-id]').length,
          charts: document.querySelectorAll('.chart.drawn canvas').length};
}"""


def session_cookie() -> str:
    """A signed-in session of a superuser (every account, every figure)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.update_or_create(
        username="bench-dashboard", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def load(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_function("() => performance.getEntriesByName('dashboard-drawn').length > 0")
    timings = page.evaluate(TIMINGS)
    if timings["rows"] != 100 or timings["charts"] != 3:
        sys.exit(f"the page did not draw 100 orders and 3 charts: {timings}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=15, help="timed loads of each kind")
    parser.add_argument("--refill", action="store_true", help="refill the database even if it has the rows")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")

    read.ensure_filled(total=1_000_000, per_day=50_000, refill=args.refill)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from orders.models import Order

    call_command("collectstatic", interactive=False, verbosity=0)
    cookie = session_cookie()
    total = Order.objects.count()
    connection.close()

    from playwright.sync_api import sync_playwright

    server = WebServer(dict(os.environ), workers=2, threads=4)
    base = f"http://127.0.0.1:{server.port}"
    url = f"{base}/order-scheduler"
    cookies = [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}]
    cold, warm = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for n in range(args.loads + 2):
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                context.add_cookies(cookies)
                timings = load(context.new_page(), url)
                context.close()
                if n >= 2:
                    cold.append(timings)
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            context.add_cookies(cookies)
            page = context.new_page()
            for n in range(args.loads + 2):
                timings = load(page, url)
                if n >= 2:
                    warm.append(timings)
            browser.close()
    finally:
        server.stop()

    print(f"\n{total:,} orders, TIME_ZONE={settings.TIME_ZONE}, gunicorn gthread, headless Chromium 1440x1000")
    print(f"{'load':6} {'html ms':>8} {'dom ms':>8} {'drawn ms':>9}   (medians of {args.loads}; drawn p95 / max)")
    for name, runs in (("cold", cold), ("warm", warm)):
        median = {key: statistics.median(run[key] for run in runs) for key in ("html", "dom", "drawn")}
        drawn = sorted(run["drawn"] for run in runs)
        p95 = drawn[min(len(drawn) - 1, round(0.95 * (len(drawn) - 1)))]
        print(
            f"{name:6} {median['html']:8.0f} {median['dom']:8.0f} {median['drawn']:9.0f}   {p95:.0f} / {drawn[-1]:.0f}"
        )
    verdict = "under" if statistics.median(run["drawn"] for run in cold) < 500 else "OVER"
    print(f"fully drawn (cold median) is {verdict} the 500 ms target")


if __name__ == "__main__":
    main()
