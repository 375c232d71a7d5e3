"""Kernel tier: the real kernel of this machine, in namespaces the tests create.

Without root (or nft, ip, conntrack) these tests skip with the reason; with
CONNTRACK_REQUIRE_KERNEL=1 (CI) a skip is a failure instead.
"""

import fcntl
import os

import pytest

from tests.support.kernel import Netns, kernel_unavailable_reason, saved_globals


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/kernel/" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(scope="session", autouse=True)
def kernel_available():
    reason = kernel_unavailable_reason()
    if reason:
        if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
            pytest.fail(f"kernel tests are required here but cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def one_kernel_run_at_a_time(kernel_available):
    """Two test runs on one host would fight over the global nf_conntrack_max."""
    with open("/tmp/saltext-conntrack-kernel-tests.lock", "w", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture
def netns():
    with Netns() as ns:
        yield ns


@pytest.fixture
def global_knobs():
    """Snapshot nf_conntrack_max and hashsize; restored after the test, even on failure."""
    with saved_globals() as saved:
        yield saved


@pytest.fixture
def real_root(tmp_path):
    """A conntrack.root whose proc, sys, lib and run are this host's, with an empty etc/sysctl.d
    of the test's own: the states act on the real kernel and write only under tmp_path."""
    root = tmp_path / "host"
    root.mkdir()
    for name in ("proc", "sys", "lib", "run"):
        os.symlink(f"/{name}", root / name)
    (root / "etc" / "sysctl.d").mkdir(parents=True)
    return root
