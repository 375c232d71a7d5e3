"""A log file's rotated generations: found beside it, held open, let go.

Rename rotation (logrotate ``create``): the writer keeps writing to the
renamed file until it reopens (its HUP), so the old file is *held*: kept open
and read on every run until it has been quiet for ``QUIET`` seconds and the
new file has content, at most ``HOLD_MAX`` seconds and ``HELD_MAX`` files.
Generations that were created and rotated away between two runs (a storm of
rotations) are found among the siblings by an inode never seen and a recent
mtime, and read whole.
"""

import logging
import os
import stat

from saltext_conntrack.logwatch import lines

log = logging.getLogger(__name__)

QUIET = 10.0  # seconds a rotated-away file must stay unchanged before it is let go
HOLD_MAX = 3600.0  # ... and at most this long after the rotation
HELD_MAX = 4  # rotated-away files kept open at most
KNOWN_MAX = 32  # identities of files already read, so none is read twice
SLACK = 2.0  # seconds of mtime before the last look that still count as "written since"
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z")


def siblings(path):
    """``(path, stat)`` of the rotated copies beside the file, oldest first; compressed ones left out."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    found = []
    for name in names:
        if name == base or not name.startswith(base) or name.endswith(COMPRESSED):
            continue
        sibling = os.path.join(directory, name)
        try:
            st = os.lstat(sibling)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):  # a rotated copy is a file; a link may lead out of the root
            found.append((sibling, st))
    found.sort(key=lambda item: item[1].st_mtime_ns)
    return found


class Rotation:
    """The held generations of one path, the identities already read, and the time of the last look."""

    def __init__(self, path, reader):
        self.path = path
        self.reader = reader
        self.held = []
        self.known = []
        self.looked = None  # wall time of the last look at the path

    def close(self):
        for gen in self.held:
            os.close(gen.fd)
        self.held = []

    def know(self, ident):
        if ident not in self.known:
            self.known.append(ident)
            del self.known[:-KNOWN_MAX]

    def know_siblings(self):
        for _, st in siblings(self.path):
            self.know(lines.ident(st))

    def hold(self, gen, now, chunks):
        """Keep a rotated-away generation open: its writer may not have reopened yet."""
        gen.since = gen.grown = now
        self.know(gen.ident)
        self.reader.read(gen, chunks)
        self.held.append(gen)
        self.reader.moved += 1
        while len(self.held) > HELD_MAX:
            # The one quiet the longest: a writer that has not reopened yet keeps its file growing.
            quietest = min(self.held, key=lambda held: held.grown)
            self.held.remove(quietest)
            self.release(quietest, chunks, "more rotated files than are kept open")

    def release(self, gen, chunks, why):
        self.reader.read(gen, chunks, finish=True)
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
        """Generations created and rotated away since the last look: read whole, then held."""
        if self.looked is None:
            return
        mine = {gen.ident for gen in self.held}
        for path, st in siblings(self.path):
            ident = lines.ident(st)
            if ident in self.known or ident in mine or st.st_mtime < self.looked - SLACK:
                continue
            try:
                gen = lines.open_gen(path)
            except OSError:
                continue
            log.debug("conntrack beacon: %s: reading %s, rotated away between two runs", self.path, path)
            self.hold(gen, now, chunks)
