"""scripts/ci-check-legs: CI fails unless every Salt leg ran where it should."""

import importlib.machinery
import importlib.util
import json

import pytest

from tests.conftest import REPO

SPECS = ["3006:3.10:unit,functional", "3008:3.11:unit,functional,integration,kernel"]


def _checker():
    loader = importlib.machinery.SourceFileLoader("ci_check_legs", str(REPO / "scripts" / "ci-check-legs"))
    spec = importlib.util.spec_from_loader("ci_check_legs", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _leg(tmp_path, line, **kw):
    tiers = ["unit", "functional"] if line == "3006" else ["unit", "functional", "integration", "kernel"]
    record = {
        "python": "3.10.13" if line == "3006" else "3.11.7",
        "salt": f"{line}.4",
        "exitstatus": 0,
        "paths": [f"tests/{tier}" for tier in tiers],
        "passed": 280,
        "failed": 0,
        "error": 0,
        "skipped": 0,
        **kw,
    }
    (tmp_path / f"leg-{line}.json").write_text(json.dumps(record), encoding="utf-8")


def test_all_legs_ran(tmp_path):
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008")
    assert _checker().main(["x", str(tmp_path), *SPECS]) == 0


@pytest.mark.parametrize(
    "broken,why",
    [
        (None, "did not run"),
        ({"python": "3.11.7"}, "Python 3.11.7"),
        ({"salt": "3008.4"}, "Salt 3008.4"),
        ({"paths": ["tests/unit"]}, "ran ['unit']"),
        ({"passed": 0, "skipped": 283}, "skipped"),
        ({"failed": 1, "exitstatus": 1}, "failed"),
    ],
)
def test_a_skipped_or_misplaced_3006_leg_fails(tmp_path, capsys, broken, why):
    if broken is not None:
        _leg(tmp_path, "3006", **broken)
    _leg(tmp_path, "3008")
    assert _checker().main(["x", str(tmp_path), *SPECS]) == 1
    assert why in capsys.readouterr().err
