"""A syslog file followed through rename rotation, copytruncate and restarts.

The cursor of a file is its identity (device, inode), the offset of the end of
the last whole line read, the last bytes before that offset (to recognise the
same content again) and the size last seen.

Rename rotation (logrotate ``create``): the writer keeps writing to the
renamed file until it reopens (its HUP), so the old file is *held*: kept open
and read on every run until it has been quiet for ``QUIET`` seconds and the
new file has content, at most ``HOLD_MAX`` seconds and ``HELD_MAX`` files.
Generations that were created and rotated away between two runs (a storm of
rotations) are found among the siblings by an inode never seen and a recent
mtime, and read whole. ``copytruncate``: the unread rest is read from the
copy whose bytes before the offset are ours. All of it survives a restart:
``state()`` is the whole cursor, held files included (found again by inode).

Content destroyed before it was read is reported by ``take_gaps()``: ``lost``
(places where bytes known to be unread are gone, ``lost_bytes`` of them) and
``unverified`` (content gone with no way to know whether any of it was unread,
e.g. a truncation without a copy when everything seen had been read).
"""

import bz2
import gzip
import logging
import lzma
import os
import stat
import time

from saltext_conntrack.logwatch import grammar

log = logging.getLogger(__name__)

TAIL = 64  # bytes kept to recognise the same file content again
QUIET = 10.0  # seconds a rotated-away file must stay unchanged before it is let go
HOLD_MAX = 3600.0  # ... and at most this long after the rotation
HELD_MAX = 4  # rotated-away files kept open at most
KNOWN_MAX = 32  # identities of files already read, so none is read twice
SLACK = 2.0  # seconds of mtime before the last look that still count as "written since"
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z")
# Compressed copies Python can read: logrotate's compress without delaycompress.
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


class Gen:
    """One generation of the file: an open descriptor and how far it was read."""

    __slots__ = ("fd", "ident", "offset", "tail", "seen", "grown", "since")

    def __init__(self, fd, ident, offset=0, tail=b"", seen=0, grown=0.0, since=0.0):
        self.fd, self.ident, self.offset, self.tail = fd, ident, offset, tail
        self.seen, self.grown, self.since = seen, grown, since

    def to_dict(self):
        return {
            "dev": self.ident[0],
            "ino": self.ident[1],
            "offset": self.offset,
            "tail": self.tail.hex(),
            "seen": self.seen,
            "grown": self.grown,
            "since": self.since,
        }


def _ident(st):
    return (st.st_dev, st.st_ino)


def _saved_ident(saved):
    return (saved.get("dev"), saved.get("ino"))


class FileSource:
    """A log file and its rotated generations; ``read(budget, now)`` returns hits."""

    kind = "file"
    chunk = 1 << 20  # bytes per read when finishing a rotated or truncated file

    def __init__(self, path, saved=None):
        self.path = path
        self.name = path
        self.cur = None
        self.held = []
        self.known = []
        self.looked = None  # wall time of the last look at the path
        self.sig = None  # (size, mtime) of the current file at the last read: the idle test
        self.started = False
        self.moved = 0  # bumped on every cursor change: the beacon saves when it moves
        self.gaps = {"lost": 0, "lost_bytes": 0, "unverified": 0}
        ok = saved and saved.get("kind") == "file" and saved.get("path") == path
        self.saved = saved if ok else None

    # -- the cursor --------------------------------------------------------------

    def close(self):
        for gen in [self.cur, *self.held]:
            if gen is not None:
                os.close(gen.fd)
        self.cur, self.held = None, []

    def cursor_key(self):
        return self.moved

    def state(self):
        if self.cur is None and not self.held:
            return None
        return {
            "kind": "file",
            "path": self.path,
            "cur": self.cur.to_dict() if self.cur else None,
            "held": [gen.to_dict() for gen in self.held],
            "known": [list(ident) for ident in self.known],
            "looked": self.looked,
        }

    def take_gaps(self):
        gaps = self.gaps
        if not any(gaps.values()):
            return None
        self.gaps = {"lost": 0, "lost_bytes": 0, "unverified": 0}
        return gaps

    def _know(self, ident):
        if ident not in self.known:
            self.known.append(ident)
            del self.known[:-KNOWN_MAX]

    def _know_siblings(self):
        for _, st in self._siblings():
            self._know(_ident(st))

    def _gap(self, seen, offset, what):
        """Content from ``offset`` on is gone: lost when bytes past it had been seen, else unverified."""
        if seen > offset:
            self.gaps["lost"] += 1
            self.gaps["lost_bytes"] += seen - offset
            log.warning("conntrack beacon: %s: %s; %d unread bytes are gone", self.path, what, seen - offset)
        else:
            self.gaps["unverified"] += 1
            log.info("conntrack beacon: %s: %s; whether anything unread was in it cannot be known", self.path, what)

    # -- reading -------------------------------------------------------------------

    def _lines(self, gen, chunks, limit=None, finish=False):
        """Read ``gen`` from its offset: whole lines only, or everything when ``finish``.

        Chunks end at a newline, so a line straddling two reads is kept whole.
        """
        rest = b""
        offset = gen.offset
        left = limit
        while left is None or left > 0:
            data = os.pread(gen.fd, self.chunk if left is None else min(left, self.chunk), offset)
            if not data:
                break
            offset += len(data)
            if left is not None:
                left -= len(data)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                chunks.append(data[:cut])
                gen.tail = (gen.tail + data[:cut][-TAIL:])[-TAIL:]
            rest = data[cut:]
        start = gen.offset
        gen.offset = offset - len(rest)
        gen.seen = max(gen.seen, offset)
        if finish and rest:
            chunks.append(rest + b"\n")
            gen.offset = offset
        if gen.offset != start:
            self.moved += 1  # only a cursor that moved is saved again

    def _tail_ok(self, fd, offset, tail):
        if not tail:
            return True
        try:
            return offset >= len(tail) and os.pread(fd, len(tail), offset - len(tail)) == tail
        except OSError:
            return False

    def _siblings(self):
        """``(path, stat)`` of the rotated copies beside the file, oldest first; compressed ones left out."""
        directory, base = os.path.split(self.path)
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return []
        found = []
        for name in names:
            if name == base or not name.startswith(base) or name.endswith(COMPRESSED):
                continue
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):  # a rotated copy is a file; a link may lead out of the root
                found.append((path, st))
        found.sort(key=lambda item: item[1].st_mtime_ns)
        return found

    def _open(self, path, **cursor):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)
        return Gen(fd, _ident(st), **cursor)

    def _hold(self, gen, now, chunks):
        """Keep a rotated-away generation open: its writer may not have reopened yet."""
        gen.since = gen.grown = now
        self._know(gen.ident)
        self._lines(gen, chunks)
        self.held.append(gen)
        self.moved += 1
        while len(self.held) > HELD_MAX:
            # The one quiet the longest: a writer that has not reopened yet keeps its file growing.
            quietest = min(self.held, key=lambda held: held.grown)
            self.held.remove(quietest)
            self._release(quietest, chunks, "more rotated files than are kept open")

    def _release(self, gen, chunks, why):
        self._lines(gen, chunks, finish=True)
        os.close(gen.fd)
        log.debug("conntrack beacon: let go of rotated %s (%s): %s", self.path, gen.ident, why)

    def _follow_held(self, now, new_size, chunks):
        keep = []
        for gen in self.held:
            size = os.fstat(gen.fd).st_size
            if size != gen.seen:  # written since (a partial last line is not growth)
                self._lines(gen, chunks)
                gen.seen, gen.grown = size, now
            if now - gen.grown >= QUIET and new_size:
                self._release(gen, chunks, f"quiet for {QUIET:g} s and the new file has content")
            elif now - gen.since >= HOLD_MAX:
                if not new_size:
                    log.warning(
                        "conntrack beacon: %s was rotated %g s ago and nothing has been written to the new file: "
                        "is the syslog daemon told to reopen it (a postrotate HUP)?",
                        self.path,
                        HOLD_MAX,
                    )
                self._release(gen, chunks, f"held for {HOLD_MAX:g} s")
            else:
                keep.append(gen)
        if len(keep) != len(self.held):
            self.held = keep
            self.moved += 1

    def _unseen(self, now, chunks):
        """Generations created and rotated away since the last look: read whole, then held."""
        if self.looked is None:
            return
        mine = {gen.ident for gen in self.held}
        for path, st in self._siblings():
            ident = _ident(st)
            if ident in self.known or ident in mine or st.st_mtime < self.looked - SLACK:
                continue
            try:
                gen = self._open(path)
            except OSError:
                continue
            log.debug("conntrack beacon: %s: reading %s, rotated away between two runs", self.path, path)
            self._hold(gen, now, chunks)

    def _recover_copy(self, offset, tail, seen, chunks):
        """After copytruncate: the unread rest is in the copy whose bytes before ``offset`` are ours."""
        if offset == 0:
            return
        for path, st in reversed(self._siblings()):
            if st.st_size < offset or _ident(st) in self.known:
                continue
            try:
                gen = self._open(path, offset=offset, tail=tail)
            except OSError:
                continue
            try:
                if self._tail_ok(gen.fd, offset, tail):
                    log.debug("conntrack beacon: %s was truncated; reading the rest from %s", self.path, path)
                    self._know(gen.ident)
                    self._lines(gen, chunks, finish=True)
                    return
            finally:
                os.close(gen.fd)
        if not self._recover_compressed(offset, tail, chunks):
            self._gap(seen, offset, "truncated, and no copy holds its unread rest")

    def _recover_compressed(self, offset, tail, chunks):
        """The unread rest from a compressed copy whose bytes before ``offset`` are ours; True when found.

        Only where the tail identifies the content: without one, any copy would match.
        """
        if not tail or offset < len(tail):
            return False
        directory, base = os.path.split(self.path)
        try:
            names = sorted(os.listdir(directory or "."), reverse=True)
        except OSError:
            return False
        for name in names:
            opener = OPENERS.get(os.path.splitext(name)[1])
            if opener is None or not name.startswith(base):
                continue
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue  # a rotated copy is a file; a link may lead out of the root
            try:
                with opener(path, "rb") as fh:
                    fh.seek(offset - len(tail))
                    if fh.read(len(tail)) != tail:
                        continue
                    rest = fh.read()
            except (OSError, EOFError, ValueError, lzma.LZMAError):
                continue
            log.debug("conntrack beacon: %s: reading its unread rest from the compressed copy %s", self.path, path)
            if rest:
                chunks.append(rest if rest.endswith(b"\n") else rest + b"\n")
            return True
        return False

    def _reopen_held(self, saved, now, chunks):
        """After a restart: the held generations again, found by inode among the siblings."""
        for entry in saved.get("held") or []:
            self._reopen(entry, now, chunks, held=True)

    def _reopen(self, entry, now, chunks, held):
        ident = _saved_ident(entry)
        tail = bytes.fromhex(entry.get("tail") or "")
        cursor = {"offset": int(entry.get("offset") or 0), "tail": tail, "seen": int(entry.get("seen") or 0)}
        for path, st in self._siblings():
            if _ident(st) != ident:
                continue
            gen = self._open(path, **cursor)
            if held:
                gen.grown, gen.since = float(entry.get("grown") or now), float(entry.get("since") or now)
                self._lines(gen, chunks)
                self.held.append(gen)
            else:
                self._hold(gen, now, chunks)
            return
        if not self._recover_compressed(cursor["offset"], tail, chunks):
            self._gap(cursor["seen"], cursor["offset"], "rotated away while the minion was down and no longer found")

    def _resume(self, saved, st, now, chunks):
        """After a restart: carry on where the saved cursor left off, whatever happened meanwhile."""
        self.known = [tuple(ident) for ident in saved.get("known") or []][-KNOWN_MAX:]
        self.looked = saved.get("looked")
        self._reopen_held(saved, now, chunks)
        entry = saved.get("cur")
        if not entry:
            return False
        if _saved_ident(entry) != _ident(st):
            self._reopen(entry, now, chunks, held=False)  # rotated while down: finish and hold the old one
            self._unseen(now, chunks)
            return False
        offset, tail = int(entry.get("offset") or 0), bytes.fromhex(entry.get("tail") or "")
        if st.st_size >= offset and self._tail_ok(self.cur.fd, offset, tail):
            self.cur.offset, self.cur.tail, self.cur.seen = offset, tail, int(entry.get("seen") or offset)
            return True
        self._recover_copy(offset, tail, int(entry.get("seen") or 0), chunks)
        self._unseen(now, chunks)
        return False

    def _attach(self, now, chunks):
        """Open the file at the path and decide where to start reading it."""
        first = not self.started
        self.started = True
        self.cur = self._open(self.path)
        st = os.fstat(self.cur.fd)
        saved, self.saved = self.saved, None
        if saved:
            if not self._resume(saved, st, now, chunks):
                self.cur.offset, self.cur.tail = 0, b""
        elif first:
            # The past is not news: start at the end of the last whole line; the
            # rotated copies beside it are the past too, never unseen generations.
            self._know_siblings()
            tail = os.pread(self.cur.fd, TAIL, max(0, st.st_size - TAIL))
            cut = tail.rfind(b"\n") + 1
            self.cur.offset, self.cur.tail = st.st_size - (len(tail) - cut), tail[:cut]
        self.cur.seen = max(self.cur.offset, 0)
        self._know(self.cur.ident)
        self.moved += 1

    def read(self, budget, now=None):
        """Hits in what was written since the last call (at most ``budget`` bytes of the current file)."""
        now = time.time() if now is None else now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        cur = self.cur
        idle = (st.st_size, st.st_mtime_ns) == self.sig if st is not None else False
        if cur is not None and idle and _ident(st) == cur.ident and not self.held:
            return []  # nothing written since the last run
        chunks = []
        if self.held:
            self._follow_held(now, st.st_size if st is not None else 0, chunks)
        if cur is not None and (st is None or _ident(st) != cur.ident):
            self._hold(cur, now, chunks)  # renamed away (rotation) or removed
            self.cur = self.sig = None
            if st is not None:
                self._unseen(now, chunks)
        if self.cur is None:
            if st is None:
                if not self.started:
                    self._know_siblings()  # the past, should the file appear and be rotated before a run
                self.started = True  # it may appear later: all of it will be new
                self.looked = time.time()
                return kernlog_hits(chunks)
            self._unseen(now, chunks)  # it appeared and was rotated away before this run
            self._attach(now, chunks)
        elif st.st_size < self.cur.offset or not self._tail_ok(self.cur.fd, self.cur.offset, self.cur.tail):
            self._recover_copy(self.cur.offset, self.cur.tail, self.cur.seen, chunks)
            self._unseen(now, chunks)
            self.cur.offset, self.cur.tail, self.cur.seen = 0, b"", 0
        self.looked = time.time()
        self._read_current(budget, chunks)
        return kernlog_hits(chunks)

    def _read_current(self, budget, chunks):
        cur = self.cur
        st = os.fstat(cur.fd)
        self._lines(cur, chunks, limit=budget)
        cur.seen = max(cur.seen, st.st_size)
        # A partial line or more to read: look again next run, whatever the size says.
        self.sig = (st.st_size, st.st_mtime_ns) if cur.offset == st.st_size else None


def kernlog_hits(chunks):
    hits = []
    for chunk in chunks:
        hits.extend(grammar.scan_text(chunk))
    return hits
