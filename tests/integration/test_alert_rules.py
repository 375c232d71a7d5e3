"""The formula's Prometheus alerting rules under ``promtool``: valid, and on synthetic
series a rising table fires before it is full while a flat one never does
(tests/prometheus/conntrack-alerts.test.yml)."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(REPO, "salt", "conntrack", "files", "conntrack-alerts.rules.yml")
TESTS = os.path.join(REPO, "tests", "prometheus", "conntrack-alerts.test.yml")


def promtool():
    path = shutil.which("promtool", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin")
    if path is None:
        if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
            pytest.fail("promtool is required here (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _run(*args):
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=os.path.dirname(TESTS)
    )


def test_rules_are_valid():
    done = _run("check", "rules", RULES)
    assert done.returncode == 0 and "SUCCESS: 6 rules found" in done.stdout, done.stdout + done.stderr


def test_rising_fires_before_full_and_flat_never():
    done = _run("test", "rules", os.path.basename(TESTS))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@pytest.fixture
def formula(make_loaders, file_roots, monkeypatch):
    """Salt's real state system over the formula, with promtool on the PATH check_cmd searches."""
    monkeypatch.setenv("PATH", os.path.dirname(promtool()) + ":" + os.environ.get("PATH", ""))
    return make_loaders("/", file_roots=file_roots).modules.state


def test_the_formula_installs_the_rules_checked_by_promtool(formula, tmp_path):
    target = tmp_path / "prometheus" / "saltext-conntrack.rules.yml"
    pillar = {"conntrack": {"alert_rules": {"path": str(target)}}}
    (planned,) = formula.sls("conntrack.alert_rules", pillar=pillar, test=True)
    assert planned.result is None and not target.exists(), planned
    (ret,) = formula.sls("conntrack.alert_rules", pillar=pillar)
    assert ret.result is True, ret
    with open(RULES, encoding="utf-8") as fh:
        assert target.read_text(encoding="utf-8") == fh.read()
    (again,) = formula.sls("conntrack.alert_rules", pillar=pillar)
    assert again.result is True and not again.changes, again
    shown = formula.show_sls("conntrack.alert_rules", pillar=pillar)["conntrack-alert-rules"]["file"]
    assert {"check_cmd": "promtool check rules"} in shown
