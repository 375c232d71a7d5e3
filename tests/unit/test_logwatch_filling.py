"""logwatch.filling: one ``filling`` event per incident of a rising table, by the verdict's rule."""

from saltext_conntrack.logwatch import filling
from tests.support.beacon_env import full, kinds

SNAP = {"count": 500, "max": 1000, "usage": 50.0, "drop": 0}


def _trend(full_in, rise=2.0):
    return {"full_in": full_in, "count_per_s": rise, "insert_per_s": 2.5, "seconds": 60.0}


def test_one_event_per_incident_until_it_is_over():
    machine = filling.Filling()
    assert machine.events(900, 120, SNAP, _trend(None), 0.0) == []  # too short a history
    assert machine.events(900, 120, SNAP, _trend(2000.0), 1.0) == []
    (event,) = machine.events(900, 120, SNAP, _trend(250.0), 2.0)
    assert event == {
        "tag": "filling",
        "level": "warning",
        "threshold": 900,
        "full_in": 250.0,
        "count_per_s": 2.0,
        "insert_per_s": 2.5,
        "seconds": 60.0,
        "count": 500,
        "max": 1000,
        "status": SNAP,
    }
    # escalation, a full table and a wavering trend inside the band: the same incident
    for trend in (_trend(60.0), _trend(0), _trend(950.0), _trend(1700.0)):
        assert machine.events(900, 120, SNAP, trend, 3.0) == []
    assert machine.events(900, 120, SNAP, _trend(None, rise=-1.0), 4.0) == []  # not rising: over
    assert machine.filling is None
    assert [e["level"] for e in machine.events(900, 120, SNAP, _trend(100.0), 5.0)] == ["critical"]


def test_full_already_or_turned_off_sends_nothing():
    assert filling.Filling().events(900, 120, SNAP, _trend(0), 0.0) == []
    assert filling.Filling().events(None, None, SNAP, _trend(10.0), 0.0) == []
    assert filling.Filling().events(None, 120, SNAP, _trend(500.0), 0.0) == []
    assert filling.Filling().events(None, 120, SNAP, _trend(100.0), 0.0)[0]["threshold"] == 120


def test_the_incident_survives_a_restart():
    machine = filling.Filling()
    machine.events(900, 120, SNAP, _trend(300.0), 1700000000.0)
    again = filling.Filling()
    again.load(machine.to_dict())
    assert again.filling == {"since": "2023-11-14T22:13:20+00:00", "level": "warning"}
    assert again.events(900, 120, SNAP, _trend(200.0), 1700000010.0) == []
    fresh = filling.Filling()
    fresh.load({"filling": "garbled"})
    assert fresh.filling is None


def test_the_beacon_sends_filling_once_and_before_table_full(env):
    env.log.write_text("")
    env.status["trend"] = _trend(None)
    assert env.run() == []
    env.status["trend"] = _trend(600.0)
    (event,) = env.run(tick=10)
    assert event["tag"] == "filling" and event["full_in"] == 600.0 and event["status"]["count"] == 10
    env.status["trend"] = _trend(100.0)
    assert env.run(tick=10) == []  # the same incident, escalated: no second event
    env.restart()  # the incident is in the state file
    env.status["trend"], env.status["stats"]["drop"] = _trend(0), 5
    env.append(full(1))
    assert "filling" not in kinds(env.run(tick=10))
    env.status["trend"] = _trend(None, rise=0.0)
    env.run(tick=10)
    env.status["trend"] = _trend(50.0)
    env.append(full(2))
    assert kinds(env.run({"min_interval": 0}, tick=200))[:2] == ["filling", "table_full"]


def test_beacon_options_turn_it_off_and_are_checked(env):
    env.log.write_text("")
    env.status["trend"] = _trend(10.0)
    assert env.run({"full_in_warning": None}, {"full_in_critical": None}) == []
    ok, why = env.mod.validate([{"full_in_warning": 60}, {"full_in_critical": 120}])
    assert not ok and "full_in_warning (60) must not be below full_in_critical (120)" in why
