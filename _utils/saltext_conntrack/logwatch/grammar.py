"""The kernel log grammar: table-full lines of every era, rate-limit counts, line times.

Pure standard library (no Salt), so it runs on every Python the extension
supports; the beacon and ``conntrack_log.read_log`` both read logs through it.

A hit is ``(netns, suppressed, time)``: a table-full line has ``suppressed``
None and names its netns inode (None when the line names none); a
rate-limit line has the count of messages the kernel suppressed. A syslog
daemon's repeat line stands for ``n`` table-full lines and is the hit
``(netns, None, time, n)``: rsyslog's ``message repeated N times: [ ... ]``
(``$RepeatedMsgReduction on``; the line is written only when a different
message arrives, so its N lines are counted late), and ``last message
repeated N times`` (sysklogd, busybox, rsyslog's legacy form) or syslog-ng's
``Last message 'nf_conntrack: nf_co' repeated N times`` right after a
table-full line (they name the line before them, not its text).
"""

import datetime
import re

# A netns inode or a suppressed count has at most 20 digits (2**64): a longer run is
# not a kernel line (anyone can `logger -t kernel`), never converted, and the line is
# skipped while the lines beside it still count.
DIGITS_MAX = 20
# Every era's table-full line and the rate-limit lines that count a burst's rest,
# alone (kmsg, journal, dmesg) or after a syslog header ending in "kernel:".
EVENT = re.compile(
    rb"(?:^|kernel: )(?:\[[^\]\n]{1,40}\] ?)?(?:message repeated (\d{1,%d}) times: \[ ?(?:\[[^\]\n]{1,40}\] ?)?)?(?:"
    rb"(?:(?:nf|ip)_conntrack: ){1,2}table full(?: in netns (\d{1,%d}))?, dropping packet"
    rb"|printk: (\d{1,%d}) messages suppressed"
    rb"|net_ratelimit: (\d{1,%d}) callbacks suppressed)"
    rb"|[Ll]ast message (?:'(?:nf|ip)_conntrack: [^'\n]{0,20}' )?repeated (\d{1,%d}) times" % ((DIGITS_MAX,) * 5),
    re.M,
)
# RFC 3339 / ISO 8601 syslog stamps (rsyslog's high precision format, journald's
# short-iso). Parsed by hand: Python 3.10's fromisoformat refuses a fraction that
# is not 3 or 6 digits and an offset without a colon, both common in syslog files.
ISO_TIME = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))? "
)
# BSD syslog (RFC 3164): no year, no zone.
BSD_TIME = re.compile(rb"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {m.encode(): i for i, m in enumerate(MONTH_NAMES, 1)}


def iso_time(match):
    """Seconds since the epoch of an ``ISO_TIME`` match (local time when it has no zone), or None."""
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        zone = datetime.timezone.utc
    elif sign:
        offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= datetime.timedelta(hours=24):
            return None
        zone = datetime.timezone(-offset if sign == b"-" else offset)
    else:
        zone = None
    try:
        stamp = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError:
        return None
    return stamp.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)


def bsd_time(match, now=None):
    """Seconds since the epoch of a ``BSD_TIME`` match: this year, or last year when that would be the future."""
    month = MONTHS.get(match.group(1))
    if month is None:
        return None
    now = now or datetime.datetime.now()
    day, hour, minute, second = (int(g) for g in match.groups()[1:])
    try:
        parsed = datetime.datetime(now.year, month, day, hour, minute, second)
    except ValueError:  # 29 Feb outside a leap year: last year's cannot be either
        return None
    if parsed - now > datetime.timedelta(days=1):
        try:
            parsed = parsed.replace(year=now.year - 1)
        except ValueError:
            return None
    return parsed.timestamp()


def line_time(buf, pos):
    """Wall time of the syslog line holding ``pos``, or None when it has no header."""
    start = buf.rfind(b"\n", 0, pos) + 1
    head = buf[start : start + 48]
    match = ISO_TIME.match(head)
    if match:
        return iso_time(match)
    match = BSD_TIME.match(head)
    if match:
        return bsd_time(match)
    return None


def scan_text(buf):
    """Hits in a buffer of whole log lines, in order.

    Only the first and last table-full hits carry a time (parsed from the
    syslog header): the rest are never reported, and parsing them would cost
    most of a run that meets a burst.
    """
    hits = []
    first = last = None
    after = -1  # where the line after the last table-full line starts
    for match in EVENT.finditer(buf):
        repeated, ns, printk, netrl, again = match.groups()
        if again is not None:
            if buf.rfind(b"\n", 0, match.start()) + 1 == after:  # it names the table-full line before it
                hits.append((hits[-1][0], None, None, int(again)))
                after = buf.find(b"\n", match.end()) + 1
            continue
        times = int(repeated) if repeated else 1
        if printk is not None or netrl is not None:
            hits.append((None, int(printk or netrl) * times, None))
            after = -1
            continue
        if first is None:
            first = (len(hits), match.start())
        last = (len(hits), match.start())
        hit = (int(ns) if ns else None, None, None)
        hits.append(hit if times == 1 else (*hit, times))
        after = buf.find(b"\n", match.end()) + 1
    for index, pos in {first, last} - {None}:
        hits[index] = (hits[index][0], None, line_time(buf, pos), *hits[index][3:])
    return hits


def scan_message(msg, ts):
    """The hit in one kernel message (a kmsg record's or journal entry's text), or None."""
    if b"table full" not in msg and b"suppressed" not in msg:
        return None
    match = EVENT.match(msg)
    if not match:
        return None
    _, ns, printk, netrl, again = match.groups()
    if again is not None:
        return None  # only a syslog daemon writes repeat lines, never into kmsg or the kernel's journal
    if printk is not None or netrl is not None:
        return (None, int(printk or netrl), None)
    return (int(ns) if ns else None, None, ts)


def iso(ts):
    """An epoch time as ISO 8601 in UTC (the events' format), None stays None."""
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()
