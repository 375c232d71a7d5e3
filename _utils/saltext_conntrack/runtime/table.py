"""The conntrack table (``/proc/net/nf_conntrack``): one streaming pass, bounded memory.

Reading the table walks every entry in the kernel (seconds per million
entries), so everything that needs it is counted in the same pass: the
breakdown ``conntrack.summary`` shows and what ``conntrack.diagnose`` judges
(unreplied flows per port, the remaining lifetime of ESTABLISHED entries).
Per entry, the work stays in C (``findall``, ``map``, ``Counter``), so parsing
one chunk costs less than the kernel's walk that produced it.
"""

import heapq
import logging
import re
import shutil
import subprocess
import time
from collections import Counter
from operator import itemgetter

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import commands, paths
from saltext_conntrack.runtime import kernel, netlink_walk

# One line of the table, original direction only: the family ("4" or "6"; empty
# on legacy ip_conntrack, IPv4 only), protocol, remaining
# lifetime in thousands of seconds (the lazy group keeps all but the last three
# digits, so ESTABLISHED entries fall in at most 433 buckets), TCP state,
# source, destination, and "dport=N " with the "[UNREPLIED] " flag that follows
# the original tuple, as one group: one key less to build per entry. The
# trailing [^\n]*\n skips the reply tuple. Modern lines start with "ipv4     2 ":
# a literal the regex engine finds fast, worth a separate pattern; legacy
# ip_conntrack lines start with the protocol.
_TUPLE = (
    rb"(\S+) +\d+ +(\d*?)\d{1,3} +(?:([A-Z_]+) +)?src=(\S+) dst=(\S+) "
    rb"(?:sport=\d+ (dport=\d+ (?:\[UNREPLIED\] )?))?[^\n]*(?:\n|$)"
)
PATTERNS = {
    "nf_conntrack": rb"ipv([46]) +\d+ +" + _TUPLE,
    "ip_conntrack": rb"(?m)^()" + _TUPLE,
}
# Parsed 32 KiB at a time: the text and the rows findall makes of it stay in
# the CPU's L2 cache while they are counted. A 1 MiB chunk (6,500 rows) cost
# 1.76x the CPU per entry here (3.37 s against 1.92 s for 1,000,000 entries).
CHUNK = 1 << 15
LIFETIME_STEP = 1000
ZONES_MAX = 64  # zones listed in the breakdown, most entries first
# Seconds between two INFO lines of a long walk.
PROGRESS_EVERY = 5.0
# The default budget of summary and diagnose, in seconds. The kernel walks
# about 2.3-2.8 s per million entries here, so 5 s reads every entry of a
# table up to ~1.8M (the 5.15+ default limit, 262144, in well under a second)
# and, beyond that, a sample of 1.8M entries in hash order (not by age or
# address), plenty for the shares the findings judge; a host already in
# trouble never gives one CPU more than that. timeout=0 reads the whole table.
DEFAULT_TIMEOUT = 5
# conntrack.textfile runs every 60 s on the scheduler: 2 s is at most ~3% of a CPU.
TEXTFILE_TIMEOUT = 2

log = logging.getLogger(__name__)
# The walk's clock. Tests replace this name, never time.monotonic itself: every
# thread's asyncio loop reads that one, and a loop that computed its next
# timeout from a fake clock sleeps for hours.
monotonic = time.monotonic

# Few distinct (family, protocol, lifetime/1000, state) keys: counted exactly,
# the family with them (a fifth counter cost 7% of the parse).
_KIND = itemgetter(0, 1, 2, 3)
_SRC, _DST = itemgetter(4), itemgetter(5)
_PORT = itemgetter(1, 6)
# An entry's zone (kernels with CONFIG_NF_CONNTRACK_ZONES print zone=N, or zone-orig=N for a
# zone of the original direction only; zone-reply is the same entry again).
_ZONE = re.compile(rb" zone(?:-orig)?=(\d+) ")


class HeavyHitters:
    """Counts keys in bounded memory (Misra-Gries with amortised pruning).

    Exact while fewer than ``capacity`` distinct keys are seen; beyond that
    counts are lower bounds, off by at most total / capacity.
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.counts = Counter()
        self.pruned = 0

    def update(self, keys):
        self.counts.update(keys)
        # Pruning rebuilds the counter in Python: let it grow to 8 x capacity
        # (a few thousand keys) first, so a table of all-distinct ports
        # prunes every few chunks, not after each one.
        if len(self.counts) > 8 * self.capacity:
            threshold = sorted(self.counts.values(), reverse=True)[self.capacity]
            self.counts = Counter({key: n - threshold for key, n in self.counts.items() if n > threshold})
            self.pruned += threshold

    def top(self, n):
        return most_common(self.counts, n)


def most_common(counts, n):
    """The ``n`` largest counts, ties by key: the same for the same counts, whichever source
    counted them in whichever order (``Counter.most_common`` keeps the order keys came in)."""
    return heapq.nsmallest(n, counts.items(), key=_by_count)


def _by_count(item):
    return -item[1], item[0]


def _blocks(path):
    """The table file as a stream of raw blocks.

    A ``cat`` child walks the table in the kernel (the expensive part) on
    another CPU while this process parses: a reader thread could not overlap
    as well, since it needs the GIL after every read. Without ``cat``, read
    in-process. Closing the generator early (a sample) kills the child.
    """
    cat = shutil.which("cat")
    if cat is None:
        with open(path, "rb", buffering=0) as fh:
            yield from iter(lambda: fh.read(CHUNK), b"")
        return
    proc = subprocess.Popen([cat, "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    commands.widen_pipe(proc.stdout.fileno())
    try:
        yield from iter(lambda: proc.stdout.read(CHUNK), b"")
        error = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise OSError(error or f"cat exited with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()


def chunks(path):
    """Yield the table in chunks that end on a line boundary."""
    tail = b""
    for block in _blocks(path):
        block = tail + block
        cut = block.rfind(b"\n") + 1
        tail = block[cut:]
        if cut:
            yield block[:cut]
    if tail:
        yield tail


class Walk:
    """What one pass over the table counted (see :func:`walk`)."""

    def __init__(self, top):
        capacity = max(1000, 100 * top)
        self.total = self.assured = self.unreplied = 0
        self.complete = True
        self.stopped = None  # why the walk ended early: "sample" or "timeout"
        self.source = None  # "procfs" or "netlink" (set by read)
        # (family, proto, thousands, state) -> entries; the family is b"4"/b"6"
        # (b"" on ip_conntrack: IPv4 only).
        self.kinds = Counter()
        self.zones = Counter()  # zone id (bytes) -> entries, where the lines carry zone=N
        # dport keys carry the [UNREPLIED] flag: (b"udp", b"dport=53 [UNREPLIED] ").
        self.talkers = {key: HeavyHitters(capacity) for key in ("src", "dst", "dport")}

    def add(self, rows, chunk):
        """Rows of one chunk of the proc table; the flags and zones are counted on the chunk's text."""
        self.add_rows(rows, chunk.count(b"[ASSURED]"), chunk.count(b"[UNREPLIED]"))
        self._zones(chunk, len(rows))

    def add_rows(self, rows, assured, unreplied):
        """Rows in the proc walk's shape, from either source (zones are the caller's)."""
        self.total += len(rows)
        self.assured += assured
        self.unreplied += unreplied
        self.kinds.update(map(_KIND, rows))
        self.talkers["src"].update(map(_SRC, rows))
        self.talkers["dst"].update(map(_DST, rows))
        self.talkers["dport"].update(map(_PORT, rows))

    def _zones(self, chunk, rows):
        """Entries per conntrack zone. The usual chunk (every entry in zone 0) costs one count in C;
        the regex runs only on chunks with other zones (or none printed: a kernel without zones)."""
        default = chunk.count(b"zone=0 ")
        if default == rows:
            self.zones[b"0"] += default
        elif default or b"zone" in chunk:
            self.zones.update(_ZONE.findall(chunk))

    @property
    def families(self):
        """``Counter({family: entries})``."""
        found = Counter()
        for (family, _, _, _), n in self.kinds.items():
            found[family] += n
        return found

    @property
    def approximate(self):
        return any(hh.pruned for hh in self.talkers.values())

    def count(self, proto=None, state=None):
        """Entries of ``proto`` and ``state`` (bytes); None matches all."""
        return sum(
            n
            for (_, p, _, s), n in self.kinds.items()
            if (proto is None or p == proto) and (state is None or s == state)
        )

    def ports(self, unreplied=None):
        """``Counter({(proto, port): n})`` over destination ports (lower bounds when approximate)."""
        merged = Counter()
        for (proto, port), n in self.talkers["dport"].counts.items():
            if port and (unreplied is None or port.endswith(b"] ") == unreplied):
                merged[(proto.decode(), int(port[6:].split(b" ", 1)[0]))] += n
        return merged


def walk(path, flavour, top=10, sample=None, timeout=None, expected=None):
    """One pass over the table file at ``path``; a :class:`Walk`.

    ``sample`` stops after that many entries, ``timeout`` after that many
    seconds (checked between chunks of about 200 entries); ``complete`` is
    then False when entries were left and ``stopped`` says which. A walk
    longer than PROGRESS_EVERY seconds logs its progress at INFO (of
    ``expected`` entries, the count, where given). OSError when the table
    cannot be read.
    """
    entry = re.compile(PATTERNS[flavour])
    counted = Walk(top)
    clock = _Clock(timeout, expected)
    stream = chunks(path)
    try:
        for chunk in stream:
            rows = entry.findall(chunk)
            if sample is not None and counted.total + len(rows) >= sample:
                keep = sample - counted.total
                cut = _line_end(chunk, keep)
                counted.add(rows[:keep], chunk[:cut])
                counted.complete = cut >= len(chunk) and next(stream, None) is None
                counted.stopped = None if counted.complete else "sample"
                break
            if rows:
                counted.add(rows, chunk)
            if clock.expired(counted.total):
                counted.complete = next(stream, None) is None
                counted.stopped = None if counted.complete else "timeout"
                break
    finally:
        stream.close()
    clock.done(counted)
    return counted


class _Clock:
    """The walk's time budget and its progress lines."""

    def __init__(self, timeout, expected):
        self.started = self.told = monotonic()
        self.deadline = None if not timeout else self.started + timeout
        self.expected = expected

    def _of(self, total):
        if not self.expected:
            return f"{total} entries"
        return f"{total} of about {self.expected} entries ({round(100.0 * total / self.expected, 1)}%)"

    def expired(self, total):
        now = monotonic()
        if now - self.told >= PROGRESS_EVERY:
            self.told = now
            log.info("conntrack: walking the table: %s in %.1f s", self._of(total), now - self.started)
        return self.deadline is not None and now >= self.deadline

    def done(self, counted):
        seconds = monotonic() - self.started
        if counted.stopped == "timeout":
            log.info("conntrack: table walk stopped at its %.1f s budget: %s", seconds, self._of(counted.total))
        elif seconds >= PROGRESS_EVERY:
            log.info("conntrack: table walk done: %s in %.1f s", self._of(counted.total), seconds)


def walk_netlink(sock, top=10, sample=None, timeout=None, expected=None):
    """The same pass as :func:`walk` over a ctnetlink dump: the same rows, the same counts (``netlink_walk``)."""
    clock = _Clock(timeout, expected)
    counted = netlink_walk.walk(sock, Walk(top), HeavyHitters, sample=sample, expired=clock.expired, expected=expected)
    clock.done(counted)
    return counted


def read(root, flavour, top=10, sample=None, timeout=None, expected=None, reader=None):
    """:py:func:`walk` over the loaded table under ``root``; an error naming the file when it cannot be read.

    With a ``sources.Reader``, a host without the proc table is walked over
    ctnetlink instead; ``source`` on the result says which.
    """
    path = paths.join(root, kernel.FLAVOURS[flavour]["table"])
    bounds = {"top": top, "sample": sample, "timeout": timeout, "expected": expected}
    try:
        source = "procfs"
        if reader is not None:
            source, path = reader.table_batches(flavour)
        if source == "netlink":
            counted = reader.walk(lambda sock: walk_netlink(sock, **bounds))
        else:
            counted = walk(path, flavour, **bounds)
    except OSError as err:
        raise CommandExecutionError(f"cannot read the conntrack table {path or '(netlink)'}: {err}") from err
    counted.source = source
    return counted


def share(counted, expected):
    """Percent of ``expected`` entries (the count) a walk read: 100 when complete, None without a count."""
    if counted.complete:
        return 100.0
    return min(99.9, round(100.0 * counted.total / expected, 1)) if expected else None


def _line_end(chunk, lines):
    """Offset just past the ``lines``-th line of ``chunk`` (the flags counted stay in the sample)."""
    cut = 0
    for _ in range(lines):
        cut = chunk.find(b"\n", cut) + 1
        if not cut:
            return len(chunk)
    return cut


def breakdown(counted, top=10):
    """``conntrack.summary``'s dict from a :class:`Walk`."""
    protocols, states = Counter(), Counter()
    for (_, proto, _, state), n in counted.kinds.items():
        protocols[proto.decode()] += n
        if proto == b"tcp" and state:
            states[state.decode()] += n
    return {
        "total": counted.total,
        "by_protocol": dict(protocols.most_common()),
        "tcp_states": dict(states.most_common()),
        "assured": counted.assured,
        "unreplied": counted.unreplied,
        "by_family": {"ipv4": counted.total - counted.families[b"6"], "ipv6": counted.families[b"6"]},
        "by_zone": {k.decode(): n for k, n in counted.zones.most_common(ZONES_MAX)},
        "top": {
            "src": [[k.decode(), n] for k, n in counted.talkers["src"].top(top)],
            "dst": [[k.decode(), n] for k, n in counted.talkers["dst"].top(top)],
            "dport": [[f"{p}/{d}", n] for (p, d), n in most_common(counted.ports(), top)],
        },
        "approximate": counted.approximate,
        "source": counted.source,
    }


def idle_established(counted, timeout, idle_seconds):
    """How many TCP ESTABLISHED entries were idle at least ``idle_seconds`` (a lower bound).

    An entry's remaining lifetime is the timeout minus the time since its
    last packet, so with the timeout at ``timeout``, remaining <= timeout -
    idle means idle >= idle. A bucket of lifetimes counts only when all of it
    lies at or below that line.
    """
    line = timeout - idle_seconds
    return sum(
        n
        for (_, proto, thousands, state), n in counted.kinds.items()
        if proto == b"tcp" and state == b"ESTABLISHED" and (int(thousands or 0) + 1) * LIFETIME_STEP - 1 <= line
    )
