"""The kernel log grammar (``logwatch.grammar``): every era and format of a table-full line, rate-limit counts, line times; through the beacon and directly.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import datetime
import json
import os
import subprocess
import sys

import pytest

from saltext_conntrack.logwatch import grammar
from tests.conftest import REPO
from tests.support.beacon_env import full, only_full, seen
from tests.support.beacon_lines import (
    NOT_TABLE_FULL,
    REPEATS,
    SUPPRESSED,
    TABLE_FULL,
)


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


@pytest.mark.parametrize("label,text,lines,ns", REPEATS, ids=[s[0] for s in REPEATS])
def test_repeat_reduction_lines_count_their_n(env, label, text, lines, ns):
    from saltext_conntrack.logwatch import incidents

    acc = incidents.new_acc()
    assert incidents.coalesce(acc, grammar.scan_text(text.encode()), 1.0, False) == lines
    assert acc["netns"] == {ns: lines}
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(text)
    assert seen(only_full(env.run({"min_interval": 0}))) == {ns: lines}


def test_a_repeat_line_in_kmsg_is_no_hit():
    assert grammar.scan_message(b"last message repeated 3 times", 1.0) is None


@pytest.mark.parametrize(
    "bad",
    [
        b"Nov 25 10:00:01 vm kernel: nf_conntrack: table full in netns " + b"9" * 5000 + b", dropping packet\n",
        b"Nov 25 10:00:01 vm kernel: printk: " + b"9" * 5000 + b" messages suppressed\n",
        b"Nov 25 10:00:01 vm kernel: net_ratelimit: " + b"9" * 5000 + b" callbacks suppressed\n",
    ],
    ids=["netns", "printk", "net_ratelimit"],
)
def test_a_huge_digit_run_is_skipped_and_the_real_line_beside_it_counts(bad):
    """Class: bounded parsers. Before: ValueError (Exceeds the limit (4300 digits)) and the run was lost."""
    real = b"Nov 25 10:00:02 vm kernel: nf_conntrack: table full, dropping packet\n"
    hits = grammar.scan_text(bad + real + bad)
    assert [h[:2] for h in hits] == [(None, None)]
    assert grammar.scan_message(bad.split(b"kernel: ", 1)[1].rstrip(), 1.0) is None
    widest = b"kernel: nf_conntrack: table full in netns " + b"1" * 20 + b", dropping packet\n"
    assert grammar.scan_text(widest)[0][0] == int("1" * 20)


def test_a_huge_repeat_count_is_skipped_and_the_real_line_beside_it_counts():
    """The repeat counts have main's DIGITS_MAX bound too."""
    real = b"Nov 25 10:00:02 vm kernel: nf_conntrack: table full, dropping packet\n"
    bad = (
        b"Nov 25 10:00:03 vm kernel: message repeated " + b"9" * 5000 + b" times: [ nf_conntrack: table full, "
        b"dropping packet]\n"
    )
    hits = grammar.scan_text(real + bad)
    assert sum(h[3] if len(h) == 4 else 1 for h in hits if h[1] is None) <= 2  # never a 5000-digit count
    assert all(len(h) < 4 or h[3] < 10**20 for h in hits)
    last = b"Nov 25 10:00:04 vm rsyslogd: last message repeated " + b"9" * 5000 + b" times\n"
    assert [h[:2] for h in grammar.scan_text(real + last)] == [(None, None)]
