"""What an operator sees on the command line: real ``salt-run`` and ``salt-call``
processes, their printed output read as a person would.

The fleet runs against a synthetic master of 10,000 minions (keys and mine in
Salt's own cache layout, tests/support/mastercache.py: no daemon needed); the
execution functions run masterless on a fixture root.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import LOADER_DIRS, REPO
from tests.support.fixtures import build_root
from tests.support.mastercache import fleet_statuses, master_dir, populate

BIN = os.path.dirname(sys.executable)


def _run(tool, confdir, *args, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "_utils"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [os.path.join(BIN, tool), "-c", str(confdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def big_master(tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet10k")
    populate(master_dir(work), fleet_statuses(10_000))
    return work


def test_fleet_table_is_one_line_per_minion_within_160_columns(big_master):
    proc = _run("salt-run", big_master, "conntrack.fleet", "--out=table", "--no-color")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    rows = [line.strip() for line in lines if line.lstrip().startswith("|")]
    # Salt's table prints a rule line between rows; every other line is one row.
    assert all(set(line.strip()) <= {"-"} for line in lines if not line.lstrip().startswith("|")), lines[:5]
    assert len(rows) == 10_001, len(rows)
    header = [cell.strip() for cell in rows[0].strip("| ").split(" | ")]
    assert header == ["minion", "verdict", "usage", "count", "max", "drops", "full in", "reason"]
    assert max(len(line) for line in lines) <= 160, max(lines, key=len)
    minions = [row.strip("| ").split(" | ")[0].strip() for row in rows[1:]]
    assert len(set(minions)) == 10_000
    first = [cell.strip() for cell in rows[1].strip("| ").split(" | ")]
    assert first[1] == "critical" and first[5] != "-" and first[6], first


def test_fleet_json_keeps_every_key_in_reading_order(big_master):
    proc = _run("salt-run", big_master, "conntrack.fleet", "limit=3", "--out=json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert len(rows) == 3
    assert list(rows[0])[:7] == ["minion", "verdict", "usage", "count", "max", "drop", "reason"]
    assert {"recent", "reasons", "early_drop", "insert_failed", "source"} <= set(rows[0])


@pytest.fixture
def minion_conf(tmp_path):
    root = pathlib.Path(build_root(tmp_path / "root", count=500, maximum=1000, mem_kb=1024 * 1024))
    conf = tmp_path / "conf"
    conf.mkdir()
    run = tmp_path / "run"
    (conf / "minion").write_text(
        json.dumps(
            {
                "file_client": "local",
                "root_dir": str(run),
                "log_file": str(run / "minion.log"),
                "conntrack.root": str(root),
                **{key: value for key, value in LOADER_DIRS.items() if key != "runner_dirs"},
            }
        ),
        encoding="utf-8",
    )
    return conf, root


def test_a_policy_refusal_prints_its_reason_not_the_docstring(minion_conf):
    conf, root = minion_conf
    proc = _run("salt-call", conf, "--local", "conntrack.set_max", "99999999")
    assert proc.returncode != 0
    printed = proc.stdout + proc.stderr
    assert "above this host's ceiling" in printed, printed
    assert "CLI Example" not in printed and "Passed invalid arguments" not in printed, printed
    assert (root / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"
    # A malformed value is a usage error: there the docstring is the help.
    proc = _run("salt-call", conf, "--local", "conntrack.set_max", "12abc")
    assert proc.returncode != 0 and "CLI Example" in proc.stdout + proc.stderr


def test_a_test_run_says_it_was_a_test(minion_conf):
    conf, root = minion_conf
    proc = _run("salt-call", conf, "--local", "--out=json", "conntrack.set_max", "4000", "test=True")
    assert proc.returncode == 0, proc.stderr
    ret = json.loads(proc.stdout)["local"]
    assert ret["test"] is True and "nothing written" in ret["comment"], ret
    assert (root / "proc/sys/net/netfilter/nf_conntrack_max").read_text() == "1000\n"


def test_empty_dependents_say_why(minion_conf):
    conf, root = minion_conf
    proc = _run("salt-call", conf, "--local", "conntrack.dependents")
    assert proc.returncode == 0, proc.stderr
    # This host's own rulesets are read too; the fixture root's saved files add nothing.
    assert "comment:" in proc.stdout and ("no rule needs conntrack in" in proc.stdout or "rule(s)" in proc.stdout)


def test_namespaces_table_is_one_line_each(minion_conf):
    conf, _ = minion_conf
    proc = _run("salt-call", conf, "--local", "--out=table", "--no-color", "conntrack.namespaces")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith("|")]
    assert rows and "namespace" in rows[0] and "owner or error" in rows[0], proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 160
