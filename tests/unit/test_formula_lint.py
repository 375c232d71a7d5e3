"""salt-lint over the formula and reactor SLS (skipped where salt-lint is not installed)."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _salt_lint():
    found = shutil.which("salt-lint") or os.path.join(os.path.dirname(sys.executable), "salt-lint")
    return found if os.path.exists(found) else None


@pytest.mark.skipif(_salt_lint() is None, reason="salt-lint is not installed (pip install salt-lint)")
def test_salt_lint_clean():
    files = sorted(str(p) for p in (REPO / "salt").rglob("*.sls"))
    assert len(files) >= 8
    proc = subprocess.run([_salt_lint(), *files], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reactor_config_maps_table_full_to_the_repo_sls():
    import yaml

    with open(REPO / "salt/reactor/conntrack.conf", encoding="utf-8") as fh:
        conf = yaml.safe_load(fh)
    (entry,) = conf["reactor"]
    assert entry == {"salt/beacon/*/conntrack/table_full": ["salt://reactor/conntrack_remediate.sls"]}
    assert (REPO / "salt/reactor/conntrack_remediate.sls").exists()
