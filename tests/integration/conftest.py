"""Real salt-master and salt-minion daemons (pytest-salt-factories).

``master`` and ``minion`` are shared by the tier; a test that needs its own
minion config (beacons, a fixture root) starts one with
``master.salt_minion_daemon(random_string("x-"), overrides={**LOADER_DIRS, ...})``.
"""

import pytest
from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS


@pytest.fixture(scope="session")
def master(salt_factories, file_roots):
    factory = salt_factories.salt_master_daemon(
        random_string("master-"),
        overrides={
            **LOADER_DIRS,
            "file_roots": file_roots,
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def minion(master):
    factory = master.salt_minion_daemon(random_string("minion-"), overrides={**LOADER_DIRS})
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def salt_cli(master):
    return master.salt_cli()


@pytest.fixture(scope="session")
def salt_run_cli(master):
    return master.salt_run_cli()


@pytest.fixture(scope="session")
def salt_call_cli(minion):
    return minion.salt_call_cli()
