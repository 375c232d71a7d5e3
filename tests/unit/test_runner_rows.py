"""The fleet runner's verdicts, ordering and mine reading, on a master cache laid out by Salt's own API (no daemon)."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_conntrack import report
from tests.support.loaderfile import load
from tests.support.mastercache import master_dir, populate, status

runner = load("_runners/conntrack.py")


def recent(drop=0, early_drop=0, seconds=300.0):
    return {
        "drop": drop,
        "early_drop": early_drop,
        "insert_failed": 0,
        "seconds": seconds,
        "since": "2026-11-25T11:00:00+00:00",
    }


@pytest.mark.parametrize(
    "st,verdict,words",
    [
        (status(10, 1000), "ok", "no drops"),
        (status(800, 1000), "warning", "at or above 75"),
        (status(950, 1000), "critical", "at or above 90"),
        # A status without ``recent`` (first sample, older minion): since boot counts.
        (status(10, 1000, drop=3), "critical", "3 packets dropped since boot"),
        (status(10, 1000, early_drop=3), "warning", "evicted early since boot"),
        # Drops inside the window are current; older ones are a note.
        (status(10, 1000, drop=30, recent=recent(drop=4)), "critical", "4 packets dropped in the last 300.0 s"),
        (status(10, 1000, drop=30, recent=recent()), "ok", "the 30 since boot are past"),
        (status(10, 1000, early_drop=9, recent=recent(early_drop=2)), "warning", "2 entries evicted early in the last"),
        ({"count": "10", "max": 1000}, "unknown", "malformed"),
        ({"count": 10, "max": 1000, "stats": {"drop": True}}, "unknown", "malformed"),
        ({"count": 10, "max": 1000, "recent": {"drop": 1}}, "unknown", "malformed"),
        ({"count": 10, "max": 1000, "recent": {"drop": 1, "seconds": float("nan")}}, "unknown", "malformed"),
        ("conntrack: this host has no connection tracking", "unknown", "no usable"),
    ],
)
def test_verdicts(st, verdict, words):
    row = report.fleet.row("m", st, 75, 90, "mine")
    assert row["verdict"] == verdict
    assert any(words in reason for reason in row["reasons"]), row["reasons"]


@pytest.fixture
def master(tmp_path, monkeypatch):
    """A master cache on disk; the runner's __opts__ are that master's."""
    opts = master_dir(tmp_path)
    monkeypatch.setattr(runner, "__opts__", opts, raising=False)
    monkeypatch.setattr(runner, "__context__", {}, raising=False)
    return opts


def test_worst_first_from_the_mine_cache(master):
    populate(
        master,
        {
            "calm": status(1, 1000),
            "busy": status(800, 1000),
            "full": status(1000, 1000, drop=9, recent=recent(drop=9)),
            "dropping": status(5, 1000, drop=2, recent=recent(drop=2)),
            "recovered": status(5, 1000, drop=2000, recent=recent()),
            "hot": status(900, 1000),
            "silent": None,
        },
    )
    rows = runner.fleet()
    assert [r["minion"] for r in rows] == ["full", "hot", "dropping", "busy", "silent", "recovered", "calm"]
    assert rows[0]["usage"] == 100.0 and rows[0]["drop"] == 9 and rows[0]["recent"]["drop"] == 9
    assert rows[4]["verdict"] == "unknown" and "mine" in rows[4]["reasons"][0]
    assert rows[5]["verdict"] == "ok" and "past" in rows[5]["reasons"][-1]
    assert [r["minion"] for r in runner.fleet(verdict="warning")] == ["full", "hot", "dropping", "busy"]
    assert [r["minion"] for r in runner.fleet(limit=2)] == ["full", "hot"]
    assert [r["minion"] for r in runner.fleet(tgt="calm,busy,ghost", tgt_type="list")] == ["busy", "calm"]
    assert runner.__context__.get("retcode", 0) == 0


def test_same_minions_and_acls_as_mine_get(master, monkeypatch):
    """The fleet reads the cache itself (one target expansion); it must see what Salt's mine.get sees."""
    import salt.cache
    import salt.runner
    import salt.utils.mine

    populate(master, {"open": status(1, 1000), "closed": None, "gated": None, "empty": None})
    cache = salt.cache.factory(master)
    cache.store(
        *runner._mine_location("closed"),
        {"conntrack.status": salt.utils.mine.wrap_acl_structure(status(2, 1000), allow_tgt="open")},
    )
    cache.store(
        *runner._mine_location("gated"), {"conntrack.status": salt.utils.mine.wrap_acl_structure(status(3, 1000))}
    )
    cache.store(*runner._mine_location("empty"), {"network.interfaces": {}})
    salt_rows = salt.runner.RunnerClient(master).cmd("mine.get", ["*", "conntrack.status"], print_event=False)
    rows = {r["minion"]: r for r in runner.fleet()}
    assert sorted(salt_rows) == sorted(m for m, r in rows.items() if r["verdict"] != "unknown") == ["gated", "open"]
    assert rows["gated"]["count"] == 3  # unwrapped like mine.get
    assert rows["closed"]["verdict"] == rows["empty"]["verdict"] == "unknown"
    monkeypatch.setitem(master, "mine_get", {"other_master": [".*"]})  # the master's own ACL shuts this id out
    assert runner.fleet()["result"] is False


def test_empty_mine_says_why_and_fails(master):
    populate(master, {"a": None, "b": None})
    ret = runner.fleet()
    assert ret["result"] is False and ret["retcode"] == 1 and runner.__context__["retcode"] == 1
    assert "none of the 2 targeted minions has conntrack.status in the mine" in ret["comment"]
    assert ret["add_to_minion_config"] == "mine_functions:\n  conntrack.status: []\nmine_interval: 5\n"
    ret = runner.fleet(tgt="nobody*")
    assert ret["result"] is False and "no minion matches tgt='nobody*'" in ret["comment"]


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"warning": "high"}, "warning must be a number"),
        ({"critical": None}, "critical must be a number"),
        ({"warning": 150}, "warning must be a number from 0 to 100"),
        ({"warning": float("nan")}, "warning must be a number"),
        ({"warning": 95, "critical": 90}, "must not be above critical"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"limit": 2.5}, "limit must be a whole number"),
        ({"limit": 5.0}, "limit must be a whole number"),
        ({"limit": "1_0"}, "limit must be a whole number"),
        ({"verdict": "bad"}, "verdict must be one of"),
        ({"tgt_type": "glob; rm"}, "tgt_type must be one of"),
        ({"live": "yes"}, "live must be true or false"),
        ({"live": True, "timeout": "soon"}, "timeout must be a whole number"),
        ({"live": True, "timeout": 0}, "timeout must be a whole number"),
        ({"live": True, "timeout": 5.0}, "timeout must be a whole number"),
    ],
)
def test_bad_arguments_are_invocation_errors(master, monkeypatch, kwargs, words):
    monkeypatch.setattr(runner, "_live", lambda *a: pytest.fail("published despite a bad argument"))
    with pytest.raises(SaltInvocationError, match=words):
        runner.fleet(**kwargs)


def test_string_arguments_from_the_cli_are_accepted(master):
    populate(master, {"a": status(800, 1000), "b": status(1, 1000), "c": status(950, 1000)})
    rows = runner.fleet(warning="70", critical="96.5", limit="2")
    assert [(r["minion"], r["verdict"]) for r in rows] == [("c", "warning"), ("a", "warning")]
