"""A syslog file followed through rename rotation, copytruncate and restarts.

``FileSource`` is the reader the beacon sees; each of its jobs is a module of
its own: whole lines and the cursor of one generation (``lines``), the
rotated generations found, held and let go (``generations``), the unread rest
after ``copytruncate`` (``truncation``), carrying a saved cursor on after a
restart (``resume``), and what was destroyed before it was read (``gaps``).
All of it survives a restart: ``state()`` is the whole cursor, held files
included (found again by inode).
"""

import logging
import os
import time

from saltext_conntrack.logwatch import gaps, generations, lines, protocol, resume, truncation

log = logging.getLogger(__name__)


class FileSource(protocol.LogReader):
    """A log file and its rotated generations; ``read(budget, now)`` returns hits."""

    kind = "file"
    chunk = 1 << 20  # bytes per read when finishing a rotated or truncated file

    def __init__(self, path, saved=None, olddir=None):
        self.path = path
        self.name = path
        self.cur = None
        self.reader = lines.Reader(self.chunk)
        self.rotation = generations.Rotation(path, self.reader, olddir)
        self.gaps = gaps.Gaps(path)
        self.sig = None  # (size, mtime) of the current file at the last read: the idle test
        self.started = False
        ok = saved and saved.get("kind") == "file" and saved.get("path") == path
        self.saved = saved if ok else None

    @property
    def held(self):
        """The rotated-away generations kept open."""
        return self.rotation.held

    def close(self):
        if self.cur is not None:
            os.close(self.cur.fd)
        self.rotation.close()
        self.cur = None

    def cursor_key(self):
        return self.reader.moved

    def state(self):
        if self.cur is None and not self.held:
            return None
        for gen in (self.cur, *self.held):
            if gen is not None and gen.head:
                self.rotation.know(gen.ident, gen.head)  # the head read so far: an inode alone names no content
        return {
            "kind": "file",
            "path": self.path,
            "cur": self.cur.to_dict() if self.cur else None,
            "held": [gen.to_dict() for gen in self.held],
            "known": self.rotation.known_state(),
            "looked": self.rotation.looked,
        }

    def take_gaps(self):
        return self.gaps.take()

    def _attach(self, now, chunks):
        """Open the file at the path and decide where to start reading it."""
        first = not self.started
        self.started = True
        self.cur = cur = lines.open_gen(self.path)
        st = os.fstat(cur.fd)
        saved, self.saved = self.saved, None
        carried = None
        if saved:
            try:
                carried = resume.resume(self.rotation, self.gaps, cur, saved, st, now, chunks)
            except (TypeError, ValueError, AttributeError, KeyError) as err:  # a foreign or corrupt cursor
                log.warning("conntrack beacon: saved cursor for %s unusable (%s): starting at its end", self.path, err)
            if carried is False:
                cur.offset, cur.tail, cur.head = 0, b"", None
        if carried is None and first:
            # The past is not news: start at the end of the last whole line; the
            # rotated copies beside it are the past too, never unseen generations.
            self.rotation.know_siblings()
            tail = os.pread(cur.fd, lines.TAIL, max(0, st.st_size - lines.TAIL))
            cut = tail.rfind(b"\n") + 1
            cur.offset, cur.tail = st.st_size - (len(tail) - cut), tail[:cut]
            cur.head = lines.mark(os.pread(cur.fd, min(cur.offset, lines.HEAD), 0)) if cur.offset else None
        cur.seen = max(cur.offset, 0)
        self.rotation.know(cur.ident, cur.head)
        self.reader.moved += 1

    def _missing(self, chunks):
        """No file at the path: it may appear later, and all of it will be new."""
        if not self.started:
            self.rotation.know_siblings()  # the past, should the file appear and be rotated before a run
        self.started = True
        self.rotation.looked = time.time()
        return lines.hits(chunks)

    def read(self, budget, now=None):
        """Hits in what was written since the last call (at most ``budget`` bytes of the current file)."""
        now = time.time() if now is None else now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        cur = self.cur
        idle = (st.st_size, st.st_mtime_ns) == self.sig if st is not None else False
        if cur is not None and idle and lines.ident(st) == cur.ident and not self.held:
            return []  # nothing written since the last run
        chunks = []
        if self.held:
            self.rotation.follow_held(now, st.st_size if st is not None else 0, chunks)
        if cur is not None and (st is None or lines.ident(st) != cur.ident):
            self.rotation.hold(cur, now, chunks)  # renamed away (rotation) or removed
            self.cur = self.sig = None
            if st is not None:
                self.rotation.unseen(now, chunks)
        if self.cur is None:
            if st is None:
                return self._missing(chunks)
            self.rotation.unseen(now, chunks)  # it appeared and was rotated away before this run
            self._attach(now, chunks)
        elif st.st_size < self.cur.offset or not lines.tail_ok(self.cur.fd, self.cur.offset, self.cur.tail):
            cur = self.cur
            self.rotation.know(cur.ident, cur.head)  # its copies are not new content
            truncation.recover(self.rotation, self.gaps, cur.cursor(), chunks)
            self.rotation.unseen(now, chunks)
            cur.offset, cur.tail, cur.seen, cur.head = 0, b"", 0, None
        elif self.cur.offset == 0:
            # Nothing read from it yet, and it changed: a copytruncate leaves no trace in the
            # file itself at offset 0, only the copy beside it (new content, read whole).
            self.rotation.unseen(now, chunks)
        self.rotation.looked = time.time()
        self._read_current(budget, chunks)
        return lines.hits(chunks)

    def _read_current(self, budget, chunks):
        cur = self.cur
        st = os.fstat(cur.fd)
        self.reader.read(cur, chunks, limit=budget)
        cur.seen = max(cur.seen, st.st_size)
        # A partial line or more to read: look again next run, whatever the size says.
        self.sig = (st.st_size, st.st_mtime_ns) if cur.offset == st.st_size else None
