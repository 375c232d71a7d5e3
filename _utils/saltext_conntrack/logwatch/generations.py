"""A log file's rotated generations: found beside it, held open, let go.

Rename rotation (logrotate ``create``): the writer keeps writing to the
renamed file until it reopens (its HUP), so the old file is *held*: kept open
and read on every run until it has been quiet for ``QUIET`` seconds and the
new file has content, at most ``HOLD_MAX`` seconds and ``HELD_MAX`` files.
Generations that were created and rotated away between two runs (a storm of
rotations, a ``copytruncate`` while nothing had been read, three rotations
while the minion was down) are found among the siblings, compressed ones
included, by a recent mtime and content never read: an inode not known, or
a known inode whose head is not the one read (ext4 reuses inodes), and a head
that is no known generation's (a compressed copy of one already read is not
new), and read whole.
"""

import logging
import os

from saltext_conntrack.logwatch import copies, lines

log = logging.getLogger(__name__)

QUIET = 10.0  # seconds a rotated-away file must stay unchanged before it is let go
HOLD_MAX = 3600.0  # ... and at most this long after the rotation
HELD_MAX = 4  # rotated-away files kept open at most
KNOWN_MAX = 32  # identities (and heads) of files already read, so none is read twice
SLACK = 2.0  # seconds of mtime before the last look that still count as "written since"
COMPRESSED = copies.COMPRESSED
siblings = copies.siblings


class Rotation:
    """The held generations of one path, the identities already read, and the time of the last look."""

    def __init__(self, path, reader, olddir=None):
        self.path = path
        self.olddir = olddir  # where logrotate's olddir puts the rotated copies, if set
        self.reader = reader
        self.held = []
        self.known = {}  # (dev, ino) -> the head read of it ([length, hash], None: not known)
        self.looked = None  # wall time of the last look at the path

    def close(self):
        for gen in self.held:
            os.close(gen.fd)
        self.held = []

    def know(self, ident, head=None):
        ident = tuple(ident)
        if head is None and self.known.get(ident):
            return
        self.known.pop(ident, None)
        self.known[ident] = head
        while len(self.known) > KNOWN_MAX:
            del self.known[next(iter(self.known))]

    def known_state(self):
        return [[*ident, *(head or [])] for ident, head in self.known.items()]

    def load(self, saved):
        """``known`` and ``looked`` from a saved cursor (entries ``[dev, ino]`` or ``[dev, ino, n, hash]``)."""
        self.known = {}
        for entry in (saved.get("known") or [])[-KNOWN_MAX:]:
            self.know(entry[:2], [int(entry[2]), str(entry[3])] if len(entry) == 4 else None)
        self.looked = saved.get("looked")

    def heads(self):
        return [*self.known.values(), *(gen.head for gen in self.held)]

    def is_known(self, ident, read):
        """Whether the file with ``ident`` (read by ``read``) is one already read: the inode and its head."""
        return ident in self.known and lines.head_is(self.known[ident], read)

    def know_siblings(self):
        """The copies beside the file now are the past: never read as unseen generations."""
        for path, st in siblings(self.path, compressed=True, olddir=self.olddir)[-KNOWN_MAX:]:
            head = None
            if copies.kind(path) == "plain":
                try:
                    with open(path, "rb") as fh:
                        head = lines.mark(fh.read(lines.HEAD))
                except OSError:
                    continue
            self.know(lines.ident(st), head)

    def hold(self, gen, now, chunks):
        """Keep a rotated-away generation open: its writer may not have reopened yet."""
        gen.since = gen.grown = now
        self.reader.read(gen, chunks)
        self.know(gen.ident, gen.head)
        self.held.append(gen)
        self.reader.moved += 1
        while len(self.held) > HELD_MAX:
            # The one quiet the longest: a writer that has not reopened yet keeps its file growing.
            quietest = min(self.held, key=lambda held: held.grown)
            self.held.remove(quietest)
            self.release(quietest, chunks, "more rotated files than are kept open")

    def release(self, gen, chunks, why):
        self.reader.read(gen, chunks, finish=True)
        self.know(gen.ident, gen.head)
        os.close(gen.fd)
        log.debug("conntrack beacon: let go of rotated %s (%s): %s", self.path, gen.ident, why)

    def _keep(self, gen, now, new_size, chunks):
        """Read a held generation; False once it has been let go."""
        size = os.fstat(gen.fd).st_size
        if size != gen.seen:  # written since (a partial last line is not growth)
            self.reader.read(gen, chunks)
            gen.seen, gen.grown = size, now
        if now - gen.grown >= QUIET and new_size:
            self.release(gen, chunks, f"quiet for {QUIET:g} s and the new file has content")
            return False
        if now - gen.since >= HOLD_MAX:
            if not new_size:
                log.warning(
                    "conntrack beacon: %s was rotated %g s ago and nothing has been written to the new file: "
                    "is the syslog daemon told to reopen it (a postrotate HUP)?",
                    self.path,
                    HOLD_MAX,
                )
            self.release(gen, chunks, f"held for {HOLD_MAX:g} s")
            return False
        return True

    def follow_held(self, now, new_size, chunks):
        keep = [gen for gen in self.held if self._keep(gen, now, new_size, chunks)]
        if len(keep) != len(self.held):
            self.held = keep
            self.reader.moved += 1

    def unseen(self, now, chunks):
        """Generations created and rotated away since the last look: read whole (plain ones then held)."""
        if self.looked is None:
            return
        mine = {gen.ident for gen in self.held}
        for path, st in siblings(self.path, compressed=True, olddir=self.olddir):
            ident = lines.ident(st)
            if ident in mine or st.st_mtime < self.looked - SLACK or copies.kind(path) == "unreadable":
                continue
            try:
                self._unseen(path, ident, now, chunks)
            except copies.ERRORS as err:
                log.debug("conntrack beacon: %s: cannot read %s: %s", self.path, path, err)

    def _unseen(self, path, ident, now, chunks):
        if copies.kind(path) == "compressed":
            with copies.Compressed(path) as copy:
                if self.is_known(ident, copy.read) or copies.copy_of(copy.read, self.heads()):
                    self.know(ident, copies.head_mark(copy.read))
                    return
                data = copy.rest(0)
            log.debug("conntrack beacon: %s: reading %s, compressed since the last look", self.path, path)
            if data:
                chunks.append(data if data.endswith(b"\n") else data + b"\n")
            self.know(ident, lines.mark(data[: lines.HEAD]))
            return
        gen = lines.open_gen(path)
        if self.is_known(ident, gen.pread) or copies.copy_of(gen.pread, self.heads()):
            self.know(ident, copies.head_mark(gen.pread))
            os.close(gen.fd)
            return
        log.debug("conntrack beacon: %s: reading %s, rotated away between two runs", self.path, path)
        self.hold(gen, now, chunks)
