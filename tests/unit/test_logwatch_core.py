"""The beacon's core pieces on their own: typed options, the reader protocol, the three machines."""

import pytest

from saltext_conntrack.logwatch import follow, incidents, options, protocol, sources


def test_options_are_typed_and_defaulted(tmp_path):
    conf = options.parse([{"source": "kmsg"}, {"usage_warning": None}], str(tmp_path), "conntrack")
    assert isinstance(conf, options.Options)
    assert (conf.source, conf.usage_warning, conf.usage_critical, conf.name) == ("kmsg", None, 90, "conntrack")
    assert options.validate([{"hysteresis": 95}], str(tmp_path), "conntrack", {}) == (
        False,
        "conntrack beacon: hysteresis (95) must be below the lowest usage threshold (75)",
    )


@pytest.mark.parametrize("reader", [follow.FileSource, sources.KmsgSource, sources.JournalSource])
def test_every_reader_is_a_log_reader(reader):
    assert issubclass(reader, protocol.LogReader)
    assert not reader.__abstractmethods__


def test_the_three_machines_share_only_the_state_file():
    tracker = incidents.Tracker()
    snap = {"count": 95, "max": 100, "usage": 95.0, "drop": 10}
    assert [e["level"] for e in tracker.usage.events(75, 90, 5, snap)] == ["critical"]
    assert tracker.usage.events(75, 90, 5, snap) == []  # reported once
    assert tracker.drops.events(0, snap, 0, 1.0) == []  # first reading: a baseline
    tracker.burst.add([(None, None, 1.0)], None, False, 1.0, 120)
    assert tracker.burst.due(1.0, 60) and tracker.burst.pending_netns() == [None]
    again = incidents.Tracker.from_dict(tracker.to_dict())
    assert sorted(tracker.to_dict()) == sorted(
        ("acc", "incident", "open_until", "level", "drop", "drop_pending", "drop_last_event")
    )
    assert (again.usage.level, again.drops.drop, again.burst.acc["matched"]) == ("critical", [10, 0, 1.0], 1)


def test_a_missing_status_function_is_a_failed_reading_not_a_failed_run(tmp_path):
    from tests.support.loaderfile import load

    beacon = load("_beacons/conntrack.py", name="unit_beacon_without_status")
    beacon.__opts__ = {"cachedir": str(tmp_path / "cache"), "conntrack.root": str(tmp_path)}
    beacon.__context__ = {}
    beacon.__salt__ = {}
    (tmp_path / "kern.log").write_text("")
    assert beacon.beacon([{"source": "/kern.log"}]) == []
