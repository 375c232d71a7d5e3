"""The rotated copies beside a log file, plain or compressed, read alike.

A copy is read through ``read(pos, n)``: ``os.pread`` for a plain file, a
decompressing stream for ``.gz``, ``.bz2`` and ``.xz`` (seeking forward
decompresses, seeking back starts over). ``.zst``, ``.lz4`` and ``.Z`` need
tools Python lacks: such a copy is *unreadable*, and what it may hold is
counted as ``unverified`` by whoever needed it. Which copy is which is told
by content, never by name or inode (``lines.Cursor``): every copy holds the
same table-full text, and ext4 reuses inodes.
"""

import bz2
import gzip
import lzma
import os
import stat

from saltext_conntrack.logwatch import lines

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
UNREADABLE = (".zst", ".lz4", ".Z")
COMPRESSED = (*OPENERS, *UNREADABLE)
ERRORS = (OSError, EOFError, ValueError, lzma.LZMAError)


def kind(path):
    """``plain``, ``compressed`` (readable here) or ``unreadable``."""
    ext = os.path.splitext(path)[1]
    if ext in OPENERS:
        return "compressed"
    return "unreadable" if ext in UNREADABLE else "plain"


def siblings(path, compressed=False, olddir=None):
    """``(path, stat)`` of the rotated copies beside the file (and in ``olddir``), oldest first (by mtime).

    Compressed ones only when asked for; links never (a link may lead out of the root).
    """
    directory, base = os.path.split(path)
    found = []
    for where in (directory or ".", *([olddir] if olddir else [])):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            ours = name.startswith(base) and (where != (directory or ".") or name != base)
            if ours and (compressed or not name.endswith(COMPRESSED)):
                _add(found, os.path.join(where, name))
    found.sort(key=lambda item: item[1].st_mtime_ns)
    return found


def _add(found, path):
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        found.append((path, st))


class Compressed:
    """A compressed copy as a stream with ``read(pos, n)`` and ``rest(pos)``."""

    def __init__(self, path):
        self.fh = OPENERS[os.path.splitext(path)[1]](path, "rb")

    def read(self, pos, n):
        self.fh.seek(pos)
        return self.fh.read(n)

    def rest(self, pos):
        self.fh.seek(pos)
        return self.fh.read()

    def close(self):
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def head_mark(read):
    """The ``[length, hash]`` head of a copy: its first ``lines.HEAD`` bytes."""
    return lines.mark(read(0, lines.HEAD))


def copy_of(read, heads):
    """Whether a copy starts as one of ``heads`` does (a generation already read, or a copy of one)."""
    heads = [head for head in heads if head and head[0]]
    if not heads:
        return False
    data = read(0, max(head[0] for head in heads))
    return any(len(data) >= head[0] and lines.digest(data[: head[0]]) == head[1] for head in heads)
