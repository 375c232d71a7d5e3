"""Fixtures the unit tests share."""

import pytest

from tests.support.beacon_env import Env


@pytest.fixture
def env(tmp_path):
    """The beacon file loaded on its own, with a stand-in ``conntrack.status`` (logwatch tests)."""
    e = Env(tmp_path)
    yield e
    e.restart()
