"""The conntrack beacon's parsing, coalescing and cursors, on recorded lines.

The beacon file is loaded on its own with the dunders the loader would give
it; ``conntrack.status`` is a stand-in whose numbers the test sets.
"""

import bz2
import datetime
import errno
import gzip
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys

import pytest

from saltext_conntrack.logwatch import follow, generations, grammar, sources
from tests.conftest import REPO
from tests.support.beacon_lines import (
    KMSG_FULL,
    KMSG_FULL_INIT,
    KMSG_OTHER,
    KMSG_SPOOF,
    KMSG_SUPPRESSED,
    NOT_TABLE_FULL,
    SUPPRESSED,
    TABLE_FULL,
)
from tests.support.beacons import Clock
from tests.support.loaderfile import load


def full(ns, stamp="2026-11-25T11:00:00.000001+00:00"):
    """A table-full line naming netns ``ns``: tests give each line its own, to see repeats and losses."""
    return f"{stamp} vm kernel: nf_conntrack: nf_conntrack: table full in netns {ns}, dropping packet\n"


class Env:
    def __init__(self, tmp_path):
        self.mod = load("_beacons/conntrack.py", name=f"unit_beacon_{id(self)}")
        self.clock = Clock()
        self.mod._now = self.clock
        self.cachedir = tmp_path / "cache"
        self.mod.__opts__ = {"cachedir": str(self.cachedir), "conntrack.root": str(tmp_path / "root")}
        self.mod.__context__ = {}
        self.status = {"count": 10, "max": 100, "usage": 10.0, "stats": {"drop": 0, "early_drop": 0}}
        self.status_calls = 0
        self.mod.__salt__ = {"conntrack.status": self._status}
        # An explicit source is a host path under conntrack.root, as every path is.
        self.log = tmp_path / "root" / "var" / "log" / "kern.log"
        self.log.parent.mkdir(parents=True)

    def _status(self):
        self.status_calls += 1
        return json.loads(json.dumps(self.status))

    def set_usage(self, count, maximum=100, drop=None, early_drop=None):
        self.status.update(count=count, max=maximum, usage=round(100.0 * count / maximum, 2))
        if drop is not None:
            self.status["stats"]["drop"] = drop
        if early_drop is not None:
            self.status["stats"]["early_drop"] = early_drop

    def run(self, *extra, source=None, tick=1):
        self.clock.tick(tick)
        config = [{"source": source or "/var/log/kern.log"}, *extra]
        ok, why = self.mod.validate(config)
        assert ok, why
        return self.mod.beacon(config)

    def restart(self):
        for state in self.mod.__context__.values():
            if hasattr(state, "source"):
                state.source.close()
        self.mod.__context__.clear()

    def append(self, text, path=None):
        with open(path or self.log, "a", encoding="utf-8") as fh:
            fh.write(text)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.restart()


def kinds(events):
    return [e["tag"] for e in events]


def only_full(events):
    got = [e for e in events if e["tag"] == "table_full"]
    assert len(got) == 1, events
    return got[0]


def seen(event):
    """netns inode -> lines, as the event reports them."""
    return {n["inode"]: n["matched"] for n in event["netns"]}


# ---------------------------------------------------------------------------
# Recognising lines


@pytest.mark.parametrize("label,line,ns", TABLE_FULL, ids=[s[0] for s in TABLE_FULL])
def test_every_era_and_format(env, label, line, ns):
    hits = grammar.scan_text((line + "\n").encode())
    assert len(hits) == 1 and hits[0][:2] == (ns, None)
    # Syslog headers carry a time; dmesg's seconds-since-boot and bare messages do not.
    has_header = not line.startswith(("[", "nf_conntrack"))
    assert (hits[0][2] is not None) is has_header


def test_header_times_are_read(env):
    hits = grammar.scan_text(full(1, "2024-05-02T08:15:30.5+02:00").encode())
    assert hits[0][2] == 1714630530.5


@pytest.mark.parametrize("label,line,count", SUPPRESSED, ids=[s[0] for s in SUPPRESSED])
def test_suppression_lines(env, label, line, count):
    assert grammar.scan_text((line + "\n").encode()) == [(None, count, None)]


@pytest.mark.parametrize("line", NOT_TABLE_FULL)
def test_other_lines_are_not_incidents(env, line):
    assert grammar.scan_text((line + "\n").encode()) == []


def test_every_era_in_one_file_is_one_event(env):
    env.log.write_text("old line\n" + full(1) * 5)
    assert env.run() == []  # first run starts at the end: the past is not news
    env.append("".join(line + "\n" for _, line, _ in TABLE_FULL))
    env.append("".join(line + "\n" for _, line, _ in SUPPRESSED))
    event = only_full(env.run())
    assert event["matched"] == len(TABLE_FULL)
    assert event["suppressed"] == sum(c for _, _, c in SUPPRESSED)
    assert event["total"] == event["matched"] + event["suppressed"]
    expected = {}
    for _, _, ns in TABLE_FULL:
        expected[ns] = expected.get(ns, 0) + 1
    assert seen(event) == expected
    # First and last: the stamps of the first and last table-full lines (BSD stamps: local time, this year).
    year = datetime.datetime.now().year

    def local(text):
        return datetime.datetime.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S").astimezone(datetime.timezone.utc)

    assert event["first"] == local("Mar  3 04:12:01").isoformat()
    assert event["last"] == local("Nov 25 11:00:00").isoformat()
    assert event["source"] == str(env.log)
    assert event["status"] == {"count": 10, "max": 100, "usage": 10.0, "drop": 0}


def test_suppressed_counts_belong_to_a_burst_only(env):
    env.log.write_text("")
    env.run()
    # A count before any table-full line, not followed by one: another subsystem's.
    env.append("Nov 25 10:00:00 vm kernel: net_ratelimit: 99 callbacks suppressed\n")
    env.append("Nov 25 10:00:01 vm kernel: e1000e: link up\n")
    assert env.run() == []
    # The kernel prints the count just before the next message it lets through.
    env.append("Nov 25 10:00:05 vm kernel: net_ratelimit: 7 callbacks suppressed\n" + full(1))
    assert only_full(env.run())["suppressed"] == 7
    # While the burst is open, later counts join it (carried to the next event).
    env.append("Nov 25 10:00:10 vm kernel: net_ratelimit: 40 callbacks suppressed\n")
    assert env.run(tick=10) == []  # within min_interval (60 s): carried
    # Then an event with the suppressed count only, once min_interval allows.
    event = only_full(env.run(tick=51))
    assert (event["matched"], event["suppressed"], event["incident"]["events"]) == (0, 40, 2)


# ---------------------------------------------------------------------------
# Coalescing


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


# ---------------------------------------------------------------------------
# Thresholds and the drop counter


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


# ---------------------------------------------------------------------------
# File cursors: rotation, truncation, restarts


def test_rename_rotation_finishes_the_old_file(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    assert seen(only_full(env.run({"min_interval": 0}))) == {1: 1}
    env.append(full(2))  # written after our last read ...
    os.rename(env.log, f"{env.log}.1")  # ... then logrotate renames ...
    env.log.write_text(full(3))  # ... and syslog starts a new file
    env.append(full(4), f"{env.log}.1")  # a late write to the old descriptor
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1, 3: 1, 4: 1}
    env.append(full(5))
    assert seen(only_full(env.run({"min_interval": 0}))) == {5: 1}


def test_copytruncate_reads_the_rest_from_the_copy(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.append(full(2) + full(3))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(4))
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1, 3: 1, 4: 1}
    assert env.run({"min_interval": 0}) == []  # nothing read twice


def test_truncated_and_regrown_past_the_offset(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) * 3)
    env.run({"min_interval": 0})
    # Truncated in place with no copy, then more written than was there before.
    env.log.write_text(full(7) * 5)
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {7: 5}
    # Everything seen had been read: whether the truncation took anything unread cannot be known.
    assert (event["lost"], event["unverified"]) == (0, 1)


def test_partial_lines_wait_for_their_end(env):
    env.log.write_text("")
    env.run()
    text = full(1)
    env.append(text[:30])
    assert env.run() == []
    env.append(text[30:])
    assert seen(only_full(env.run())) == {1: 1}


def test_restart_neither_loses_nor_repeats(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))  # written while the minion was down
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1}
    saved = json.loads((env.cachedir / "conntrack" / "beacon-conntrack.json").read_text())["source"]
    assert saved["kind"] == "file" and saved["cur"]["offset"] == env.log.stat().st_size


def test_rotation_while_down_finds_the_old_inode(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))
    os.rename(env.log, f"{env.log}-20261125")
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and event["lost"] == 0


def compress(path, ext):
    """What logrotate's compress does: a compressed copy beside it, the original removed."""
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[ext]
    with open(path, "rb") as src, opener(f"{path}.{ext}", "wb") as dst:
        dst.write(src.read())
    os.unlink(path)


@pytest.mark.parametrize("ext", ["gz", "bz2", "xz"])
def test_compressed_rotation_while_down_is_read(env, ext):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))  # unread when the minion went down
    os.rename(env.log, f"{env.log}.1")
    compress(f"{env.log}.1", ext)
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and (event["lost"], event["unverified"]) == (0, 0)


def test_rotation_while_down_deleted_is_unverified(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))
    os.rename(env.log, f"{env.log}.1")
    os.unlink(f"{env.log}.1")  # rotate 0: gone, and the beacon never saw what was written last
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {3: 1} and (event["lost"], event["unverified"]) == (0, 1)


def test_copytruncate_into_a_compressed_copy_is_read(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.append(full(2))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    compress(f"{env.log}.1", "gz")
    env.append(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and (event["lost"], event["unverified"]) == (0, 0)


def test_max_read_spreads_a_backlog_over_runs(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append("".join(full(i) for i in range(100)))
    size = env.log.stat().st_size
    total = {}
    runs = 0
    while runs < 10:
        runs += 1
        for event in env.run({"min_interval": 0}, {"max_read": 4096}):
            total.update(seen(event))
        if len(total) == 100:
            break
    assert total == {i: 1 for i in range(100)}
    assert runs >= size // 4096


@pytest.mark.parametrize("chunk", [7, 64, 100, 4096])
def test_finishing_a_rotated_file_keeps_lines_across_read_chunks(env, monkeypatch, chunk):
    """Lines straddling the reads that finish an old file (1 MiB each in real life) stay whole."""
    monkeypatch.setattr(follow.FileSource, "chunk", chunk)
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append("".join(full(i) for i in range(40)))  # ~120-byte lines: every chunk size cuts some
    os.rename(env.log, f"{env.log}.1")
    env.log.write_text(full(99))
    env.append(full(40)[:-1], f"{env.log}.1")  # the old file ends without a newline: still a line
    assert seen(only_full(env.run({"min_interval": 0}))) == {**{i: 1 for i in range(40)}, 99: 1}
    # The unfinished last line is read when the held file is let go (quiet, and the new file has content).
    assert seen(only_full(env.run({"min_interval": 0}, tick=generations.QUIET + 1))) == {40: 1}
    # The copy after copytruncate is finished the same way.
    env.append("".join(full(i) for i in range(100, 140)))
    shutil.copy(env.log, f"{env.log}.2")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    assert seen(only_full(env.run({"min_interval": 0}))) == {i: 1 for i in range(100, 140)}


def test_missing_file_that_appears_is_read_from_its_start(env):
    env.run()
    assert env.run() == []
    env.log.write_text(full(1))
    assert seen(only_full(env.run())) == {1: 1}


# ---------------------------------------------------------------------------
# /dev/kmsg: a ring buffer that can overrun


class Ring:
    def __init__(self, capacity):
        self.capacity = capacity
        self.records = []
        self.next_seq = 1
        self.error = None  # an errno every read() fails with, as a kernel that cannot read kmsg

    def log(self, fmt, **kw):
        seq = self.next_seq
        self.next_seq += 1
        self.records.append((seq, fmt.format(seq=seq, usec=seq * 1000, **kw).encode()))
        del self.records[: -self.capacity]


def fake_kmsg(ring):
    class FakeKmsg(sources.KmsgSource):
        pos = None

        def _open(self):
            self.pos = ring.records[0][0] if ring.records else ring.next_seq
            return -1

        def _read(self, fd):
            if ring.error is not None:
                raise OSError(ring.error, os.strerror(ring.error))
            oldest = ring.records[0][0] if ring.records else ring.next_seq
            if self.pos < oldest:  # overwritten before we read it: the kernel says EPIPE once
                self.pos = oldest
                raise BrokenPipeError()
            for seq, rec in ring.records:
                if seq == self.pos:
                    self.pos += 1
                    return rec
            raise BlockingIOError()

        def _close_fd(self, fd):
            pass

    return FakeKmsg


@pytest.fixture
def ring(env, monkeypatch):
    r = Ring(capacity=50)
    monkeypatch.setattr(sources, "KmsgSource", fake_kmsg(r))
    return r


def test_kmsg_starts_at_the_end_and_skips_user_records(env, ring):
    ring.log(KMSG_FULL, ns=1)
    assert env.run(source="kmsg") == []
    ring.log(KMSG_OTHER)
    ring.log(KMSG_SPOOF)  # user space cannot write the kernel facility
    ring.log(KMSG_SUPPRESSED, n=12)  # no burst before it, no table-full after it
    ring.log(KMSG_OTHER)
    assert env.run(source="kmsg") == []
    ring.log(KMSG_FULL, ns=2)
    ring.log(KMSG_FULL_INIT)
    ring.log(KMSG_SUPPRESSED, n=300)
    event = only_full(env.run(source="kmsg"))
    assert seen(event) == {None: 1, 2: 1}
    assert (event["matched"], event["suppressed"], event["lost"]) == (2, 300, 0)
    assert event["source"] == "kmsg"
    assert event["first"] is not None and event["first"] <= event["last"]


def test_kmsg_overrun_loses_no_incident(env, ring):
    conf = {"min_interval": 0}
    ring.log(KMSG_OTHER)  # the ring is never empty: the reader learns where the end is
    env.run(conf, source="kmsg")
    ring.log(KMSG_FULL, ns=1)
    for _ in range(120):  # more than the ring holds: the reader is overrun
        ring.log(KMSG_OTHER)
    for i in range(10):
        ring.log(KMSG_FULL, ns=100 + i)
    event = only_full(env.run(conf, source="kmsg"))
    # The overwritten records (the first line among them) are counted, and the
    # incident the ring still holds is reported.
    assert event["lost"] == 1 + 120 - 40
    assert seen(event) == {100 + i: 1 for i in range(10)}
    ring.log(KMSG_FULL, ns=5)
    event = only_full(env.run(conf, source="kmsg"))
    assert seen(event) == {5: 1} and event["lost"] == 0  # resynced: nothing more lost, nothing repeated


def test_kmsg_resumes_after_restart_in_the_same_boot(env, ring):
    conf = {"min_interval": 0}
    env.run(conf, source="kmsg")
    ring.log(KMSG_FULL, ns=1)
    env.run(conf, source="kmsg")
    env.restart()
    ring.log(KMSG_FULL, ns=2)
    assert seen(only_full(env.run(conf, source="kmsg"))) == {2: 1}


def root_file(env, rel):
    """An empty file under the fixture root; its path."""
    path = os.path.join(env.mod.__opts__["conntrack.root"], rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return path


def kmsg_node(env):
    """A /dev/kmsg under the fixture root that opens, as it does on every kernel since 2.6."""
    root_file(env, "dev/kmsg")


def test_auto_falls_back_when_kmsg_cannot_be_read(env, ring):
    """Before 3.5 (CentOS 5/6) /dev/kmsg opens but read() says EINVAL: auto takes the log file."""
    kmsg_node(env)
    ring.error = errno.EINVAL
    ring.log(KMSG_FULL, ns=1)
    messages = root_file(env, "var/log/messages")
    assert env.run({"min_interval": 0}, source="auto") == []
    env.append(full(2), messages)
    event = only_full(env.run({"min_interval": 0}, source="auto"))
    assert seen(event) == {2: 1} and event["source"] == messages and event["errors"] == 0


@pytest.mark.parametrize("error", [errno.EPERM, errno.EIO])
def test_auto_skips_kmsg_on_any_read_error(env, ring, error):
    kmsg_node(env)
    ring.error = error
    messages = root_file(env, "var/log/messages")
    source = sources.make_source("auto", env.mod.__opts__["conntrack.root"], None)
    assert (source.kind, source.path) == ("file", messages)


def test_auto_keeps_a_readable_kmsg(env, ring):
    kmsg_node(env)
    assert (
        sources.make_source("auto", env.mod.__opts__["conntrack.root"], None).kind == "kmsg"
    )  # an empty ring is readable


def test_kmsg_asked_for_on_an_old_kernel_says_so(env, ring):
    ring.error = errno.EINVAL
    why = r"cannot be read: Invalid argument \(kernels before 3.5 only let it be written\); use source: journal"
    with pytest.raises(RuntimeError, match=why):
        env.run(source="kmsg")


def test_read_errors_do_not_stop_the_counters(env, ring):
    conf = ({"status_interval": 0}, {"min_interval": 0})
    env.set_usage(10, drop=100)
    assert env.run(*conf, source="kmsg") == []
    ring.error = errno.EIO  # the log breaks ...
    env.set_usage(95, drop=100)
    assert kinds(env.run(*conf, source="kmsg")) == ["usage_high"]  # ... the counters do not
    env.set_usage(95, drop=160)
    event = env.run(*conf, source="kmsg")[0]
    assert (event["tag"], event["delta"]) == ("drops", 60)
    env.set_usage(10, drop=160)
    assert kinds(env.run(*conf, source="kmsg")) == ["usage_ok"]
    ring.error = None  # back: the failed runs are counted in the next table_full event
    ring.log(KMSG_FULL, ns=7)
    event = only_full(env.run(*conf, source="kmsg"))
    assert seen(event) == {7: 1} and event["errors"] == 3 and event["lost"] == 0
    ring.log(KMSG_FULL, ns=8)
    assert only_full(env.run(*conf, source="kmsg"))["errors"] == 0


def test_kmsg_failing_on_its_first_read_starts_at_the_end_later(env, ring, monkeypatch):
    ring.log(KMSG_FULL, ns=1)  # the past
    fast_forward = sources.KmsgSource._fast_forward
    failed = []

    def flaky(self):
        if not failed:
            failed.append(True)
            raise OSError(errno.EIO, "Input/output error")
        return fast_forward(self)

    monkeypatch.setattr(sources.KmsgSource, "_fast_forward", flaky)
    assert env.run({"min_interval": 0}, source="kmsg") == []
    assert env.run({"min_interval": 0}, source="kmsg") == []  # not the whole ring as news
    ring.log(KMSG_FULL, ns=2)
    assert seen(only_full(env.run({"min_interval": 0}, source="kmsg"))) == {2: 1}


# ---------------------------------------------------------------------------
# journald, through a stand-in journalctl on PATH

# systemd 219 (CentOS 7): no --output-fields (236+); a cursor whose entry is gone is refused.
FAKE_JOURNALCTL = r"""#!{python}
import json, sys
entries = [json.loads(l) for l in open({data!r})]
args = sys.argv[1:]
open({argv!r}, "a").write(json.dumps(args) + "\n")
assert "_TRANSPORT=kernel" in args
for arg in args:
    if arg.startswith("--") and arg.split("=")[0] not in ("--no-pager", "--after-cursor"):
        sys.exit("journalctl: unrecognized option '" + arg + "'")
if "--after-cursor" in args:
    cur = args[args.index("--after-cursor") + 1]
    cursors = [e["__CURSOR"] for e in entries]
    if cur not in cursors:
        sys.exit("Failed to seek to cursor: Invalid argument")
    entries = entries[cursors.index(cur) + 1:]
if "-n" in args:
    entries = entries[-int(args[args.index("-n") + 1]):]
for e in entries:
    print(json.dumps(e))
"""


class Journal:
    """A stand-in journalctl on PATH, its entries in a file the test appends to and vacuums."""

    def __init__(self, tmp_path, monkeypatch):
        self.data = tmp_path / "journal.json"
        self.data.write_text("")
        self.argv = tmp_path / "argv"
        bindir = tmp_path / "bin"
        bindir.mkdir()
        self.tool = tool = bindir / "journalctl"
        tool.write_text(FAKE_JOURNALCTL.format(python=sys.executable, data=str(self.data), argv=str(self.argv)))
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        self.n = 0

    def entry(self, msg):
        self.n += 1
        with open(self.data, "a") as fh:
            fh.write(
                json.dumps(
                    {
                        "__CURSOR": f"s=abc;i={self.n}",
                        "__REALTIME_TIMESTAMP": str(1_790_000_000_000_000 + self.n),
                        "MESSAGE": msg,
                    }
                )
                + "\n"
            )

    def vacuum(self, keep):
        lines = self.data.read_text().splitlines(keepends=True)
        self.data.write_text("".join(lines[-keep:] if keep else []))

    def calls(self):
        return [json.loads(line) for line in self.argv.read_text().splitlines()]


def test_journal_with_cursor(env, tmp_path, monkeypatch):
    journal = Journal(tmp_path, monkeypatch)
    entry = journal.entry
    entry("nf_conntrack: nf_conntrack: table full in netns 1, dropping packet")  # before the start
    assert env.run(source="journal") == []
    entry("nf_conntrack: nf_conntrack: table full in netns 2, dropping packet")
    entry(list(b"nf_conntrack: nf_conntrack: table full in netns 3, dropping packet \xff"))  # non-UTF-8
    entry("net_ratelimit: 9 callbacks suppressed")
    event = only_full(env.run({"min_interval": 0}, source="journal"))
    assert seen(event) == {2: 1, 3: 1} and event["suppressed"] == 9
    assert event["first"] == datetime.datetime.fromtimestamp(1_790_000_000.000002, datetime.timezone.utc).isoformat()
    env.restart()  # the cursor survives in the cachedir
    entry("nf_conntrack: nf_conntrack: table full in netns 4, dropping packet")
    assert seen(only_full(env.run({"min_interval": 0}, source="journal"))) == {4: 1}
    calls = journal.calls()
    assert calls[-1][calls[-1].index("--after-cursor") + 1] == "s=abc;i=4"


def test_journal_cursor_vacuumed_away_restarts_at_the_end(env, tmp_path, monkeypatch):
    journal = Journal(tmp_path, monkeypatch)
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 1, dropping packet")
    conf = {"min_interval": 0}
    env.run(conf, source="journal")
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 2, dropping packet")
    assert seen(only_full(env.run(conf, source="journal"))) == {2: 1}
    # journald vacuums the entry the cursor names, and more is logged: journalctl refuses the cursor.
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 3, dropping packet")
    journal.entry("e1000e: eth0 NIC Link is Up")
    journal.vacuum(keep=2)
    env.set_usage(95)
    events = env.run(conf, {"status_interval": 0}, source="journal")
    assert kinds(events) == ["usage_high"]  # the counters never waited on the journal
    assert journal.calls()[-1][-3:] == ["-n", "1", "_TRANSPORT=kernel"]  # started again at the end
    # From the new cursor on, nothing is refused, lost or repeated; the gap was counted once.
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 4, dropping packet")
    event = only_full(env.run(conf, source="journal"))
    assert seen(event) == {4: 1} and (event["lost"], event["unverified"], event["errors"]) == (0, 1, 0)
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 5, dropping packet")
    event = only_full(env.run(conf, source="journal"))
    assert seen(event) == {5: 1} and event["unverified"] == 0
    # A garbled cursor in the cachedir is the same case.
    env.set_usage(10)
    env.restart()
    state = env.cachedir / "conntrack" / "beacon-conntrack.json"
    state.write_text(json.dumps({"kind": "journal", "cursor": "not a cursor"}))
    assert env.run(conf, source="journal") == []
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 6, dropping packet")
    event = only_full(env.run(conf, source="journal"))
    assert seen(event) == {6: 1} and (event["lost"], event["unverified"]) == (0, 1)


def test_journal_failing_first_run_does_not_replay_the_journal(env, tmp_path, monkeypatch):
    journal = Journal(tmp_path, monkeypatch)
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 1, dropping packet")  # the past
    working = journal.tool.read_text()
    journal.tool.write_text(
        f"#!{sys.executable}\nimport sys\nsys.exit('Failed to open journal: Too many open files')\n"
    )
    assert env.run({"min_interval": 0}, source="journal") == []  # the read fails
    journal.tool.write_text(working)
    assert env.run({"min_interval": 0}, source="journal") == []  # still starts at the end
    journal.entry("nf_conntrack: nf_conntrack: table full in netns 2, dropping packet")
    event = only_full(env.run({"min_interval": 0}, source="journal"))
    assert seen(event) == {2: 1} and event["errors"] == 1


# ---------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "config,why",
    [
        ({"source": "kmsg"}, "must be a list"),
        (["kmsg"], "must be a dict"),
        ([{"sorce": "kmsg"}], "unknown option(s) sorce"),
        ([{"source": "var/log/messages"}], "absolute log file path"),
        ([{"source": "/var/log"}], "is a directory"),
        ([{"source": 3}], "source must be"),
        ([{"min_interval": -1}], "min_interval must be a number from 0 to 86400"),
        ([{"min_interval": "soon"}], "min_interval must be a number"),
        ([{"min_interval": float("nan")}], "min_interval must be a number"),
        ([{"usage_warning": float("nan")}], "usage_warning must be a number"),
        ([{"usage_critical": float("inf")}], "usage_critical must be a number"),
        ([{"incident_gap": "1_000"}], "incident_gap must be a number"),
        ([{"status_interval": "\uff15"}], "status_interval must be a number"),
        ([{"source": "/var/log/kern\x00.log"}], "without NUL"),
        ([{"source": "/var/log/../../etc/passwd"}], "must not contain '..'"),
        ([{"source": "/" + "a" * 5000}], "characters long"),
        ([{"incident_gap": 0}], "incident_gap must be above 0"),
        ([{"usage_warning": 120}], "usage_warning must be a number from 0 to 100"),
        ([{"usage_warning": 0}], "usage_warning must be above 0"),
        ([{"usage_warning": 95}, {"usage_critical": 90}], "must not be above usage_critical"),
        ([{"usage_warning": 4}, {"hysteresis": 5}], "hysteresis (5) must be below"),
        ([{"drops": "yes"}], "drops must be true or false"),
        ([{"persist": 1}], "persist must be true or false"),
        ([{"max_read": 10}], "max_read (bytes) must be a whole number from 4096"),
        ([{"max_read": 5000.0}], "max_read (bytes) must be a whole number"),
        ([{"usage_critical": True}], "usage_critical must be a number"),
    ],
)
def test_validate_refuses(env, config, why):
    ok, message = env.mod.validate(config)
    assert ok is False
    assert why in message and message.startswith("conntrack beacon: ")


@pytest.mark.parametrize(
    "config",
    [
        [],
        [{"source": "auto"}, {"interval": 5}, {"enabled": True}],
        [{"source": "/var/log/kern.log"}, {"min_interval": 0}, {"usage_warning": None}],
        [{"usage_warning": None}, {"usage_critical": None}, {"drops": False}, {"persist": False}],
        [{"beacon_module": "conntrack"}, {"disable_during_state_run": True}, {"run_once": False}],
    ],
)
def test_validate_accepts(env, config):
    assert env.mod.validate(config) == (True, "Valid beacon configuration")


def test_auto_without_any_log_says_what_to_do(env, monkeypatch):
    os.makedirs(env.mod.__opts__["conntrack.root"], exist_ok=True)
    with pytest.raises(RuntimeError, match="set source to a log file"):
        env.mod.beacon([{"source": "auto"}])


# ---------------------------------------------------------------------------
# Rotation followed until quiet, restarts inside min_interval, what counts as lost


def counted(events):
    """netns inode -> lines over several events; a repeat would show as a count above 1."""
    total = {}
    for event in events:
        if event["tag"] == "table_full":
            for ns, n in seen(event).items():
                total[ns] = total.get(ns, 0) + n
    return total


def test_a_renamed_file_is_followed_until_quiet(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    old = f"{env.log}.1"
    os.rename(env.log, old)  # logrotate create, the HUP not yet sent: the writer stays on the old file
    assert env.run(conf) == []
    env.append(full(1), old)
    env.log.write_text("")
    assert seen(only_full(env.run(conf, tick=3))) == {1: 1}
    env.append(full(2), old)  # 6 s after the rotation, still the old file
    assert seen(only_full(env.run(conf, tick=3))) == {2: 1}
    env.run(conf, tick=generations.QUIET + 1)  # quiet, but the new file is still empty: held on
    env.append(full(3), old)
    env.append(full(4))
    assert counted([*env.run(conf), *env.run(conf, tick=generations.QUIET + 1)]) == {3: 1, 4: 1}
    source = env.mod.__context__["conntrack.beacon.conntrack"].source
    assert source.held == []  # let go: quiet and the new file has content
    env.append(full(5), old)  # too late: nobody writes a file 10 s after its HUP
    env.append(full(6))
    assert counted([*env.run(conf), *env.run(conf, tick=60)]) == {6: 1}


def test_held_files_are_bounded(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    for i in range(generations.HELD_MAX + 3):
        os.rename(env.log, f"{env.log}.{i}")
        env.append(full(i), f"{env.log}.{i}")
        env.log.write_text("")
        env.run(conf)
    source = env.mod.__context__["conntrack.beacon.conntrack"].source
    assert len(source.held) == generations.HELD_MAX
    env.run(conf, tick=generations.HOLD_MAX + 1)
    assert source.held == []


def test_over_the_bound_the_quietest_held_file_goes_first(env):
    """A writer that missed its HUPs keeps writing a file renamed many times: that one stays held."""
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    written = f"{env.log}.written"
    os.rename(env.log, written)  # the file the writer still has open
    env.log.write_text("")
    env.run(conf)
    for i in range(generations.HELD_MAX + 2):
        env.append(full(100 + i), written)  # it keeps growing ...
        os.rename(env.log, f"{env.log}.{i}")  # ... while empty new files are rotated away
        env.log.write_text("")
        env.run(conf, tick=1)
    env.append(full(200), written)
    events = [*env.run(conf, tick=1)]
    assert counted(events) == {200: 1}


def test_generations_rotated_between_two_runs_are_read_once(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    env.append(full(1))
    for gen in range(3):  # three rotations before the next run; each file had lines
        for name in sorted(os.listdir(env.log.parent), reverse=True):
            if name.startswith("kern.log."):
                n = int(name.rsplit(".", 1)[1])
                os.rename(env.log.parent / name, env.log.parent / f"kern.log.{n + 1}")
        os.rename(env.log, f"{env.log}.1")
        env.log.write_text(full(10 + gen))
    events = [*env.run(conf), *env.run(conf, tick=generations.QUIET + 1), *env.run(conf, tick=1)]
    assert counted(events) == {1: 1, 10: 1, 11: 1, 12: 1}


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
    saved = json.loads((env.cachedir / "conntrack" / "beacon-conntrack.json").read_text())
    assert saved["tracker"]["incident"]["events"] == 1 and saved["source"]["kind"] == "file"


def test_truncation_with_unread_bytes_is_lost_with_their_number(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) + full(2)[:50])  # a line still being written: seen, not yet read
    env.run({"min_interval": 0})
    env.log.write_text("")  # truncated, no copy anywhere
    env.append(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {3: 1}
    assert (event["lost"], event["lost_bytes"], event["unverified"]) == (1, 50, 0)


def test_copytruncate_with_nothing_unread_is_not_lost(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(2))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1} and (event["lost"], event["unverified"]) == (0, 0)


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
    event = only_full(env.run({"min_interval": 0}))  # the event goes out anyway
    assert seen(event) == {2: 1} and "findings" not in event
    del env.mod.__salt__["conntrack.diagnose"]
    env.append(full(3))
    assert "findings" not in only_full(env.run({"min_interval": 0}))


def test_source_path_is_resolved_under_the_root(env, tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("")
    os.symlink(outside, env.log)
    ok, why = env.mod.validate([{"source": "/var/log/kern.log"}])
    assert ok is False and "outside" in why and "conntrack.root" in why
    os.unlink(env.log)
    env.log.write_text("")
    env.run()
    env.append(full(1))
    assert only_full(env.run())["source"] == os.path.realpath(env.log)


TIMESTAMPS = {
    "2024-05-02T08:15:30.5+02:00 h kernel: x": 1714630530.5,
    "2024-05-02T08:15:30.5+0200 h kernel: x": 1714630530.5,
    "2024-05-02T06:15:30Z h kernel: x": 1714630530.0,
    "2024-05-02T06:15:30.123456789+00:00 h kernel: x": 1714630530.123456789,
    "2024-05-02T04:15:30.25-02:00 h kernel: x": 1714630530.25,
    "2024-05-02 06:15:30.5+00:00 h kernel: x": 1714630530.5,
}


@pytest.mark.parametrize("python", [sys.executable, "/root/.pyenv/versions/3.10.13/bin/python3.10"])
def test_timestamps_parse_on_every_python(python):
    """Python 3.10's fromisoformat refuses `.5` fractions and `+0200`: the grammar must not need it."""
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} is not installed here")
    code = (
        "import importlib.util, json, sys; "
        "spec = importlib.util.spec_from_file_location('grammar', sys.argv[2]); "
        "grammar = importlib.util.module_from_spec(spec); spec.loader.exec_module(grammar); "
        "print(json.dumps({l: grammar.line_time(l.encode(), 0) for l in json.loads(sys.argv[1])}))"
    )
    utils = str(REPO / "_utils")
    proc = subprocess.run(
        [python, "-c", code, json.dumps(list(TIMESTAMPS)), str(REPO / "_utils/saltext_conntrack/logwatch/grammar.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": utils, "PATH": os.environ["PATH"]},
    )
    got = json.loads(proc.stdout)
    assert got == pytest.approx(TIMESTAMPS)


def test_idle_runs_write_nothing(env):
    """The state file is written when the cursor or the held-back counts move, not on idle runs
    (an fsync'd write costs milliseconds), a rotated file held open included."""
    state = env.cachedir / "conntrack" / "beacon-conntrack.json"
    env.log.write_text("")
    env.run()
    env.append(full(1))
    env.run()
    os.rename(env.log, f"{env.log}.1")
    env.log.write_text("")  # empty: the old file stays held
    env.run()
    before = state.stat().st_ino, json.loads(state.read_text())
    for _ in range(5):
        assert env.run() == []
    assert (state.stat().st_ino, json.loads(state.read_text())) == before  # atomic writes change the inode
    assert len(before[1]["source"]["held"]) == 1


def test_a_file_that_appears_and_is_rotated_before_the_next_run_is_read(env):
    """Seen on the real kernel: syslog creates the file with its first line just as logrotate renames it."""
    conf = {"min_interval": 0}
    old = f"{env.log}.1"
    with open(old, "w") as fh:
        fh.write(full(0))  # a rotated copy from before: the past
    env.run(conf)  # no file yet
    env.log.write_text(full(1))
    os.rename(env.log, f"{env.log}.0")
    env.log.write_text(full(2))
    events = [*env.run(conf), *env.run(conf, tick=generations.QUIET + 1)]
    assert counted(events) == {1: 1, 2: 1}


def test_rotated_links_out_of_the_root_are_never_read(tmp_path):
    """A sibling that is a symlink (here to a file outside the log directory) is not a rotated copy."""
    from saltext_conntrack.logwatch import truncation

    outside = tmp_path / "outside.log"
    outside.write_text("nf_conntrack: nf_conntrack: table full, dropping packet\n" * 3)
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "kern.log").write_text("")
    (logs / "kern.log.1").symlink_to(outside)
    (logs / "kern.log.2.gz").symlink_to(outside)
    path = str(logs / "kern.log")
    assert [sibling for sibling, _ in generations.siblings(path)] == []
    assert truncation.from_compressed(path, 10, b"x" * 5, []) is False
