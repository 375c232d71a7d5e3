"""
Beacon: the conntrack table is full, nearly full, or dropping packets.

Why this beacon rather than Salt's ``log`` beacon: the table-full message is
the one line an operator needs when ping starts losing packets, and the kernel
prints it in bursts of thousands (rate limited, with "suppressed" counts in
between). The ``log`` beacon sends one event per line with no limit, starts at
the end of the file on every restart and loses lines when the file rotates.
This beacon coalesces a burst into one event per run, counts what the kernel
suppressed, follows rotation, truncation and ``/dev/kmsg`` overruns, and adds
what no log line can say: how full the table is and whether the kernel's own
drop counter is rising (which works even when logging is rate limited or off).

Counters come from the execution module (``__salt__["conntrack.status"]()``),
so they are the minion's own network namespace's.

Event tags
----------
``salt/beacon/<minion id>/conntrack/<kind>``, kind one of:

``table_full``
    Table-full lines were logged. At most one per beacon run; while the same
    incident goes on (lines less than ``incident_gap`` seconds apart), at most
    one per ``min_interval`` seconds, the lines seen in between carried into
    the next event so no count is lost.
``usage_high``
    Usage (count / max) reached ``usage_warning`` or ``usage_critical``
    percent. Sent on entry and on escalation to critical, not on every run.
``usage_ok``
    Usage fell back below ``usage_warning - hysteresis`` after a ``usage_high``.
``drops``
    The kernel's ``drop`` counter (packets dropped because no entry could be
    allocated) rose since the last look. Same ``min_interval`` rule, the rise
    carried over.

Event data
----------
``table_full``:

.. code-block:: yaml

    matched: 3             # table-full lines read
    suppressed: 431        # counts of "net_ratelimit: N callbacks suppressed" /
                           # "printk: N messages suppressed." that belong to the burst
    total: 434             # matched + suppressed: the burst's true size
    lost: 0                # kmsg records overwritten before they were read, plus
                           # rotations whose unread rest could not be found, plus
                           # journal cursors journalctl refused (vacuumed away)
    errors: 0              # runs whose read of the log failed since the last event
                           # (logged; the counters are still read and reported)
    netns:                 # namespaces named in the lines; inode null: the line names
      - inode: 4026532177  # none (the initial netns on 6.17+, any netns before)
        name: blue         # the name under /run/netns, null when there is none
        matched: 3
    first: '2025-11-25T11:00:00.123456+00:00'   # time of the first and last line
    last: '2025-11-25T11:00:04.001000+00:00'
    source: kmsg           # kmsg, journal or the log file's path
    incident: {start: '2025-11-25T11:00:00.123456+00:00', events: 1}
    status: {count: 262144, max: 262144, usage: 100.0, drop: 5123}

``usage_high``: ``level`` (``warning``/``critical``), ``threshold``,
``usage``, ``count``, ``max``, ``status``. ``usage_ok``: ``previous`` (the
level left), ``clear_below``, ``usage``, ``count``, ``max``, ``status``.
``drops``: ``delta`` (rise since the last event), ``drop`` (the counter now),
``early_drop_delta``, ``since`` (time of the previous reading), ``status``.
``status`` is always ``{count, max, usage, drop}`` (null when conntrack is not
loaded). Event data comes from the minion: a reactor must never feed it into
commands or values.

Options
-------
``source`` (default ``auto``)
    ``kmsg``: ``/dev/kmsg``, non-blocking, starting at its end on first run,
    following sequence numbers; when the kernel overwrites records before
    they were read it resyncs and counts them in ``lost``. Only records of the
    kernel facility count (user space cannot write those). Before Linux 3.5
    (CentOS 5 and 6) /dev/kmsg cannot be read: asking for it there is an error.
    ``journal``: kernel messages (``_TRANSPORT=kernel``) from journald via
    ``journalctl`` (systemd 219 and later), resumed from a cursor; costs a
    process per run. A cursor journalctl refuses is dropped: reading starts
    again at the journal's end, counted in ``lost``.
    An absolute path (``/var/log/kern.log``, ``/var/log/messages``): a cursor
    (inode, offset and the last bytes read) that follows rename rotation
    (finishing the old file first) and ``copytruncate`` (finishing the rest
    from the copy), without losing or repeating lines.
    ``auto``: kmsg where a record can be read, else the journal, else the first of
    ``/var/log/kern.log``, ``/var/log/messages``, ``/var/log/syslog`` that
    exists (kmsg and these files are looked up under ``conntrack.root``).
``min_interval`` (default 60)
    Seconds between two events of one kind while an incident goes on.
``incident_gap`` (default 120)
    Seconds without a table-full line after which an incident is over; the
    next line starts a new incident and fires at once.
``usage_warning`` / ``usage_critical`` (default 75 / 90)
    Percent of ``max``; ``null`` turns that level off (both off: no usage events).
``hysteresis`` (default 5)
    Percentage points usage must fall below ``usage_warning`` (or
    ``usage_critical`` when warning is off) to clear.
``drops`` (default true)
    Watch the kernel's drop counter.
``status_interval`` (default 5)
    Seconds between two reads of the counters on runs that saw no table-full
    line; 0 reads them every run. A read costs about 0.2 ms, a run with no new
    line about a tenth of that.
``persist`` (default true)
    Keep file and journal cursors (and the kmsg sequence number of this boot)
    in ``<cachedir>/conntrack/beacon-<name>.json``, so a minion restart neither
    loses nor repeats lines.
``max_read`` (default 16777216)
    Bytes read per run at most; the rest is read on the next runs.

Plus Salt's own ``interval``, ``enabled``, ``run_once``,
``disable_during_state_run`` and ``beacon_module``.

Example configs
---------------

.. code-block:: yaml

    beacons:
      conntrack:
        - interval: 5

.. code-block:: yaml

    beacons:
      conntrack:
        - source: /var/log/kern.log
        - min_interval: 300
        - usage_warning: 80
        - usage_critical: 95
        - hysteresis: 5
        - interval: 10

.. code-block:: bash

    salt-call beacons.add conntrack "[{'source': 'kmsg'}, {'interval': 5}]"
    salt-run state.event 'salt/beacon/*/conntrack/*' pretty=True
"""

import datetime
import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

DEFAULTS = {
    "source": "auto",
    "min_interval": 60,
    "incident_gap": 120,
    "usage_warning": 75,
    "usage_critical": 90,
    "hysteresis": 5,
    "drops": True,
    "status_interval": 5,
    "persist": True,
    "max_read": 16 * 2**20,
}
# Keys Salt itself reads from every beacon's config.
SALT_KEYS = frozenset(
    ("interval", "enabled", "run_once", "disable_during_state_run", "beacon_module", "_beacon_name")
)
LOG_FILES = ("var/log/kern.log", "var/log/messages", "var/log/syslog")
KMSG = "dev/kmsg"
NETNS_DIR = "run/netns"
TAIL = 64  # bytes of a file cursor kept to recognise the same file content again
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z")

# Every era's table-full line and the rate-limit lines that count a burst's rest,
# alone (kmsg, journal, dmesg) or after a syslog header ending in "kernel:".
_EVENT = re.compile(
    rb"(?:^|kernel: )(?:\[[^\]\n]{1,40}\] ?)?(?:"
    rb"(?:(?:nf|ip)_conntrack: ){1,2}table full(?: in netns (\d+))?, dropping packet"
    rb"|printk: (\d+) messages suppressed"
    rb"|net_ratelimit: (\d+) callbacks suppressed)",
    re.M,
)
_ISO_TIME = re.compile(rb"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) ")
# The beacon's clock (tests replace it).
_now = time.time
_BSD_TIME = re.compile(rb"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")


def __virtual__():
    if not sys.platform.startswith("linux"):
        return False, "conntrack beacon: netfilter connection tracking exists only on Linux"
    return __virtualname__


# ---------------------------------------------------------------------------
# Configuration


def _as_dict(config):
    ret = {}
    for item in config:
        ret.update(item)
    return ret


def _number(conf, key, low, high, allow_none=False, low_open=False):
    value = conf[key]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if value < low or (low_open and value == low) or value > high:
        bound = f"above {low}" if low_open else f"at least {low}"
        raise ValueError(f"{key} must be {bound} and at most {high}, got {value}")
    return value


def _parse(config):
    """Config list -> dict with defaults; ValueError with an operator's sentence."""
    if not isinstance(config, list):
        raise ValueError(
            "configuration for the conntrack beacon must be a list of one-key dicts, "
            f"e.g. [{{'source': 'kmsg'}}, {{'interval': 5}}], got {type(config).__name__}"
        )
    for item in config:
        if not isinstance(item, dict):
            raise ValueError(f"every item of the conntrack beacon config must be a dict, got {item!r}")
    given = _as_dict(config)
    unknown = sorted(set(given) - set(DEFAULTS) - SALT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(DEFAULTS))} "
            f"and Salt's {', '.join(sorted(SALT_KEYS - {'_beacon_name'}))}"
        )
    conf = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    source = conf["source"]
    if not isinstance(source, str) or not (source in ("auto", "kmsg", "journal") or os.path.isabs(source)):
        raise ValueError(f"source must be auto, kmsg, journal or an absolute log file path, got {source!r}")
    if os.path.isabs(source) and os.path.isdir(source):
        raise ValueError(f"source {source} is a directory: give a log file such as /var/log/kern.log")
    _number(conf, "min_interval", 0, 86400)
    _number(conf, "incident_gap", 0, 86400, low_open=True)
    _number(conf, "status_interval", 0, 86400)
    warning = _number(conf, "usage_warning", 0, 100, allow_none=True, low_open=True)
    critical = _number(conf, "usage_critical", 0, 100, allow_none=True, low_open=True)
    hysteresis = _number(conf, "hysteresis", 0, 100)
    if warning is not None and critical is not None and warning > critical:
        raise ValueError(f"usage_warning ({warning}) must not be above usage_critical ({critical})")
    lowest = warning if warning is not None else critical
    if lowest is not None and hysteresis >= lowest:
        raise ValueError(f"hysteresis ({hysteresis}) must be below the lowest usage threshold ({lowest})")
    for key in ("drops", "persist"):
        if not isinstance(conf[key], bool):
            raise ValueError(f"{key} must be true or false, got {conf[key]!r}")
    max_read = conf["max_read"]
    if isinstance(max_read, bool) or not isinstance(max_read, int) or not 4096 <= max_read <= 2**31:
        raise ValueError(f"max_read must be an integer number of bytes from 4096 to 2147483648, got {max_read!r}")
    conf["name"] = re.sub(r"[^A-Za-z0-9_.-]", "_", str(given.get("_beacon_name") or __virtualname__))
    return conf


def validate(config):
    """
    Check the beacon configuration; ``(True, message)`` or ``(False, reason)``.

    Every key is checked: unknown keys, wrong types, thresholds out of 0-100 or
    in the wrong order, a hysteresis that could never clear, a relative path.
    """
    try:
        _parse(config)
    except ValueError as err:
        return False, f"conntrack beacon: {err}"
    return True, "Valid beacon configuration"


# ---------------------------------------------------------------------------
# Small helpers


def _root_path(rel):
    root = __opts__.get("conntrack.root", "/") or "/"  # noqa: F821
    return os.path.join(root, rel)


def _iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()


def _line_time(buf, pos):
    """Wall time of the syslog line holding ``pos``, or None when it has no header."""
    start = buf.rfind(b"\n", 0, pos) + 1
    head = buf[start : start + 40]
    match = _ISO_TIME.match(head)
    if match:
        text = match.group(1).decode().replace(" ", "T")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.timestamp()
    match = _BSD_TIME.match(head)
    if match:
        # BSD syslog has no year: this year, or last year when that would be the future.
        now = datetime.datetime.now()
        try:
            parsed = datetime.datetime.strptime(f"{now.year} {match.group(1).decode()}", "%Y %b %d %H:%M:%S")
        except ValueError:
            return None
        if parsed - now > datetime.timedelta(days=1):
            parsed = parsed.replace(year=now.year - 1)
        return parsed.timestamp()
    return None


def scan_text(buf):
    """Hits in a buffer of whole log lines: ``(netns or None, suppressed count, time)``.

    A table-full hit has suppressed None; a suppression hit has a count. Only
    the first and last table-full hits carry a time (parsed from the syslog
    header): the rest are never reported.
    """
    hits = []
    first = last = None
    for match in _EVENT.finditer(buf):
        ns, printk, netrl = match.groups()
        if printk is not None or netrl is not None:
            hits.append((None, int(printk or netrl), None))
            continue
        if first is None:
            first = (len(hits), match.start())
        last = (len(hits), match.start())
        hits.append((int(ns) if ns else None, None, None))
    for index, pos in {first, last} - {None}:
        hits[index] = (hits[index][0], None, _line_time(buf, pos))
    return hits


def scan_message(msg, ts):
    """Hits in one kernel message (kmsg record, journal entry)."""
    if b"table full" not in msg and b"suppressed" not in msg:
        return None
    match = _EVENT.match(msg)
    if not match:
        return None
    ns, printk, netrl = match.groups()
    if printk is not None or netrl is not None:
        return (None, int(printk or netrl), None)
    return (int(ns) if ns else None, None, ts)


# ---------------------------------------------------------------------------
# Sources. Each keeps its cursor; read(budget) returns hits and counts what it lost.


class KmsgSource:
    """``/dev/kmsg``: one record per read(), each with a sequence number.

    The kernel returns EPIPE when records were overwritten before this reader
    got to them, then carries on from the oldest record still there: the gap
    in sequence numbers is what was lost.
    """

    kind = "kmsg"

    def __init__(self, path, saved=None, boot_id=None):
        self.path = path
        self.name = "kmsg"
        self.fd = None
        self.seq = None
        self.lost = 0
        self.overruns = 0
        self.boot_id = boot_id
        self.saved = saved if saved and saved.get("kind") == "kmsg" else None
        # Wall time of the kernel's timestamp zero (printk uses the monotonic clock).
        self.epoch = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)

    # Seams for tests that play a ring buffer.
    def _open(self):
        return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def _read(self, fd):
        return os.read(fd, 8192)

    def _close_fd(self, fd):
        os.close(fd)

    def probe(self):
        """None when records can be read here, else the OSError that says why not.

        Opening is not enough: before Linux 3.5 /dev/kmsg exists but is for
        writing only, and read() fails with EINVAL (CentOS 5 and 6). Reads one
        record on a descriptor of its own, so the reader's position is untouched.
        """
        try:
            fd = self._open()
        except OSError as err:
            return err
        try:
            self._read(fd)
        except (BlockingIOError, BrokenPipeError, InterruptedError):
            pass  # an empty ring, an overrun, a signal: records can be read
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EPIPE, errno.EINTR):
                return err
        finally:
            self._close_fd(fd)
        return None

    def close(self):
        if self.fd is not None:
            self._close_fd(self.fd)
            self.fd = None

    def state(self):
        return {"kind": "kmsg", "boot_id": self.boot_id, "seq": self.seq}

    def cursor_key(self):
        return self.seq

    def _fast_forward(self):
        while True:
            try:
                rec = self._read(self.fd)
            except (BlockingIOError, InterruptedError):
                return
            except BrokenPipeError:
                continue
            if not rec:
                return
            try:
                self.seq = int(rec.split(b",", 2)[1])
            except (ValueError, IndexError):
                continue

    def read(self, budget):
        hits = []
        if self.fd is None:
            self.fd = self._open()
            saved = self.saved
            try:
                if saved and saved.get("boot_id") == self.boot_id and isinstance(saved.get("seq"), int):
                    # Same boot: read from the oldest record, skip what was seen.
                    self.seq = saved["seq"]
                else:
                    # Start at the end, but by reading to it: SEEK_END would leave the
                    # sequence number unknown, and with it the count of an overrun.
                    self._fast_forward()
            except BaseException:
                # Not at the end yet: a later run must start over, not read the whole ring as news.
                self.close()
                raise
            self.saved = None
        fd = self.fd
        used = 0
        while used < budget:
            try:
                rec = self._read(fd)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self.overruns += 1
                continue
            except OSError as err:
                if err.errno == errno.EPIPE:
                    self.overruns += 1
                    continue
                if err.errno == errno.EAGAIN:
                    break
                raise
            if not rec:
                break
            used += len(rec)
            head, sep, body = rec.partition(b";")
            if not sep:
                continue
            fields = head.split(b",", 4)
            try:
                prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
            except (ValueError, IndexError):
                continue
            if self.seq is not None:
                if seq <= self.seq:
                    continue
                if seq > self.seq + 1:
                    self.lost += seq - self.seq - 1
            self.seq = seq
            if prio >> 3:
                continue  # not the kernel facility: user space wrote it
            hit = scan_message(body.partition(b"\n")[0], self.epoch + usec / 1e6)
            if hit:
                hits.append(hit)
        return hits


class FileSource:
    """A syslog file, followed through rotation and truncation.

    The cursor is the file's identity (device, inode), the offset of the end
    of the last whole line read, and the last bytes before it. A new inode at
    the path means rename rotation: the old file is finished first (through
    the descriptor still open, or after a restart by finding the inode among
    its siblings). A shorter file, or other bytes before the offset, means it
    was truncated in place (copytruncate): the rest is read from the sibling
    copy whose bytes at the offset match, then the file from its start.
    """

    kind = "file"
    chunk = 1 << 20  # bytes per read when finishing a rotated or truncated file

    def __init__(self, path, saved=None):
        self.path = path
        self.name = path
        self.fd = None
        self.ident = None
        self.offset = 0
        self.tail = b""
        self.sig = None
        self.lost = 0
        self.started = False
        self.saved = saved if saved and saved.get("kind") == "file" and saved.get("path") == path else None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def cursor_key(self):
        return (self.ident, self.offset)

    def state(self):
        if self.ident is None:
            return None
        return {
            "kind": "file",
            "path": self.path,
            "dev": self.ident[0],
            "ino": self.ident[1],
            "offset": self.offset,
            "tail": self.tail.hex(),
        }

    def _tail_ok(self, fd, offset, tail):
        if not tail:
            return True
        try:
            return os.pread(fd, len(tail), offset - len(tail)) == tail
        except OSError:
            return False

    def _siblings(self):
        directory, base = os.path.split(self.path)
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return []
        found = []
        for name in names:
            if name == base or not name.startswith(base) or name.endswith(_COMPRESSED):
                continue
            path = os.path.join(directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((path, st))
        found.sort(key=lambda item: item[1].st_mtime_ns, reverse=True)
        return found

    def _drain(self, fd, offset, chunks):
        """Read a finished file from offset to its end (a last line without newline included).

        Chunks end at a newline: a line that straddles two reads is carried
        over whole, not cut in two (which would lose a table-full line).
        """
        rest = b""
        while True:
            data = os.pread(fd, self.chunk, offset)
            if not data:
                break
            offset += len(data)
            if rest:
                data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                chunks.append(data if cut == len(data) else data[:cut])
            rest = data[cut:]
        if rest:
            chunks.append(rest + b"\n")

    def _drain_path(self, path, offset, chunks):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._drain(fd, offset, chunks)
        finally:
            os.close(fd)

    def _recover_copy(self, offset, tail, chunks):
        """After copytruncate: the unread rest is in the copy whose bytes before offset are ours."""
        if offset == 0:
            return
        for path, st in self._siblings():
            if st.st_size < offset:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if tail and self._tail_ok(fd, offset, tail):
                    log.debug("conntrack beacon: %s was truncated; reading the rest from %s", self.path, path)
                    self._drain(fd, offset, chunks)
                    return
            finally:
                os.close(fd)
        self.lost += 1
        log.warning("conntrack beacon: %s was truncated and no copy of its unread rest was found", self.path)

    def _recover_renamed(self, ident, offset, chunks):
        for path, st in self._siblings():
            if (st.st_dev, st.st_ino) == ident:
                self._drain_path(path, offset, chunks)
                return
        self.lost += 1
        log.warning("conntrack beacon: %s was rotated while the minion was down; its unread rest is gone", self.path)

    def _attach(self, st, chunks):
        first = not self.started
        self.started = True
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)
        saved, self.saved = self.saved, None
        if saved:
            tail = bytes.fromhex(saved.get("tail") or "")
            offset = int(saved.get("offset") or 0)
            if (saved.get("dev"), saved.get("ino")) == self.ident:
                if st.st_size >= offset and self._tail_ok(self.fd, offset, tail):
                    self.offset, self.tail = offset, tail
                    return
                self._recover_copy(offset, tail, chunks)
            else:
                self._recover_renamed((saved.get("dev"), saved.get("ino")), offset, chunks)
            self.offset, self.tail = 0, b""
        elif first:
            # Like kmsg: the past is not news. Start at the end of the last whole line.
            self.offset = st.st_size
            self.tail = os.pread(self.fd, TAIL, max(0, st.st_size - TAIL))
            cut = self.tail.rfind(b"\n") + 1
            self.offset -= len(self.tail) - cut
            self.tail = self.tail[:cut]
        else:
            self.offset, self.tail = 0, b""

    def read(self, budget):
        chunks = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self.fd is None:
            if st is None:
                self.started = True  # it may appear later: all of it will be new
                return []
            self._attach(st, chunks)
        elif st is None or (st.st_dev, st.st_ino) != self.ident:
            # Renamed away (rotation) or removed: finish it through our descriptor.
            self._drain(self.fd, self.offset, chunks)
            self.close()
            self.ident, self.sig = None, None
            if st is None:
                return self._hits(chunks)
            self._attach(st, chunks)
        elif (st.st_size, st.st_mtime_ns) == self.sig:
            return []  # idle: nothing written since the last run
        elif st.st_size < self.offset or not self._tail_ok(self.fd, self.offset, self.tail):
            self._recover_copy(self.offset, self.tail, chunks)
            self.offset, self.tail = 0, b""
        self.sig = (st.st_size, st.st_mtime_ns)
        data = os.pread(self.fd, budget, self.offset)
        cut = data.rfind(b"\n") + 1
        if cut:
            chunk = data[:cut]
            chunks.append(chunk)
            self.offset += cut
            self.tail = (self.tail + chunk[-TAIL:])[-TAIL:]
        if cut < len(data):
            self.sig = None  # a partial line or more to read: look again next run
        return self._hits(chunks)

    @staticmethod
    def _hits(chunks):
        hits = []
        for chunk in chunks:
            hits.extend(scan_text(chunk))
        return hits


class JournalSource:
    """Kernel messages from journald, through ``journalctl`` and a cursor.

    Only options journalctl has had since systemd 219 (CentOS 7): no
    ``--output-fields`` (236+). A cursor journalctl refuses (its entry was
    vacuumed away, or the saved one is garbled) is dropped: reading starts
    again at the journal's end and the gap counts as one in ``lost``.
    """

    kind = "journal"

    def __init__(self, saved=None):
        self.name = "journal"
        self.cursor = saved.get("cursor") if saved and saved.get("kind") == "journal" else None
        self.started = self.cursor is not None
        self.lost = 0

    def close(self):
        pass

    def cursor_key(self):
        return self.cursor

    def state(self):
        return {"kind": "journal", "cursor": self.cursor} if self.cursor else None

    @staticmethod
    def _journalctl(args):
        cmd = ["journalctl", "--no-pager", "-q", "-o", "json", *args, "_TRANSPORT=kernel"]
        return subprocess.run(cmd, capture_output=True, timeout=60, check=False)

    def read(self, budget):
        first = not self.started
        if self.cursor:
            proc = self._journalctl(["--after-cursor", self.cursor])
            if proc.returncode != 0 and b"cursor" in proc.stderr.lower():
                log.warning(
                    "conntrack beacon: journalctl refused the cursor %s (%s); starting again at the "
                    "journal's end, the gap counted in lost",
                    self.cursor,
                    proc.stderr.decode(errors="replace").strip(),
                )
                self.cursor = None
                self.lost += 1
                first = True
                self.started = False  # should this fail too, the next run still starts at the end
                proc = self._journalctl(["-n", "1"])
        elif first:
            proc = self._journalctl(["-n", "1"])  # only to learn where the end is
        else:
            proc = self._journalctl([])
        if proc.returncode != 0:
            raise RuntimeError(f"journalctl failed: {proc.stderr.decode(errors='replace').strip()}")
        # Only now: a first run that failed must not make the next one read the whole journal.
        self.started = True
        hits = []
        used = 0
        for line in proc.stdout.splitlines():
            used += len(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.cursor = entry.get("__CURSOR", self.cursor)
            if first:
                continue
            msg = entry.get("MESSAGE")
            if isinstance(msg, list):  # journald sends non-UTF-8 messages as bytes
                msg = bytes(msg)
            elif isinstance(msg, str):
                msg = msg.encode()
            else:
                continue
            try:
                ts = int(entry.get("__REALTIME_TIMESTAMP")) / 1e6
            except (TypeError, ValueError):
                ts = None
            hit = scan_message(msg, ts)
            if hit:
                hits.append(hit)
            if used >= budget:
                break
        return hits


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _make_source(conf, saved):
    source = conf["source"]
    if source == "journal":
        return JournalSource(saved)
    if source not in ("auto", "kmsg"):
        return FileSource(source, saved)
    kmsg = KmsgSource(_root_path(KMSG), saved, _boot_id())
    err = kmsg.probe()
    if err is None:
        return kmsg
    if source == "kmsg":
        hint = " (kernels before 3.5 only let it be written)" if err.errno == errno.EINVAL else ""
        raise RuntimeError(
            f"source kmsg: {kmsg.path} cannot be read: {err.strerror or err}{hint}; "
            "use source: journal, or a log file that receives kernel messages such as /var/log/messages"
        )
    log.debug("conntrack beacon: %s cannot be read (%s); trying the journal and log files", kmsg.path, err)
    root = __opts__.get("conntrack.root", "/") or "/"  # noqa: F821
    if os.path.abspath(root) == "/" and shutil.which("journalctl") and (
        os.path.isdir("/run/log/journal") or os.path.isdir("/var/log/journal")
    ):
        return JournalSource(saved)
    for rel in LOG_FILES:
        path = _root_path(rel)
        if os.path.exists(path):
            return FileSource(path, saved)
    raise RuntimeError(
        "no kernel log to read: /dev/kmsg is unreadable, there is no journal and none of "
        + ", ".join("/" + rel for rel in LOG_FILES)
        + " exists; set source to a log file that receives kernel messages"
    )


# ---------------------------------------------------------------------------
# State between runs


def _state_path(name):
    return os.path.join(__opts__["cachedir"], "conntrack", f"beacon-{name}.json")  # noqa: F821


def _load_state(name):
    try:
        with open(_state_path(name), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _save_state(name, state):
    path = _state_path(name)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("conntrack beacon: cannot keep the cursor in %s: %s", path, err)


def _netns_names(inodes):
    wanted = {ino for ino in inodes if ino is not None}
    names = {}
    if not wanted:
        return names
    directory = _root_path(NETNS_DIR)
    try:
        entries = os.listdir(directory)
    except OSError:
        return names
    for entry in sorted(entries):
        try:
            ino = os.stat(os.path.join(directory, entry)).st_ino
        except OSError:
            continue
        if ino in wanted and ino not in names:
            names[ino] = entry
    return names


def _status():
    """``{count, max, usage, drop}`` and the early_drop counter, or (None, None)."""
    try:
        st = __salt__["conntrack.status"]()  # noqa: F821
    except Exception as err:  # pylint: disable=broad-except
        log.debug("conntrack beacon: conntrack.status failed: %s", err)
        return None, None
    stats = st.get("stats") or {}
    snap = {"count": st["count"], "max": st["max"], "usage": st["usage"], "drop": stats.get("drop")}
    return snap, stats.get("early_drop")


class _State:
    """Everything one configured beacon keeps between runs (in ``__context__``)."""

    def __init__(self, conf, source):
        self.source = source
        self.acc = None  # table-full counts not sent yet
        self.incident = None  # {"start", "last_seen", "last_event", "events"}
        self.open_until = 0.0
        self.level = None  # usage level last reported: None (unknown), ok, warning, critical
        self.drop = None  # (drop, early_drop, time) at the last reading
        self.drop_pending = None  # rise not sent yet: (delta, early_delta, since)
        self.drop_last_event = None
        self.status_at = 0.0
        self.saved_key = None
        self.lost_reported = 0
        self.read_error = None  # text of the last failed read while the source keeps failing


def _new_acc():
    return {"matched": 0, "suppressed": 0, "netns": {}, "first": None, "last": None, "lost": 0, "errors": 0}


def _read_source(state, budget):
    """The source's new hits; a failed read is logged and counted, never raised.

    The counters (usage, drops) must keep working when the log does not. A
    failure is logged as a warning when it starts or changes, then at debug
    level while it goes on, and its end is logged too.
    """
    source = state.source
    try:
        hits = source.read(budget)
    except Exception as err:  # pylint: disable=broad-except
        text = f"{type(err).__name__}: {err}"
        level = logging.DEBUG if text == state.read_error else logging.WARNING
        log.log(level, "conntrack beacon: cannot read %s: %s", source.name, text)
        state.read_error = text
        return [], True
    if state.read_error is not None:
        log.warning("conntrack beacon: reading %s again", source.name)
        state.read_error = None
    return hits, False


def _coalesce(acc, hits, now, open_now):
    """Add one run's hits to the pending counts; return how many were table-full lines.

    Suppression counts belong to the burst when a table-full line came before
    them (in this run, or within incident_gap), or when the very next hit is
    a table-full line (the kernel prints the count just before the next
    message it lets through).
    """
    waiting = 0
    matched = 0
    for ns, count, ts in hits:
        if count is None:
            matched += 1
            acc["matched"] += 1
            acc["netns"][ns] = acc["netns"].get(ns, 0) + 1
            if ts is not None:
                if acc["first"] is None or ts < acc["first"]:
                    acc["first"] = ts
                if acc["last"] is None or ts > acc["last"]:
                    acc["last"] = ts
            acc["suppressed"] += waiting
            waiting = 0
            open_now = True
        elif open_now:
            acc["suppressed"] += count
        else:
            waiting = count
    if matched and acc["first"] is None:
        acc["first"] = acc["last"] = now  # lines without a time of their own: when they were read
    return matched


def beacon(config):
    """
    Watch the kernel log and the conntrack counters; see the module docstring.

    .. code-block:: yaml

        beacons:
          conntrack:
            - source: auto
            - min_interval: 60
            - usage_warning: 75
            - usage_critical: 90
            - interval: 5
    """
    conf = _parse(config)
    key = f"conntrack.beacon.{conf['name']}"
    state = __context__.get(key)  # noqa: F821
    if state is None or state.source is None:
        saved = _load_state(conf["name"]) if conf["persist"] else None
        state = _State(conf, None)
        state.source = _make_source(conf, saved)
        state.saved_key = state.source.cursor_key()
        __context__[key] = state  # noqa: F821
    now = _now()
    ret = []

    # 1. The log: table-full lines and suppression counts.
    source = state.source
    hits, failed = _read_source(state, conf["max_read"])
    lost = source.lost - state.lost_reported
    if hits or lost or failed:
        acc = state.acc or _new_acc()
        acc["errors"] += int(failed)
        if _coalesce(acc, hits, now, now < state.open_until):
            state.open_until = now + conf["incident_gap"]
            inc = state.incident
            if inc is None or now - inc["last_seen"] > conf["incident_gap"]:
                state.incident = inc = {"start": acc["first"], "last_seen": now, "last_event": None, "events": 0}
            inc["last_seen"] = now
        acc["lost"] += lost
        state.lost_reported = source.lost
        state.acc = acc
    if conf["persist"]:
        key = source.cursor_key()
        if key != state.saved_key:
            cursor = source.state()
            if cursor is not None:
                _save_state(conf["name"], cursor)
            state.saved_key = key

    # 2. The counters: every status_interval, and whenever there is news to send.
    inc = state.incident
    full_due = bool(
        state.acc
        and (state.acc["matched"] or state.acc["suppressed"])
        and inc is not None
        and (inc["last_event"] is None or now - inc["last_event"] >= conf["min_interval"])
    )
    snap = early = None
    if full_due or now - state.status_at >= conf["status_interval"]:
        snap, early = _status()
        state.status_at = now

    if full_due:
        acc = state.acc
        names = _netns_names(acc["netns"])
        inc["events"] += 1
        inc["last_event"] = now
        ret.append(
            {
                "tag": "table_full",
                "matched": acc["matched"],
                "suppressed": acc["suppressed"],
                "total": acc["matched"] + acc["suppressed"],
                "lost": acc["lost"],
                "errors": acc["errors"],
                "netns": [
                    {"inode": ino, "name": names.get(ino), "matched": n}
                    for ino, n in sorted(acc["netns"].items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))
                ],
                "first": _iso(acc["first"]),
                "last": _iso(acc["last"]),
                "source": source.name,
                "incident": {"start": _iso(inc["start"]), "events": inc["events"]},
                "status": snap,
            }
        )
        state.acc = None
    if inc is not None and state.acc is None and now - inc["last_seen"] > conf["incident_gap"]:
        state.incident = None

    if snap is not None:
        ret.extend(_usage_events(conf, state, snap))
        if conf["drops"]:
            ret.extend(_drop_events(conf, state, snap, early, now))
    return ret


def _usage_events(conf, state, snap):
    warning, critical, hyst = conf["usage_warning"], conf["usage_critical"], conf["hysteresis"]
    if warning is None and critical is None:
        return []
    usage = snap["usage"]
    rank = {"ok": 0, "warning": 1, "critical": 2}
    if critical is not None and usage >= critical:
        level = "critical"
    elif warning is not None and usage >= warning:
        level = "warning"
    else:
        level = "ok"
    previous = state.level
    clear_below = (warning if warning is not None else critical) - hyst
    if level == "ok" and previous in ("warning", "critical"):
        if usage >= clear_below:
            return []  # inside the hysteresis band: still high
        state.level = "ok"
        return [
            {
                "tag": "usage_ok",
                "previous": previous,
                "clear_below": clear_below,
                "usage": usage,
                "count": snap["count"],
                "max": snap["max"],
                "status": snap,
            }
        ]
    if level != "ok" and rank[level] > rank.get(previous, 0):
        state.level = level
        return [
            {
                "tag": "usage_high",
                "level": level,
                "threshold": critical if level == "critical" else warning,
                "usage": usage,
                "count": snap["count"],
                "max": snap["max"],
                "status": snap,
            }
        ]
    if previous is None or (previous == "critical" and level == "warning" and usage < critical - hyst):
        state.level = level  # first reading, or down from critical: no event, only the new level
    return []


def _drop_events(conf, state, snap, early, now):
    drop = snap["drop"]
    if drop is None:
        return []
    early = early or 0
    last = state.drop
    state.drop = (drop, early, now)
    if last is None or drop < last[0]:
        return []  # first reading, or the counters were reset (module reload): a new baseline
    if drop > last[0]:
        pending = state.drop_pending
        if pending:
            state.drop_pending = (pending[0] + drop - last[0], pending[1] + max(0, early - last[1]), pending[2])
        else:
            state.drop_pending = (drop - last[0], max(0, early - last[1]), last[2])
    pending = state.drop_pending
    if not pending:
        return []
    if state.drop_last_event is not None and now - state.drop_last_event < conf["min_interval"]:
        return []
    state.drop_pending = None
    state.drop_last_event = now
    return [
        {
            "tag": "drops",
            "delta": pending[0],
            "drop": drop,
            "early_drop_delta": pending[1],
            "since": _iso(pending[2]),
            "status": snap,
        }
    ]


def close(config):
    """Release the kernel log descriptor (Salt calls this when beacons are refreshed)."""
    try:
        conf = _parse(config)
    except ValueError:
        return
    state = __context__.pop(f"conntrack.beacon.{conf['name']}", None)  # noqa: F821
    if state is not None and state.source is not None:
        state.source.close()
