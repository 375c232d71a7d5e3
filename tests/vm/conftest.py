"""vm tier: Debian's modular kernel (nf_conntrack.ko) booted under QEMU by virtme-ng.

Two boots of one guest, each running tests/vm/guest.py once: the checks run
inside, in one Python process with Salt's loader, and write their results to
a directory shared with the host; the tests here assert on those results.
Without root (or on another architecture) the tier skips with the reason;
with CONNTRACK_REQUIRE_KERNEL=1 (CI) that skip is a failure, and
scripts/ci-check-legs fails a leg that skipped anything.
"""

import os

import pytest

from tests.support import vm


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


def _unavailable(reason):
    if os.environ.get("CONNTRACK_REQUIRE_KERNEL"):
        pytest.fail(f"the vm tier is required here but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def machine():
    reason = vm.unavailable_reason()
    if reason:
        _unavailable(reason)
    env, reason = vm.setup()
    if reason:
        _unavailable(reason)
    return vm.Machine(env)


@pytest.fixture(scope="session")
def boot1(machine):
    return machine.boot("boot1")


@pytest.fixture(scope="session")
def boot2(machine, boot1):  # the same /etc layer, after boot1 wrote it
    return machine.boot("boot2")
