"""The one-off count of a log file (``logwatch.census``): read from its end, whole lines, inside the root."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.logwatch import census
from tests.support.beacon_env import full
from tests.support.beacon_lines import SUPPRESSED


def test_counts_lines_namespaces_and_times(tmp_path):
    suppressed_line, count = SUPPRESSED[0][1:]
    (tmp_path / "kern.log").write_text(full(7) + full(7) + full(8) + suppressed_line + "\n" + "other line\n")
    got = census.count(str(tmp_path), "/kern.log", 1000)
    assert got["path"] == str(tmp_path / "kern.log")
    assert (got["matched"], got["suppressed"], got["total"]) == (3, count, 3 + count)
    assert got["netns"] == {"7": 2, "8": 1}
    assert got["first"] is not None and got["last"] is not None


def test_a_tail_starts_at_a_whole_line(tmp_path):
    (tmp_path / "kern.log").write_text(full(1) * 10)
    got = census.count(str(tmp_path), "/kern.log", len(full(1)) * 3 + 5)
    assert got["matched"] == 3 and got["bytes"] == len(full(1)) * 3


def test_refusals(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/etc/hostname", tmp_path / "out.log")
    with pytest.raises(SaltInvocationError, match="not a regular file"):
        census.count(str(tmp_path), "/fifo", 100)
    with pytest.raises(SaltInvocationError):
        census.count(str(tmp_path), "/out.log", 100)
    with pytest.raises(SaltInvocationError):
        census.count(str(tmp_path), "/kern.log", 0)
    with pytest.raises(CommandExecutionError, match="cannot read"):
        census.count(str(tmp_path), "/missing.log", 100)
