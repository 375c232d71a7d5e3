"""The kernel log readers (``logwatch.sources``): /dev/kmsg as a ring buffer that can overrun, journald through a stand-in journalctl.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import datetime
import errno
import json
import os
import stat
import sys

import pytest

from saltext_conntrack.logwatch import sources
from tests.support.beacon_env import full, kinds, only_full, seen
from tests.support.beacon_lines import (
    KMSG_FULL,
    KMSG_FULL_INIT,
    KMSG_OTHER,
    KMSG_SPOOF,
    KMSG_SUPPRESSED,
)


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
