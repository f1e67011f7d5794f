"""The suite stands alone: a fresh clone passes with nothing beside it."""

import pytest

from tests import conftest
from tests.conftest import BASE_DIR, CONTRACT_DIR


def test_it_keeps_the_contract_examples_in_the_repository():
    names = sorted(path.name for path in CONTRACT_DIR.glob("*.json"))
    assert names == [
        "orders.response.json",
        "stats.response.json",
        "status.response.json",
        "submit.request.json",
        "submit.response.json",
    ]
    assert CONTRACT_DIR.resolve().is_relative_to(BASE_DIR)


def test_it_refuses_to_open_a_file_beside_the_checkout(monkeypatch):
    # As if the folder had stood beside the checkout when the suite started (as
    # ../shared does on a developer's machine).
    monkeypatch.setattr(conftest, "_STOOD_BESIDE", conftest._STOOD_BESIDE | {"a-sibling-folder"})
    beside = BASE_DIR.parent / "a-sibling-folder" / "example.json"  # refused before it is looked for
    with pytest.raises(PermissionError, match="outside the repository"):
        open(beside)


def test_it_refuses_to_open_a_file_in_the_home_directory(monkeypatch):
    monkeypatch.setenv("HOME", "/home/somebody")
    with pytest.raises(PermissionError, match="outside the repository"):
        open("/home/somebody/.okx/keys.json")  # refused before the file is looked for


def test_it_still_opens_files_inside_the_repository_and_temp(tmp_path):
    with open(BASE_DIR / "README.md") as readme:
        assert readme.readline().startswith("# Order Scheduling Center")
    (tmp_path / "x.txt").write_text("ok")
    assert (tmp_path / "x.txt").read_text() == "ok"
