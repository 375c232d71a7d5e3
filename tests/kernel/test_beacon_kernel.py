"""The beacon on this machine's /dev/kmsg while a namespace the test owns overflows for real."""

import os
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
        netns.overflow(3, first_port=port)
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
        self.paused = threading.Event()
        self.sent = self.refused = 0

    def run(self):
        port = 30000
        while not self.stopping.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
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


# ---------------------------------------------------------------------------
# Compressed copies, repeat reduction, reused inodes and olddir (issue 19)


def _phased(harness, rotate, traffic, cycles=8):
    """copytruncate with the cursor at 0 on even cycles (the file last seen just truncated), mid-file on odd ones.

    Traffic pauses around each logrotate run, so no line falls into its copy-truncate window.
    """
    for cycle in range(cycles):
        traffic.paused.clear()
        time.sleep(0.25)
        if cycle % 2:
            harness.run()  # the cursor inside the lines about to be copied
        time.sleep(0.25)
        traffic.paused.set()
        time.sleep(0.2)  # rsyslogd writes what it has
        rotate.rotate()
        harness.run()  # the file just truncated: the cursor at 0 for the next copy


def _down(harness, rotate, rotations, inodes):
    """Runs for 2 s, the beacon stopped (close()), ``rotations`` rotations 1.2 s apart, runs again."""
    for _ in range(4):
        harness.run()
        time.sleep(0.5)
    inodes.append(os.stat(rotate.syslog.log).st_ino)
    harness.restart(kill=False)
    for _ in range(rotations):
        time.sleep(1.2)
        rotate.rotate()
    time.sleep(0.8)
    for _ in range(4):
        harness.run()
        time.sleep(0.5)


ROTATIONS = {
    "copytruncate_gzip": {"mode": "copytruncate", "compress": "gzip"},
    "copytruncate_xz": {"mode": "copytruncate", "compress": "xz"},
    "copytruncate_bzip2": {"mode": "copytruncate", "compress": "bzip2"},
    # Three dateext + delaycompress rotations while the beacon is stopped (ext4 may hand a
    # deleted generation's inode to the next file).
    "dateext_delaycompress_down": {
        "mode": "create",
        "hup": True,
        "compress": "gzip",
        "extra": ("dateext", "dateformat -%Y%m%d-%s", "delaycompress"),
        "down": 3,
    },
    # Two rotations into an olddir while stopped: out of the beacon's sight ...
    "olddir_down": {"mode": "create", "hup": True, "extra": ("olddir {dir}/old",), "down": 2},
    # ... unless the beacon's olddir option names it ...
    "olddir_option_down": {"mode": "create", "hup": True, "extra": ("olddir {dir}/old",), "down": 2, "option": True},
    # ... or the beacon finds it in logrotate's config (here the test's own, in place of /etc/logrotate.d).
    "olddir_found_down": {"mode": "create", "hup": True, "extra": ("olddir {dir}/old",), "down": 2, "found": True},
}


def _in_all_files(syslog, inode, olddir=None):
    """``stamps_in_files`` over the log's copies, compressed ones read through what the beacon uses."""
    from saltext_conntrack.logwatch import copies

    directory = os.path.join(syslog.dir, "unpacked")
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(syslog.log)
    for where in (syslog.dir, olddir):
        for path, _ in copies.siblings(os.path.join(where, base), compressed=True) if where else ():
            kind = copies.kind(path)
            if kind == "compressed":
                with copies.Compressed(path) as copy:
                    data = copy.rest(0)
            elif kind == "plain":
                with open(path, "rb") as fh:
                    data = fh.read()
            else:
                raise AssertionError(f"cannot read {path} to count its lines")
            with open(os.path.join(directory, f"{base}.{len(os.listdir(directory))}"), "wb") as fh:
                fh.write(data)
    with open(syslog.log, "rb") as src, open(os.path.join(directory, base), "wb") as fh:
        fh.write(src.read())
    return stamps_in_files(os.path.join(directory, base), inode)


@pytest.mark.parametrize("name", list(ROTATIONS))
def test_compressed_copies_reused_inodes_and_olddir(
    name, make_loaders, global_knobs, unlimited_kernel_log, tmp_path, capsys, monkeypatch
):
    missing = missing_tools()
    if missing:
        pytest.fail(f"install rsyslog and logrotate (scripts/system-deps): {missing} missing")
    scenario = ROTATIONS[name]
    olddir = str(tmp_path / "old") if "olddir" in name else None
    if olddir:
        os.mkdir(olddir)
    syslog = Rsyslog(str(tmp_path))
    inodes = []
    try:
        syslog.start()
        with Netns("ctb") as netns:
            assert netns.udp_flows(20, first_port=40000) == 20
            write_int(f"{PROC_NF}/nf_conntrack_max", 20)
            extra = [line.format(dir=str(tmp_path)) for line in scenario.get("extra", ())]
            rotate = Logrotate(syslog, scenario["mode"], scenario.get("hup", False), scenario.get("compress"), extra)
            if scenario.get("found"):
                from saltext_conntrack.logwatch import logrotate  # the copy the loaders use

                monkeypatch.setattr(logrotate, "CONFS", (rotate.conf,))
            loaders = make_loaders("/")
            config = [
                {"source": syslog.log},
                {"min_interval": 2},
                {"status_interval": 3600},
                {"usage_warning": None},
                {"usage_critical": None},
                {"drops": False},
                *([{"olddir": olddir}] if scenario.get("option") else []),
            ]
            harness = Harness(loaders, config, netns.inode, monkeypatch)
            harness.run()
            truth = KmsgCounter(netns.inode)
            truth.start()
            traffic = Traffic(netns, 100)
            traffic.start()
            try:
                if "down" in scenario:
                    _down(harness, rotate, scenario["down"], inodes)
                    inodes.append(os.stat(syslog.log).st_ino)
                else:
                    _phased(harness, rotate, traffic)
            finally:
                traffic.stop()
            time.sleep(0.3)
            printed = truth.finish()
            settle = time.monotonic() + generations.QUIET + 3
            while time.monotonic() < settle:
                harness.run()
                time.sleep(0.5)
            loaders.restart()
    finally:
        syslog.stop()
    in_files = [usec for usec in _in_all_files(syslog, netns.inode, olddir) if usec > truth.start_usec]
    read = [usec for usec in harness.read if usec > truth.start_usec]
    never_read = sorted(set(in_files) - set(read))
    read_twice = sorted(usec for usec, n in Counter(read).items() if n > 1)
    reused = len(inodes) == 2 and inodes[0] in _inodes_after(syslog.log)
    with capsys.disabled():
        print(
            f"\n[{name}] kernel printed {printed} table-full lines, {len(in_files)} in the files, beacon counted "
            f"{harness.counted} in {harness.events} events over {rotate.runs} rotations; lost {harness.lost}, "
            f"unverified {harness.unverified}; never read {len(never_read)}, read twice {len(read_twice)}; "
            f"files {_listing(syslog.log)}, inodes {inodes}"
            f"{' (the inode read before the stop was given to a later file)' if reused else ''}"
        )
    assert truth.overruns == 0, "the test's own kmsg reader was overrun: no truth to compare with"
    assert printed > 100 and len(in_files) == len(set(in_files)) == printed
    assert not read_twice, read_twice
    assert len(harness.incidents) == 1, harness.incidents
    if olddir and not (scenario.get("option") or scenario.get("found")):
        # Out of sight: never counted twice, and what was not counted is flagged.
        assert harness.counted < printed and harness.unverified >= 1
    else:
        assert harness.counted == printed, never_read[:5]
        assert (harness.lost, harness.unverified) == (0, 0)


def _listing(log):
    directory, base = os.path.split(log)
    return sorted((n, os.stat(os.path.join(directory, n)).st_ino) for n in os.listdir(directory) if n.startswith(base))


def _inodes_after(log):
    directory, base = os.path.split(log)
    return {os.stat(os.path.join(directory, n)).st_ino for n in os.listdir(directory) if n.startswith(base)}


def test_rsyslog_repeat_reduction_counts_every_line(make_loaders, global_knobs, unlimited_kernel_log, tmp_path, capsys):
    """$RepeatedMsgReduction on: identical kernel lines become 'message repeated N times: [...]'."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"install rsyslog and logrotate (scripts/system-deps): {missing} missing")
    syslog = Rsyslog(str(tmp_path), reduce=True)
    counted = events = unverified = 0
    try:
        syslog.start()
        with Netns("ctb") as netns:
            assert netns.udp_flows(20, first_port=40000) == 20
            write_int(f"{PROC_NF}/nf_conntrack_max", 20)
            loaders = make_loaders("/")
            config = [{"source": syslog.log}, {"min_interval": 1}, {"status_interval": 3600}, {"drops": False}]
            config += [{"usage_warning": None}, {"usage_critical": None}]

            def run():
                nonlocal counted, events, unverified
                for event in loaders.beacons["conntrack.beacon"](config):
                    if event["tag"] == "table_full":
                        events += 1
                        unverified += event["unverified"]
                        counted += sum(n["matched"] for n in event["netns"] if n["inode"] == netns.inode)

            run()
            truth = KmsgCounter(netns.inode)
            truth.start()
            traffic = Traffic(netns, 100)
            traffic.start()
            try:
                for _ in range(8):
                    time.sleep(0.5)
                    run()
            finally:
                traffic.stop()
            time.sleep(0.3)
            printed = truth.finish()
            # A different kernel message (another namespace's table-full line): rsyslogd writes
            # the repeat line it held back.
            with Netns("ctc") as other:
                other.udp_flows(22, first_port=40000)
            for _ in range(6):
                time.sleep(0.5)
                run()
            loaders.restart()
    finally:
        syslog.stop()
    with open(syslog.log, "rb") as fh:
        text = fh.read()
    repeats = re.findall(rb"message repeated (\d+) times: \[ ?nf_conntrack", text)
    with capsys.disabled():
        print(
            f"\n[repeat_reduction] kernel printed {printed}, the file has {len(repeats)} repeat lines "
            f"({sum(map(int, repeats))} lines), beacon counted {counted} in {events} events"
        )
    assert printed > 100 and repeats, "rsyslogd reduced nothing: no repeat line to count"
    assert counted == printed and unverified == 0
