"""What the drop counters did lately: earlier samples kept in the minion's cachedir.

The kernel's ``drop``, ``early_drop`` and ``insert_failed`` count since boot
(or module load), so one overflow months ago would keep a host red for ever.
Each ``conntrack.status`` keeps a sample on disk, so separate ``salt-call``
runs, the beacon and the mine all compare with the same history; the rise
since a sample ``window`` seconds old is what is happening now.

History is per root and network namespace (each has its own counters), per
boot, and bounded: the older a sample, the sparser they are kept. The file
(JSON lines: a header, then one sample a line) grows by appends, which cost no
data flush where a rename over the file does (ext4), and is rewritten,
thinned, once it holds 2 x MAX_SAMPLES lines.
"""

import datetime
import hashlib
import json
import math
import os

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files, paths

COUNTERS = ("drop", "early_drop", "insert_failed")
# After the counters, a sample keeps the table's count and the stat counters
# ``insert`` (what ``trend`` fits) and ``clashres`` (insert races the kernel
# resolved, 5.x on), each None where the kernel has no such column. Samples
# written before hold the counters alone, or without clashres; they still compare.
LEVELS = ("count", "insert", "clashres")
# One sample kept per age bucket [GROWTH**k, GROWTH**(k+1)) seconds: the
# oldest in it, so the oldest sample lives on and the history spans seconds to
# weeks (72 buckets reach past 31 days) while the newest stay dense.
GROWTH = 1.25
MAX_SAMPLES = 72
MAX_FILES = 64
# A reading equal to a sample younger than this adds nothing worth a write.
MIN_GAP = 1.0


def _read_line(root, rel):
    try:
        with open(paths.join(root, rel), encoding="ascii", errors="replace") as fh:
            return fh.read(256).strip() or None
    except OSError:
        return None


def _netns_inode(root):
    for rel in ("proc/thread-self/ns/net", "proc/self/ns/net"):
        try:
            return os.stat(paths.join(root, rel)).st_ino
        except OSError:
            continue
    return None


def history_path(cachedir, root):
    """The history file of this root and this thread's network namespace."""
    key = f"{os.path.realpath(root)}|{_netns_inode(root)}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(cachedir, "conntrack", f"status-{digest}.jsonl")


def _load(path):
    """``(boot, samples)`` from the file: a header line, then one sample per line.

    A line that does not parse (a torn append) is skipped, not fatal.
    """
    boot, samples = None, []
    try:
        lines = files.read_bytes(path, 1 << 21).decode("utf-8", "replace").splitlines()
    except (OSError, CommandExecutionError):  # missing, not a regular file, or over 2 MiB: a new history
        return None, []
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if isinstance(header, dict):
        boot = header.get("boot")
    try:
        rows = json.loads("[" + ",".join(lines[1:]) + "]")  # one parse for the whole history
    except ValueError:
        rows = []
        for line in lines[1:]:  # a torn append: parse line by line, skip what does not parse
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    for item in rows:
        if _valid(item):
            samples.append(item)
    return boot, sorted(samples, key=lambda s: s[0])


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid(item):
    """A sample: time and counters, then optionally count, insert and clashres (those two may be None)."""
    head = 1 + len(COUNTERS)
    if not isinstance(item, list) or len(item) not in (head, head + 2, head + len(LEVELS)):
        return False
    tail = item[head:]
    return all(map(_number, item[:head])) and (
        not tail or (_number(tail[0]) and all(v is None or _number(v) for v in tail[1:]))
    )


def _line(item):
    return json.dumps(item, separators=(",", ":")) + "\n"


def _rewrite(cachedir, path, boot, samples):
    """Replace the file whole (a reader sees the old or the new one): first sample and compaction."""
    fresh = not os.path.exists(path)
    try:
        files.atomic_write(cachedir, path, _line({"boot": boot}) + "".join(_line(s) for s in samples), 0o600)
    except CommandExecutionError as err:
        raise OSError(str(err)) from err
    if fresh:
        _prune(os.path.dirname(path))


def _append(path, sample):
    """One sample appended: a rename over the file costs a data flush on ext4, an append does not."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, _line(sample).encode())
    finally:
        os.close(fd)


def _prune(directory):
    """At most MAX_FILES histories (namespaces come and go): the least recently written go."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith("status-") and n.endswith(".jsonl")]
        if len(names) <= MAX_FILES:
            return
        full = sorted((os.path.join(directory, n) for n in names), key=os.path.getmtime)
        for stale in full[: len(full) - MAX_FILES]:
            os.unlink(stale)
    except OSError:
        pass


def thin(samples, now):
    """The newest sample, and the oldest of each age bucket; at most MAX_SAMPLES."""
    ordered = sorted(samples, key=lambda s: s[0])
    buckets = {}
    for sample in ordered[:-1]:
        age = now - sample[0]
        buckets.setdefault(int(math.log(age, GROWTH)) if age >= 1 else -1, sample)
    kept = sorted(buckets.values(), key=lambda s: s[0]) + ordered[-1:]
    return kept[-MAX_SAMPLES:]


def baseline(samples, now, window):
    """The newest sample at or before ``now - window``, else the oldest; None without samples."""
    if not samples:
        return None
    older = [s for s in samples if s[0] <= now - window]
    return older[-1] if older else samples[0]


def observe(cachedir, root, stats, now, window, count=None):
    """Record this reading of ``stats``; return the ``recent`` block, or None (see :func:`record`)."""
    return record(cachedir, root, stats, now, window, count)[0]


def _reset(current, last):
    """The counters went down since ``last``: a module reload (the count, a level, may fall)."""
    pairs = list(zip(current[1 : 1 + len(COUNTERS)], last[1 : 1 + len(COUNTERS)], strict=False))
    for i in (5, 6):  # insert, clashres
        if len(current) > i and len(last) > i and current[i] is not None and last[i] is not None:
            pairs.append((current[i], last[i]))
    return any(c < p for c, p in pairs)


def record(cachedir, root, stats, now, window, count=None):
    """Record this reading of ``stats`` (and ``count``); return ``(recent, samples)``.

    ``samples`` is the history of this boot and counter generation, oldest
    first, this reading last: what :mod:`trend` fits.

    None on the first sample, after a reboot and after a counter reset (a
    module reload: counters lower than the last sample), which all start a
    new baseline. A history that cannot be written is not an error: the
    reading is still compared with what could be read.
    """
    path = history_path(cachedir, root)
    boot = _read_line(root, "proc/sys/kernel/random/boot_id")
    saved_boot, samples = _load(path)
    current = [now, *(int(stats.get(name, 0)) for name in COUNTERS)]
    if count is not None:
        current += [int(count), *(int(stats[k]) if k in stats else None for k in ("insert", "clashres"))]
    samples = [s for s in samples if s[0] <= now]  # the clock went back: those are unusable
    if saved_boot != boot or (samples and _reset(current, samples[-1])):
        samples = []
    base = baseline(samples, now, window)
    try:
        if not samples:
            _rewrite(cachedir, path, boot, [current])
        elif len(samples) >= 2 * MAX_SAMPLES:
            _rewrite(cachedir, path, boot, thin([*samples, current], now))
        elif samples[-1][1:] != current[1:] or now - samples[-1][0] >= MIN_GAP:
            _append(path, current)
    except OSError:
        pass
    if base is None:
        return None, [current]
    recent = {name: current[i] - base[i] for i, name in enumerate(COUNTERS, start=1)}
    if len(current) > 6 and len(base) > 6 and None not in (current[6], base[6]):
        recent["clashres"] = current[6] - base[6]  # only where both readings have the column
    recent["seconds"] = round(now - base[0], 1)
    recent["since"] = datetime.datetime.fromtimestamp(base[0], datetime.timezone.utc).isoformat(timespec="seconds")
    return recent, [*samples, current]
