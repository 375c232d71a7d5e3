"""The beacon in a real salt-minion: its event arrives on the real master's bus."""

import time

from saltfactories.utils import random_string

from tests.conftest import LOADER_DIRS

LINE = "Nov 25 11:00:00 vm kernel: nf_conntrack: nf_conntrack: table full in netns 4026531999, dropping packet\n"


def test_table_full_reaches_the_master(master, event_listener, tmp_path):
    log = tmp_path / "kern.log"
    log.write_text("Nov 25 10:59:00 vm kernel: booting\n")
    factory = master.salt_minion_daemon(
        random_string("beacon-"),
        overrides={
            **LOADER_DIRS,
            # Salt counts a beacon's interval in loop_interval steps; the factories'
            # default of 0.05 s would make "interval: 1" mean 20 beacon ticks (20 s).
            "loop_interval": 1,
            "beacons": {"conntrack": [{"source": str(log)}, {"min_interval": 0}, {"interval": 1}]},
        },
    )
    tag = f"salt/beacon/{factory.id}/conntrack/table_full"
    with factory.started():
        start = time.time()
        # The beacon starts at the end of the file on its first run: keep writing
        # until a run has seen a line.
        matched = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not matched:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(LINE)
            matched = event_listener.wait_for_events([(master.id, tag)], timeout=2, after_time=start).matches
    assert matched, f"no {tag} event within 60 s"
    data = min(matched, key=lambda event: event.stamp).data
    assert data["id"] == factory.id
    assert data["matched"] >= 1 and data["source"] == str(log)
    assert data["netns"][0]["inode"] == 4026531999
    assert data["status"]["max"] > 0
