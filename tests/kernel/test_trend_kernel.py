"""Time to full on the real kernel: a namespace the test owns fills at a steady rate, and
``full_in``, ``check`` and the beacon's ``filling`` say so before the first drop."""

import threading
import time

from tests.support.kernel import PROC_NF, write_int

LIMIT = 1500  # the global nf_conntrack_max while the test runs (saved and restored by global_knobs)
RATE = 60  # new flows per second: full in 25 s
BEACON = [{"source": "kmsg"}, {"min_interval": 0}, {"status_interval": 0}, {"persist": False}]


class SteadyFlows(threading.Thread):
    """New UDP flows at ``rate`` per second on average (catching up after a slow tick)."""

    def __init__(self, netns, rate, first_port=20000):
        super().__init__(daemon=True)
        self.netns, self.rate, self.port = netns, rate, first_port
        self.stopping = threading.Event()
        self.started = None
        self.sent = self.accepted = 0
        self.first_refusal = None  # monotonic time the kernel first refused a new flow

    def run(self):
        self.started = time.monotonic()
        while not self.stopping.is_set():
            due = int((time.monotonic() - self.started) * self.rate) - self.sent
            if due > 0:
                got = self.netns.udp_flows(due, first_port=self.port)
                if got < due and self.first_refusal is None:
                    self.first_refusal = time.monotonic()
                self.sent += due
                self.accepted += got
                self.port += due
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


def _in(netns, fun, *args, **kwargs):
    with netns.entered():
        return fun(*args, **kwargs)


def test_full_in_predicts_the_first_drop(netns, make_loaders, global_knobs, tmp_path):
    loaders = make_loaders("/", cachedir=str(tmp_path / "cache"))
    mods, beacons = loaders.modules, loaders.beacons
    assert _in(netns, beacons["conntrack.beacon"], BEACON) == []
    write_int(f"{PROC_NF}/nf_conntrack_max", LIMIT)
    flows = SteadyFlows(netns, RATE)
    events, predicted, checked = [], None, None
    flows.start()
    try:
        deadline = time.monotonic() + 3 * LIMIT / RATE
        while time.monotonic() < deadline:
            now = time.monotonic()
            events += [(now, e) for e in _in(netns, beacons["conntrack.beacon"], BEACON)]
            if predicted is None and netns.count() >= LIMIT / 2:
                st = _in(netns, mods.conntrack.status)
                checked = _in(netns, mods.conntrack.check)
                predicted = (time.monotonic(), st["trend"], st["stats"].get("drop", 0))
            if flows.first_refusal is not None and any(e["tag"] == "table_full" for _, e in events):
                break
            time.sleep(1.0)
    finally:
        flows.stop()
    assert predicted is not None and flows.first_refusal is not None, (predicted, flows.accepted, events)
    at, trend, drop_then = predicted
    real = flows.first_refusal - at
    print(f"full_in predicted {trend['full_in']} s at half full, first drop {real:.1f} s later; trend {trend}")
    assert drop_then == 0 and trend["full_in"] is not None
    assert abs(trend["full_in"] - real) <= 0.25 * real, (trend, real)
    assert 0.75 * RATE <= trend["count_per_s"] <= 1.25 * RATE
    assert checked["verdict"] in ("warning", "critical") and checked["drop"] == 0, checked
    assert any(r.startswith("the table is full in") for r in checked["reasons"]), checked
    tags = [e["tag"] for _, e in events]
    assert tags.count("filling") == 1, tags
    filling_at = next(t for t, e in events if e["tag"] == "filling")
    full_at = next(t for t, e in events if e["tag"] == "table_full")
    assert filling_at < flows.first_refusal and tags.index("filling") < tags.index("table_full"), tags
    print(f"filling sent {flows.first_refusal - filling_at:.1f} s before the first drop, table_full {full_at - at:.1f}")


def test_a_flat_table_is_not_filling(netns, make_loaders, global_knobs, tmp_path):
    loaders = make_loaders("/", cachedir=str(tmp_path / "cache"))
    mods, beacons = loaders.modules, loaders.beacons
    write_int(f"{PROC_NF}/nf_conntrack_max", LIMIT)
    assert netns.udp_flows(LIMIT // 2) == LIMIT // 2
    events = []
    for _ in range(8):
        events += _in(netns, beacons["conntrack.beacon"], BEACON)
        time.sleep(0.5)
    trend = _in(netns, mods.conntrack.status)["trend"]
    assert trend["samples"] >= 3 and trend["full_in"] is None and abs(trend["count_per_s"]) < 1, trend
    assert "filling" not in [e["tag"] for e in events], events
    checked = _in(netns, mods.conntrack.check)
    assert checked["verdict"] == "ok" and not any("full in" in r for r in checked["reasons"]), checked
