"""The beacon's incidents (``logwatch.incidents``): coalescing, usage thresholds with hysteresis, the drop counter; on recorded lines.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

from saltext_conntrack.logwatch import incidents
from tests.support.beacon_env import full, kinds, only_full, seen


def test_one_event_per_run_and_min_interval_carries_counts(env):
    env.log.write_text("")
    env.run({"min_interval": 60})
    env.append(full(1) * 1000)
    first = only_full(env.run({"min_interval": 60}))
    assert first["matched"] == 1000 and first["incident"]["events"] == 1
    env.append(full(2) * 3)
    assert env.run({"min_interval": 60}, tick=20) == []
    env.append(full(3) * 4)
    assert env.run({"min_interval": 60}, tick=20) == []
    # No new line, but the interval is over: the carried counts go out.
    second = only_full(env.run({"min_interval": 60}, tick=21))
    assert seen(second) == {2: 3, 3: 4}
    assert second["incident"]["events"] == 2
    assert second["incident"]["start"] == first["incident"]["start"]
    assert env.run({"min_interval": 60}, tick=100) == []


def test_a_new_incident_fires_at_once(env):
    env.log.write_text("")
    conf = ({"min_interval": 600}, {"incident_gap": 30})
    env.run(*conf)
    env.append(full(1))
    assert only_full(env.run(*conf))["incident"]["events"] == 1
    env.append(full(2))
    assert env.run(*conf, tick=5) == []  # same incident, within min_interval: carried
    env.append(full(3))
    # 31 s without a line: the incident is over, this is a new one; the carried line rides along.
    event = only_full(env.run(*conf, tick=31))
    assert seen(event) == {2: 1, 3: 1}
    assert event["incident"]["events"] == 1


def test_usage_thresholds_with_hysteresis(env):
    env.log.write_text("")
    conf = ({"usage_warning": 75}, {"usage_critical": 90}, {"hysteresis": 5}, {"status_interval": 0})
    seq = [
        (50, []),
        (76, [("usage_high", "warning")]),
        (80, []),  # still warning: not every run
        (74, []),  # inside the band (above 70): not yet ok
        (91, [("usage_high", "critical")]),
        (95, []),
        (80, []),  # down to warning: no event
        (92, [("usage_high", "critical")]),
        (69, [("usage_ok", "critical")]),
        (72, []),
        (76, [("usage_high", "warning")]),
    ]
    for count, expected in seq:
        env.set_usage(count)
        got = [(e["tag"], e.get("level") or e.get("previous")) for e in env.run(*conf)]
        assert got == expected, count
    env.set_usage(10)
    ok = env.run(*conf)[0]
    assert ok["tag"] == "usage_ok" and ok["clear_below"] == 70 and ok["usage"] == 10.0


def test_high_usage_at_start_fires_once(env):
    env.log.write_text("")
    env.set_usage(95)
    assert kinds(env.run({"status_interval": 0})) == ["usage_high"]
    assert env.run({"status_interval": 0}) == []


def test_drop_counter_rises_fire_drops(env):
    env.log.write_text("")
    conf = ({"status_interval": 0}, {"min_interval": 60})
    env.set_usage(10, drop=100, early_drop=5)
    assert env.run(*conf) == []  # the baseline
    env.set_usage(10, drop=130, early_drop=9)
    event = env.run(*conf)[0]
    assert event["tag"] == "drops" and (event["delta"], event["drop"], event["early_drop_delta"]) == (30, 130, 4)
    env.set_usage(10, drop=150)
    assert env.run(*conf, tick=10) == []  # within min_interval: carried
    env.set_usage(10, drop=151)
    assert env.run(*conf, tick=10) == []
    event = env.run(*conf, tick=50)[0]
    assert (event["delta"], event["drop"]) == (21, 151)
    env.set_usage(10, drop=3)  # counters reset (module reload): a new baseline, no event
    assert env.run(*conf, tick=100) == []
    assert env.run({"drops": False}, {"status_interval": 0}, tick=100) == []


def test_status_interval_spares_idle_runs(env):
    env.log.write_text("")
    for _ in range(10):
        env.run({"status_interval": 5})
    assert env.status_calls == 2  # t=1 and t=6 of ten one-second runs
    env.append(full(1))
    assert only_full(env.run({"status_interval": 5}))["status"]["count"] == 10
    assert env.status_calls == 3  # an event always carries a fresh snapshot


def test_status_unavailable_is_not_fatal(env):
    env.log.write_text("")
    env.mod.__salt__ = {"conntrack.status": lambda: (_ for _ in ()).throw(RuntimeError("not loaded"))}
    env.run()
    env.append(full(1))
    assert only_full(env.run())["status"] is None


def test_the_four_machines_share_only_the_state_file():
    tracker = incidents.Tracker()
    snap = {"count": 95, "max": 100, "usage": 95.0, "drop": 10}
    assert [e["level"] for e in tracker.usage.events(75, 90, 5, snap)] == ["critical"]
    assert tracker.usage.events(75, 90, 5, snap) == []  # reported once
    assert tracker.drops.events(0, snap, 0, 1.0) == []  # first reading: a baseline
    tracker.burst.add([(None, None, 1.0)], None, False, 1.0, 120)
    assert tracker.burst.due(1.0, 60) and tracker.burst.pending_netns() == [None]
    again = incidents.Tracker.from_dict(tracker.to_dict())
    assert sorted(tracker.to_dict()) == sorted(
        ("acc", "incident", "open_until", "level", "drop", "drop_pending", "drop_last_event", "filling")
    )
    assert (again.usage.level, again.drops.drop, again.burst.acc["matched"]) == ("critical", [10, 0, 1.0], 1)


import pytest  # noqa: E402


@pytest.mark.parametrize(
    "tracker",
    [{"open_until": "soon"}, {"drop": [1, 2]}, {"level": "purple"}, {"acc": {"matched": "x", "netns": []}},
     {"acc": {"netns": [["a"]]}}, {"incident": {"start": [1]}}],
)  # fmt: skip
def test_a_corrupt_beacon_state_is_set_aside_and_a_fresh_start(tmp_path, tracker):
    import json

    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 2, "source": None, "tracker": tracker}))
    source, fresh = incidents.load(str(path))
    assert source is None and fresh.to_dict() == incidents.Tracker().to_dict()
    assert [p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir()] == [True]
