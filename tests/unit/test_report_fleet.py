"""The fleet core without a master: rows, order, mine entries and their ACLs, the no-data result."""

import pytest
import salt.utils.mine
from salt.exceptions import SaltInvocationError

from saltext_conntrack.report import fleet
from tests.support.mastercache import status


def test_rows_worst_first_with_the_silent_as_unknown():
    data = {"calm": status(1, 1000), "hot": status(950, 1000), "busy": status(800, 1000)}
    rows = fleet.rows(data, ["calm", "hot", "busy", "ghost"], 75, 90, live=False)
    assert [r["minion"] for r in rows] == ["hot", "busy", "ghost", "calm"]
    assert rows[2]["verdict"] == "unknown" and "mine" in rows[2]["reasons"][0]
    assert [r["minion"] for r in fleet.rows(data, [], 75, 90, True, "warning", 1)] == ["hot"]


def test_mine_entries_and_acls():
    wrapped = salt.utils.mine.wrap_acl_structure(status(3, 1000), allow_tgt="other")
    mines = {"open": {fleet.FUNCTION: status(1, 1000)}, "gated": {fleet.FUNCTION: wrapped}, "none": None}
    asked = []

    def targets_master(tgt, tgt_type):
        asked.append((tgt, tgt_type))
        return False

    found = fleet.from_mine(["open", "gated", "none", "gated"], mines.get, targets_master)
    assert list(found) == ["open"] and asked == [("other", "glob")]  # asked once
    assert fleet.mine_allowed(None, "master") and not fleet.mine_allowed([], "master")
    assert fleet.mine_allowed({"mast.*": ["conntrack.*"]}, "master")
    assert not fleet.mine_allowed({"other": [".*"]}, "master")


def test_no_data_says_why():
    assert "no minion matches" in fleet.no_data("x*", "glob", [], False, None)["comment"]
    live = fleet.no_data("*", "glob", ["a"], True, 5)
    assert "within 5 s" in live["comment"] and "add_to_minion_config" not in live
    assert fleet.no_data("*", "glob", ["a"], False, None)["add_to_minion_config"] == fleet.MINE_SETUP


def test_arguments_and_expansion():
    assert fleet.arguments("*", "glob", "70", 90, None, "3") == (70, 90, 3)
    with pytest.raises(SaltInvocationError, match="tgt_type must be one of"):
        fleet.arguments("*", "nope", 75, 90, None, None)
    assert fleet.expand_type("pillar", live=False) == "pillar_exact"
    assert fleet.expand_type("pillar", live=True) == "pillar"


def test_no_data_command_quotes_the_target_for_the_shell():
    """Class: fix texts. Before: ``salt {tgt!r}``: a target with a quote came out in double quotes, $() live."""
    import shlex

    comment = fleet.no_data("web'$(reboot)*", "glob", ["a"], False, None)["comment"]
    command = comment.rsplit("then run: ", 1)[1]
    assert shlex.split(command) == ["salt", "web'$(reboot)*", "mine.update"]
    listed = fleet.no_data(["a", "b;c"], "list", ["a"], False, None)["comment"].rsplit("then run: ", 1)[1]
    assert shlex.split(listed) == ["salt", "-L", "a,b;c", "mine.update"]
