"""The pip route: the installed package exposes the loader directories to Salt."""

import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

SALT_CALL = os.path.join(os.path.dirname(sys.executable), "salt-call")


def test_entry_point_maps_the_loader_directories():
    points = [ep for ep in importlib.metadata.entry_points(group="salt.loader") if ep.value == "saltext_conntrack"]
    assert points, "pip install . did not register the salt.loader entry point"
    # Not points[0].load(): the tests put the repo first on sys.path, where
    # saltext_conntrack/ (and a build's egg-info) have no loader subdirectories.
    installed = None
    for dist in importlib.metadata.distributions(name="saltext.conntrack"):
        for file in dist.files or ():
            if str(file) == "saltext_conntrack/modules/conntrack.py":
                installed = pathlib.Path(dist.locate_file("saltext_conntrack"))
    assert installed, "no installed copy of the package: run `pip install .`"
    for kind, source in (("modules", "_modules"), ("states", "_states"), ("beacons", "_beacons"), ("runners", "_runners")):
        for path in (REPO / source).glob("*.py"):
            copy = installed / kind / path.name
            assert copy.is_file(), f"{copy} missing: run `pip install .` again"
            # CI installs the tree it tests: a stale copy would test old code.
            assert copy.read_bytes() == path.read_bytes(), f"{copy} differs from {path}: reinstall"


@pytest.mark.parametrize("function,key", [("conntrack.status", "max"), ("conntrack.check", "verdict"), ("conntrack.recommend", "rules")])
def test_readme_demo_command(function, key):
    """What `make demo` runs: masterless salt-call with the repo's conf/, nothing in /etc/salt."""
    proc = subprocess.run(
        [SALT_CALL, "--local", "-c", "conf", "--out=json", function],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert key in json.loads(proc.stdout)["local"]
