"""The beacon on this machine's /dev/kmsg while a namespace the test owns overflows for real."""

import re
import threading
import time
from collections import Counter

import pytest

from saltext_conntrack.logwatch import generations, grammar
from tests.support.kernel import PROC_NF, Netns, saved_globals, write_int
from tests.support.rsyslog import KmsgCounter, Logrotate, Rsyslog, missing_tools, stamps_in_files

MESSAGE_KNOBS = ("/proc/sys/net/core/message_cost", "/proc/sys/net/core/message_burst")
DEVKMSG_KNOB = "/proc/sys/kernel/printk_devkmsg"


def test_overflow_in_own_netns_is_one_table_full_event(netns, make_loaders, global_knobs):
    beacons = make_loaders("/").beacons
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


# ---------------------------------------------------------------------------
# Real rsyslogd and logrotate: every line the kernel printed, counted exactly once


class Traffic(threading.Thread):
    """Packets into a full table at ``rate`` per second: with net.core.message_cost 0, one kernel line each."""

    def __init__(self, netns, rate):
        super().__init__(daemon=True)
        self.netns, self.per_tick = netns, max(1, rate // 100)
        self.stopping = threading.Event()
        self.sent = self.refused = 0

    def run(self):
        port = 30000
        while not self.stopping.is_set():
            self.refused += self.per_tick - self.netns.udp_flows(self.per_tick, first_port=port)
            self.sent += self.per_tick
            port = 30000 + (port + self.per_tick - 30000) % 30000
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


class Harness:
    """The beacon run through Salt's loader every 0.5 s; what it counted for one netns."""

    def __init__(self, loaders, config, inode, monkeypatch):
        self.loaders, self.config, self.inode = loaders, config, inode
        self.counted = self.lost = self.unverified = self.events = self.restarts = self.errors = 0
        self.incidents = set()
        # Which lines the reader handed over (by the kernel's stamp), to tell a line never
        # read or read twice from one read but not counted when a comparison fails.
        self.read = []
        stamp = re.compile(rf"\[ *(\d+)\.(\d{{6}})\] nf_conntrack: nf_conntrack: table full in netns {inode},".encode())
        scan = grammar.scan_text

        def scan_text(buf):
            self.read.extend(int(s) * 1_000_000 + int(u) for s, u in stamp.findall(buf))
            return scan(buf)

        monkeypatch.setattr(grammar, "scan_text", scan_text)

    def run(self):
        for event in self.loaders.beacons["conntrack.beacon"](self.config):
            if event["tag"] == "table_full":
                self.events += 1
                self.counted += sum(n["matched"] for n in event["netns"] if n["inode"] == self.inode)
                self.lost += event["lost"] + event["lost_bytes"]
                self.unverified += event["unverified"]
                self.errors += event["errors"]
                self.incidents.add(event["incident"]["start"])

    def restart(self, kill):
        """SIGTERM: Salt closes the beacon; SIGKILL: nothing is saved. Either way the process is new."""
        if not kill:
            self.loaders.beacons["conntrack.close"](self.config)
        self.loaders.restart(loader=True)
        self.restarts += 1


SCENARIOS = {
    # logrotate create without postrotate; rsyslogd gets its HUP 1.5 s later and writes to the old file until then.
    "create_late_hup": {"mode": "create", "hup": False, "late_hup": 1.5, "rate": 100, "every": 3.0},
    # 32 rotations in 8 s at 400 lines/s, HUP in postrotate: generations come and go between two runs.
    "rotation_storm": {"mode": "create", "hup": True, "rate": 400, "every": 0.25},
    # The storm with every HUP 1.5 s late: the file being written has been renamed up to six times.
    "rotation_storm_late_hup": {"mode": "create", "hup": False, "late_hup": 1.5, "rate": 400, "every": 0.25},
    "copytruncate": {"mode": "copytruncate", "hup": False, "rate": 100, "every": 2.0},
    # Restarts inside min_interval (5 s), each with a rotation while the minion is down.
    "restart_sigterm": {"mode": "create", "hup": True, "rate": 100, "every": 4.0, "restart": (2.5, 6.5), "kill": False},
    "restart_sigkill": {"mode": "create", "hup": True, "rate": 100, "every": 4.0, "restart": (2.5, 6.5), "kill": True},
}


@pytest.fixture
def unlimited_kernel_log():
    """net_ratelimit off (net.core.message_cost 0): every refused packet prints its line; and the
    test's markers written to /dev/kmsg not rate limited (kernel.printk_devkmsg on). Restored after."""
    with open(DEVKMSG_KNOB, encoding="ascii") as fh:
        devkmsg = fh.read().strip()
    with saved_globals(paths=MESSAGE_KNOBS):
        write_int(MESSAGE_KNOBS[0], 0)
        try:
            with open(DEVKMSG_KNOB, "w", encoding="ascii") as fh:
                fh.write("on\n")
            yield
        finally:
            with open(DEVKMSG_KNOB, "w", encoding="ascii") as fh:
                fh.write(devkmsg + "\n")


def _drive(harness, syslog, rotate, scenario, traffic, seconds=8.0):
    """The scenario's clock: beacon runs, rotations, late HUPs and restarts, until ``seconds``."""
    start = time.monotonic()
    next_run = next_rotation = 0.0
    restarts = list(scenario.get("restart", ()))
    hups = []
    down_until = 0.0
    while (now := time.monotonic() - start) < seconds:
        if restarts and now >= restarts[0]:
            restarts.pop(0)
            harness.restart(scenario["kill"])
            down_until = now + 1.0  # a rotation falls into the time the minion is down
            next_rotation = now + 0.5
        if now >= next_rotation:
            rotate.rotate()
            next_rotation = now + scenario["every"]
            if scenario.get("late_hup"):
                hups.append(now + scenario["late_hup"])
        if hups and now >= hups[0]:
            hups.pop(0)
            syslog.hup()
        if now >= next_run and now >= down_until:
            harness.run()
            next_run = now + 0.5
        time.sleep(0.02)
    assert traffic.is_alive()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_kernel_line_counted_once_through_rsyslog(
    name, make_loaders, global_knobs, unlimited_kernel_log, tmp_path, capsys, monkeypatch
):
    missing = missing_tools()
    if missing:
        pytest.fail(f"install rsyslog and logrotate (scripts/system-deps): {missing} missing")
    scenario = SCENARIOS[name]
    syslog = Rsyslog(str(tmp_path))
    try:
        syslog.start()
        with Netns("ctb") as netns:
            assert netns.udp_flows(20, first_port=40000) == 20
            write_int(f"{PROC_NF}/nf_conntrack_max", 20)
            loaders = make_loaders("/")
            config = [
                {"source": syslog.log},
                {"min_interval": 5 if "restart" in scenario else 2},
                {"status_interval": 3600},
                {"usage_warning": None},
                {"usage_critical": None},
                {"drops": False},
            ]
            harness = Harness(loaders, config, netns.inode, monkeypatch)
            harness.run()  # attaches at the end of the file
            truth = KmsgCounter(netns.inode)
            truth.start()
            traffic = Traffic(netns, scenario["rate"])
            traffic.start()
            rotate = Logrotate(syslog, scenario["mode"], scenario["hup"])
            try:
                _drive(harness, syslog, rotate, scenario, traffic)
            finally:
                traffic.stop()
            printed = truth.finish()
            # Let rsyslogd write the rest, held files go quiet and the held-back counts go out.
            settle = time.monotonic() + max(5, generations.QUIET) + 3
            while time.monotonic() < settle:
                harness.run()
                time.sleep(0.5)
            loaders.restart()
    finally:
        syslog.stop()
    # What reached the files (rsyslogd's [seconds.micro] is the kernel's own stamp of each line).
    in_files = [usec for usec in stamps_in_files(syslog.log, netns.inode) if usec > truth.start_usec]
    missing = truth.stamps - set(in_files)
    # copytruncate loses what is written between logrotate's copy and its truncate: logrotate's
    # own window, bounded here by markers in the kernel log around each logrotate run.
    windows = truth.windows() if scenario["mode"] == "copytruncate" else []
    # (A line printed shortly before logrotate started may still be in rsyslogd's queue: 0.5 s.)
    unexplained = sorted(usec for usec in missing if not any(a - 500_000 <= usec <= b for a, b in windows))
    read = [usec for usec in harness.read if usec > truth.start_usec]
    never_read = sorted(set(in_files) - set(read))
    read_twice = sorted(usec for usec, n in Counter(read).items() if n > 1)
    with capsys.disabled():
        print(
            f"\n[{name}] kernel printed {printed} table-full lines (kmsg, {truth.overruns} overruns), "
            f"{len(in_files)} reached the files ({len(missing)} lost inside logrotate's copy-truncate window), "
            f"beacon counted {harness.counted} in {harness.events} events over {rotate.runs} rotations, "
            f"{harness.restarts} restarts; lost {harness.lost}, unverified {harness.unverified}, read errors {harness.errors}; "
            f"never read {never_read[:5]}, read twice {read_twice[:5]}"
        )
    assert truth.overruns == 0, "the test's own kmsg reader was overrun: no truth to compare with"
    assert printed > 100
    assert len(in_files) == len(set(in_files)) and not unexplained, unexplained
    assert harness.counted == len(in_files) == printed - len(missing), (never_read, read_twice, truth.marks)
    assert (harness.lost, harness.unverified) == (0, 0)
    assert len(harness.incidents) == 1, harness.incidents  # one burst, one incident, restarts or not
