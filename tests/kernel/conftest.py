"""Kernel tier: the real kernel of this machine, in namespaces the tests create.

Without root (or nft, ip, conntrack) these tests skip with the reason; with
CONNTRACK_REQUIRE_KERNEL=1 (CI) a skip is a failure instead.
"""

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


@pytest.fixture
def netns():
    with Netns() as ns:
        yield ns


@pytest.fixture
def global_knobs():
    """Snapshot nf_conntrack_max and hashsize; restored after the test, even on failure."""
    with saved_globals() as saved:
        yield saved
