"""One configured beacon between runs (``logwatch.watch``): restarts inside min_interval, close, findings, idle runs.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import os

from tests.support import beacon_env
from tests.support.beacon_env import full, only_full, seen


def test_restart_inside_min_interval_keeps_held_back_counts_and_the_incident(env):
    conf = ({"min_interval": 60},)
    env.log.write_text("")
    env.run(*conf)
    env.append(full(1))
    first = only_full(env.run(*conf))
    env.append(full(2) * 3 + "Nov 25 11:00:02 vm kernel: net_ratelimit: 40 callbacks suppressed\n")
    assert env.run(*conf, tick=10) == []  # held back by min_interval
    env.restart()  # killed: no close(), only what the last run saved
    env.append(full(3))
    assert env.run(*conf, tick=10) == []  # still inside min_interval after the restart
    second = only_full(env.run(*conf, tick=45))
    assert seen(second) == {2: 3, 3: 1} and second["suppressed"] == 40
    assert second["incident"] == {"start": first["incident"]["start"], "events": 2}  # one incident, not two


def test_close_saves_what_the_run_held_back(env):
    config = [{"source": "/var/log/kern.log"}, {"min_interval": 60}]
    env.log.write_text("")
    env.mod.beacon(config)
    env.append(full(1))
    env.clock.tick(1)
    env.mod.beacon(config)
    env.append(full(2))
    state = env.mod.__context__["conntrack.beacon.conntrack"]
    state.source.read = lambda budget, now: []  # (nothing read in this run, to show close() saves)
    env.mod.close(config)
    saved = beacon_env.saved(env.cachedir / "conntrack" / "beacon-conntrack.json")
    assert saved["tracker"]["incident"]["events"] == 1 and saved["source"]["kind"] == "file"


def test_table_full_carries_the_cheap_findings(env):
    calls = []
    finding = {"id": "drops_rising", "severity": "critical", "evidence": {"drop": 5}, "why": "...", "fix": "..."}

    def diagnose(walk=True):
        calls.append(walk)
        return {"findings": [finding]}

    env.mod.__salt__["conntrack.diagnose"] = diagnose
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    assert only_full(env.run({"min_interval": 0}))["findings"] == [finding] and calls == [False]

    def broken(walk=True):
        raise RuntimeError("diagnose broke")

    env.mod.__salt__["conntrack.diagnose"] = broken
    env.append(full(2))
    event = only_full(env.run({"min_interval": 0}, tick=200))  # a new incident; the event goes out anyway
    assert seen(event) == {2: 1} and "findings" not in event
    del env.mod.__salt__["conntrack.diagnose"]
    env.append(full(3))
    assert "findings" not in only_full(env.run({"min_interval": 0}, tick=200))


def test_findings_are_computed_once_per_incident(env):
    """diagnose(walk=False) runs nft and surveys namespaces: once per incident, again when stale."""
    from saltext_conntrack.logwatch import watch

    calls = []

    def diagnose(walk=True):
        calls.append(env.clock())
        return {"findings": [{"id": f"f{len(calls)}"}]}

    env.mod.__salt__["conntrack.diagnose"] = diagnose
    env.log.write_text("")
    env.run({"min_interval": 0})
    events = []
    for i in range(5):  # one incident, five events
        env.append(full(i))
        events.append(only_full(env.run({"min_interval": 0}, tick=10)))
    assert len(calls) == 1 and all(e["findings"] == [{"id": "f1"}] for e in events)
    assert len({e["findings_at"] for e in events}) == 1
    for i in range(int(watch.FINDINGS_TTL // 100)):  # the same incident, lines 100 s apart, past the TTL
        env.append(full(20 + i))
        last = only_full(env.run({"min_interval": 0}, tick=100))
    assert len(calls) == 2 and last["findings"] == [{"id": "f2"}] and last["incident"]["events"] == 11
    env.append(full(10))
    assert only_full(env.run({"min_interval": 0}, tick=300))["findings"] == [{"id": "f3"}]  # a new incident


def test_idle_runs_write_nothing(env):
    """The state file is written when the cursor or the held-back counts move, not on idle runs,
    a rotated file held open included."""
    state = env.cachedir / "conntrack" / "beacon-conntrack.json"
    env.log.write_text("")
    env.run()
    env.append(full(1))
    env.run()
    os.rename(env.log, f"{env.log}.1")
    env.log.write_text("")  # empty: the old file stays held
    env.run()
    before = state.read_bytes()
    for _ in range(5):
        assert env.run() == []
    assert state.read_bytes() == before  # each save writes a new sequence number
    assert len(beacon_env.saved(state)["source"]["held"]) == 1


def test_a_missing_status_function_is_a_failed_reading_not_a_failed_run(tmp_path):
    from tests.support.loaderfile import load

    beacon = load("_beacons/conntrack.py", name="unit_beacon_without_status")
    beacon.__opts__ = {"cachedir": str(tmp_path / "cache"), "conntrack.root": str(tmp_path)}
    beacon.__context__ = {}
    beacon.__salt__ = {}
    (tmp_path / "kern.log").write_text("")
    assert beacon.beacon([{"source": "/kern.log"}]) == []


def test_probes_snapshot_and_findings_never_raise(tmp_path):
    from saltext_conntrack.logwatch import watch

    status = {"count": 5, "max": 10, "usage": 50.0, "stats": {"drop": 3, "early_drop": 1}, "trend": {"full_in": 9}}
    assert watch.snapshot(watch.Probes(status=lambda: status)) == (
        {"count": 5, "max": 10, "usage": 50.0, "drop": 3},
        1,
        {"full_in": 9},
    )

    # Over netlink: the source rides along; no counters at all: drop null, with the reason.
    sources = {"count": "procfs", "max": "procfs", "stats": "netlink"}
    assert watch.snapshot(watch.Probes(status=lambda: {**status, "source": sources}))[0]["source"] == sources
    blind = {**status, "stats": None, "unknown": {"stats": "procfs: no file; netlink: EPERM"}}
    snap, early, _ = watch.snapshot(watch.Probes(status=lambda: blind))
    assert snap["drop"] is None and early is None and snap["drop_unknown"] == "procfs: no file; netlink: EPERM"

    def broken(**kwargs):
        raise RuntimeError("broken")

    assert watch.snapshot(watch.Probes(status=broken)) == (None, None, None)
    assert watch.findings(watch.Probes(status=broken)) is None  # no diagnose
    assert watch.findings(watch.Probes(status=broken, diagnose=broken)) is None
    assert watch.findings(watch.Probes(status=broken, diagnose=lambda walk: {"findings": [{"id": "x"}]})) == [
        {"id": "x"}
    ]
    assert watch.state_path(str(tmp_path), "conntrack") == str(tmp_path / "conntrack" / "beacon-conntrack.json")
