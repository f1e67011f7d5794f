"""The import boundaries of README's "Where things live" hold: import-linter's contracts
(pyproject.toml, [tool.importlinter]) are kept, so `make test` enforces what `make lint`
checks."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import BASE_DIR

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    # Static analysis only (nothing is imported), a fraction of a second; no cache, so a
    # run never depends on what an earlier one left in the checkout.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *args],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_keeps_every_import_contract():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_it_fails_on_a_broken_contract(tmp_path):
    # The API views call services, so this contract is broken today: the check can fail.
    config = tmp_path / "broken.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["orders"]\n'
        "\n"
        "[[tool.importlinter.contracts]]\n"
        'name = "the API imports no service"\n'
        'type = "forbidden"\n'
        'source_modules = ["orders.api"]\n'
        'forbidden_modules = ["orders.services"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "the API imports no service BROKEN" in result.stdout
    assert "orders.api.views -> orders.services" in result.stdout
