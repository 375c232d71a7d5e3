"""The fleet runner's verdicts and ordering, on plain data (no master)."""

import pytest

from tests.support.loaderfile import load

runner = load("_runners/conntrack.py")


def status(count, maximum, drop=0, early_drop=0):
    return {"count": count, "max": maximum, "stats": {"drop": drop, "early_drop": early_drop, "insert_failed": 0}}


@pytest.mark.parametrize(
    "st,verdict",
    [
        (status(10, 1000), "ok"),
        (status(800, 1000), "warning"),
        (status(950, 1000), "critical"),
        (status(10, 1000, drop=3), "critical"),
        (status(10, 1000, early_drop=3), "warning"),
        ({"count": "10", "max": 1000}, "unknown"),
        ("conntrack: this host has no connection tracking", "unknown"),
    ],
)
def test_verdicts(st, verdict):
    assert runner._row("m", st, 75, 90, "mine")["verdict"] == verdict


def test_worst_first(monkeypatch):
    data = {
        "calm": status(1, 1000),
        "busy": status(800, 1000),
        "full": status(1000, 1000, drop=9),
        "dropping": status(5, 1000, drop=2),
        "hot": status(900, 1000),
    }
    monkeypatch.setattr(runner, "__salt__", {"mine.get": lambda *a, **k: data}, raising=False)
    monkeypatch.setattr(runner, "_targeted", lambda tgt, tgt_type: set(data) | {"silent"})
    rows = runner.fleet()
    assert [r["minion"] for r in rows] == ["full", "hot", "dropping", "busy", "silent", "calm"]
    assert rows[0]["usage"] == 100.0 and rows[0]["drop"] == 9
    assert rows[4]["verdict"] == "unknown" and "mine" in rows[4]["reasons"][0]
    assert [r["minion"] for r in runner.fleet(verdict="warning")] == ["full", "hot", "dropping", "busy"]
    assert [r["minion"] for r in runner.fleet(limit=2)] == ["full", "hot"]


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"warning": "high"}, "warning must be a usage percent"),
        ({"critical": None}, "critical must be a usage percent"),
        ({"warning": 150}, "warning must be a usage percent"),
        ({"warning": 95, "critical": 90}, "must not be above critical"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"limit": 2.5}, "limit must be a whole number"),
        ({"verdict": "bad"}, "verdict must be one of"),
        ({"live": True, "timeout": "soon"}, "timeout must be a whole number"),
        ({"live": True, "timeout": 0}, "timeout must be a whole number"),
    ],
)
def test_bad_arguments_are_invocation_errors(monkeypatch, kwargs, words):
    from salt.exceptions import SaltInvocationError  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(runner, "__salt__", {"mine.get": lambda *a, **k: {}}, raising=False)
    monkeypatch.setattr(runner, "__opts__", {"timeout": 5}, raising=False)
    monkeypatch.setattr(runner, "_targeted", lambda tgt, tgt_type: set())
    monkeypatch.setattr(runner, "_live", lambda *a: pytest.fail("published despite a bad argument"))
    with pytest.raises(SaltInvocationError, match=words):
        runner.fleet(**kwargs)


def test_string_arguments_from_the_cli_are_accepted(monkeypatch):
    data = {"a": status(800, 1000), "b": status(1, 1000), "c": status(950, 1000)}
    monkeypatch.setattr(runner, "__salt__", {"mine.get": lambda *a, **k: data}, raising=False)
    monkeypatch.setattr(runner, "_targeted", lambda tgt, tgt_type: set(data))
    rows = runner.fleet(warning="70", critical="96.5", limit="2")
    assert [(r["minion"], r["verdict"]) for r in rows] == [("c", "warning"), ("a", "warning")]
