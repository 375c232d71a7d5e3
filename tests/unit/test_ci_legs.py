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


def _leg(tmp_path, line, tiers=None, part="", **kw):
    if tiers is None:
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
    (tmp_path / f"leg-{line}{part}.json").write_text(json.dumps(record), encoding="utf-8")


def _check(tmp_path):
    return _checker().main(["x", str(tmp_path), *SPECS])


def test_all_legs_ran(tmp_path):
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008")
    assert _check(tmp_path) == 0


def test_a_leg_in_parts(tmp_path):
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008", ["unit", "functional"], part="-unit-functional")
    _leg(tmp_path, "3008", ["integration", "kernel"], part="-integration-kernel")
    assert _check(tmp_path) == 0


@pytest.mark.parametrize(
    "parts,why",
    [
        ({"-unit-functional": ["unit", "functional"]}, "ran ['functional', 'unit']"),
        (
            {"-a": ["unit", "functional", "integration"], "-b": ["integration", "kernel"]},
            "ran ['functional', 'integration', 'integration'",
        ),
    ],
)
def test_parts_must_add_up_to_the_leg(tmp_path, capsys, parts, why):
    _leg(tmp_path, "3006")
    for part, tiers in parts.items():
        _leg(tmp_path, "3008", tiers, part=part)
    assert _check(tmp_path) == 1
    assert why in capsys.readouterr().err


def test_one_failed_part_fails_the_leg(tmp_path, capsys):
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008", ["unit", "functional"], part="-unit-functional")
    _leg(tmp_path, "3008", ["integration", "kernel"], part="-integration-kernel", failed=2, exitstatus=1)
    assert _check(tmp_path) == 1
    assert "leg-3008-integration-kernel.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "broken,why",
    [
        (None, "did not run"),
        ({"python": "3.11.7"}, "Python 3.11.7"),
        ({"salt": "3008.4"}, "Salt 3008.4"),
        ({"paths": ["tests/unit"]}, "ran ['unit']"),
        ({"passed": 0, "skipped": 283}, "skipped"),
        ({"skipped": 3}, "skipped"),
        ({"failed": 1, "exitstatus": 1}, "failed"),
    ],
)
def test_a_skipped_or_misplaced_3006_leg_fails(tmp_path, capsys, broken, why):
    if broken is not None:
        _leg(tmp_path, "3006", **broken)
    _leg(tmp_path, "3008")
    assert _check(tmp_path) == 1
    assert why in capsys.readouterr().err


def test_a_second_leg_of_one_salt_line_is_its_own(tmp_path, capsys):
    """3008py313 is Salt 3008 on Python 3.13: its records are not the 3008 leg's, nor the other way round."""
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008")
    checker = _checker()
    specs = [*SPECS, "3008py313:3.13:unit,functional"]
    assert checker.main(["x", str(tmp_path), *specs]) == 1
    assert "Salt 3008py313 leg did not run" in capsys.readouterr().err
    record = {"python": "3.13.0", "salt": "3008.4", "exitstatus": 0, "paths": ["tests/unit", "tests/functional"]}
    record.update(passed=900, failed=0, error=0, skipped=0)
    (tmp_path / "leg-3008py313-unit-functional.json").write_text(json.dumps(record), encoding="utf-8")
    assert checker.main(["x", str(tmp_path), *specs]) == 0
    record["python"] = "3.11.7"
    (tmp_path / "leg-3008py313-unit-functional.json").write_text(json.dumps(record), encoding="utf-8")
    assert checker.main(["x", str(tmp_path), *specs]) == 1
    assert "not 3.13" in capsys.readouterr().err


def test_the_vm_leg_fails_the_run_when_its_tier_skipped(tmp_path, capsys):
    """3008vm (the vm tier in a venv of its own, beside the unit legs): skipped is failed."""
    _leg(tmp_path, "3006")
    _leg(tmp_path, "3008")
    checker = _checker()
    specs = [*SPECS, "3008vm:3.11:vm"]
    record = {"python": "3.11.7", "salt": "3008.4", "exitstatus": 0, "paths": ["tests/vm"]}
    record.update(passed=0, failed=0, error=0, skipped=14)
    (tmp_path / "leg-3008vm-vm.json").write_text(json.dumps(record), encoding="utf-8")
    assert checker.main(["x", str(tmp_path), *specs]) == 1
    assert "Salt 3008vm leg (leg-3008vm-vm.json) passed nothing, or skipped" in capsys.readouterr().err
    record.update(passed=14, skipped=0)
    (tmp_path / "leg-3008vm-vm.json").write_text(json.dumps(record), encoding="utf-8")
    assert checker.main(["x", str(tmp_path), *specs]) == 0
    # the vm record is not the 3008 leg's: that leg's tiers are unchanged
    assert checker.main(["x", str(tmp_path), *SPECS]) == 0
