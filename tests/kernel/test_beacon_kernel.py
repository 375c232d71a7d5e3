"""The beacon on this machine's /dev/kmsg while a namespace the test owns overflows for real."""

import time

from tests.support.kernel import PROC_NF, write_int


def test_overflow_in_own_netns_is_one_table_full_event(netns, make_beacons, global_knobs):
    beacons = make_beacons("/").beacons
    config = [{"source": "kmsg"}, {"min_interval": 0}, {"status_interval": 0}, {"persist": False}]
    assert netns.udp_flows(20, first_port=40000) == 20
    with netns.entered():  # counters are the namespace's; /dev/kmsg is the host's
        assert beacons["conntrack.beacon"](config) == []  # starts at the end of kmsg; drop baseline 0
    write_int(f"{PROC_NF}/nf_conntrack_max", 20)
    events = []
    port = 41000
    deadline = time.monotonic() + 20
    # The kernel rate limits the message (10 per 5 s, shared by the whole host): refuse a
    # few packets per run and look again until one got through.
    while time.monotonic() < deadline:
        assert netns.udp_flows(3, first_port=port) == 0
        port += 3
        with netns.entered():
            ret = beacons["conntrack.beacon"](config)
        events.append(ret)
        if any(e["tag"] == "table_full" for e in ret):
            break
        time.sleep(0.5)
    full = [e for e in events[-1] if e["tag"] == "table_full"]
    assert len(full) == 1, events
    event = full[0]
    ours = [n for n in event["netns"] if n["inode"] == netns.inode]
    assert ours and ours[0]["name"] == netns.name and ours[0]["matched"] >= 1
    assert event["source"] == "kmsg" and event["lost"] == 0
    assert event["status"]["count"] == 20 and event["status"]["max"] == 20 and event["status"]["usage"] == 100.0
    assert event["status"]["drop"] >= 3
    tags = [e["tag"] for run in events for e in run]
    assert tags.count("usage_high") == 1  # on entry only, not every run
    assert "drops" in tags
