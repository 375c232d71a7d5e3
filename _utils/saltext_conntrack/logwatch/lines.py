"""Whole lines from a log file's generations, and the cursor of each.

A generation (``Gen``) is one open descriptor of the file with its identity
(device, inode), the offset of the end of the last whole line read, the last
bytes before that offset (the *window*), a hash of its first bytes (the
*head*) and the size last seen. Device and inode alone do not name content:
ext4 gives a deleted file's inode to the next one, and every rotated copy
holds the same table-full text. A file is taken for the one read only when
its size reaches the offset, its head hashes the same and its window is the
same bytes (``Cursor.held_by``); the window and head are long enough to
hold several lines' time stamps. ``Reader`` reads lines from a generation
and counts every move of a cursor, which is what the beacon's state file is
saved on.
"""

import errno
import hashlib
import os
import stat
from typing import NamedTuple

from saltext_conntrack.logwatch import grammar

TAIL = 1024  # bytes before the cursor kept (hashed in the state file) to recognise the same content again
HEAD = 1024  # bytes from the start hashed: which file (or copy of it) this is


def digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def mark(data):
    """``[length, hash]`` of some bytes: how a head or window is kept."""
    return [len(data), digest(data)]


def head_is(head, read):
    """Whether the first bytes of a file (``read(pos, n)``) hash to ``head``; no head: nothing to tell."""
    return not head or not head[0] or digest(read(0, head[0])) == head[1]


class Cursor(NamedTuple):
    """Where a generation was read to, and what identifies its content: the window as bytes
    (``tail``) or, from a state file, as ``win`` (``[length, hash]``), and the ``head``."""

    offset: int
    tail: bytes | None
    win: list | None
    head: list | None
    seen: int

    @property
    def wlen(self):
        return len(self.tail) if self.tail is not None else int((self.win or [0])[0])

    def window_is(self, data):
        return data == self.tail if self.tail is not None else mark(data) == list(self.win or [0, digest(b"")])

    def held_by(self, read, size=None):
        """Whether a file read by ``read(pos, n)`` (of ``size`` bytes, where known) holds what was read."""
        if (size is not None and size < self.offset) or self.offset < self.wlen:
            return False
        if not head_is(self.head, read):
            return False
        n = self.wlen
        return not n or self.window_is(read(self.offset - n, n))


class Gen:
    """One generation of the file: an open descriptor and how far it was read."""

    __slots__ = ("fd", "ident", "offset", "tail", "head", "seen", "grown", "since")

    def __init__(self, fd, ident, offset=0, tail=b"", seen=0, grown=0.0, since=0.0, head=None):
        self.fd, self.ident, self.offset, self.tail = fd, ident, offset, tail
        self.seen, self.grown, self.since, self.head = seen, grown, since, head

    def cursor(self):
        return Cursor(self.offset, self.tail, None, self.head, self.seen)

    def pread(self, pos, n):
        return os.pread(self.fd, n, pos)

    def to_dict(self):
        return {
            "dev": self.ident[0],
            "ino": self.ident[1],
            "offset": self.offset,
            "win": mark(self.tail),
            "head": self.head,
            "seen": self.seen,
            "grown": self.grown,
            "since": self.since,
        }


def ident(st):
    return (st.st_dev, st.st_ino)


def saved_ident(saved):
    return (saved.get("dev"), saved.get("ino"))


def _pair(value):
    return [int(value[0]), str(value[1])] if isinstance(value, list) and len(value) == 2 else None


def saved_cursor(entry):
    """The ``Cursor`` a state file's entry names (``tail`` as hex: the format before windows were hashed)."""
    tail = bytes.fromhex(entry["tail"]) if isinstance(entry.get("tail"), str) else None
    win = _pair(entry.get("win"))
    if tail is None and win is None:
        tail = b""
    offset = _count(entry.get("offset") or 0, "offset")
    return Cursor(offset, tail, win, _pair(entry.get("head")), _count(entry.get("seen") or offset, "seen"))


def _count(value, what):
    """A saved offset or count; ValueError when the state file holds something else (a corrupt cursor)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"saved {what} {value!r:.40} is not a byte count")
    return value


def take_cursor(gen, cursor):
    """Carry ``cursor`` on in ``gen`` (whose content holds it): the window read back as bytes."""
    n = cursor.wlen
    gen.offset, gen.seen, gen.head = cursor.offset, max(cursor.seen, cursor.offset), cursor.head
    gen.tail = cursor.tail if cursor.tail is not None else os.pread(gen.fd, n, cursor.offset - n)


def open_gen(path, **cursor):
    """A generation of a log file; OSError for anything but a regular file (a FIFO swapped in cannot block)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return Gen(fd, ident(st), **cursor)


def tail_ok(fd, offset, tail):
    """Whether the bytes before ``offset`` are ``tail``: the same content as when it was read."""
    if not tail:
        return True
    try:
        return offset >= len(tail) and os.pread(fd, len(tail), offset - len(tail)) == tail
    except OSError:
        return False


def hits(chunks):
    """The grammar's hits in chunks of whole lines, in order."""
    found = []
    for chunk in chunks:
        found.extend(grammar.scan_text(chunk))
    return found


class Reader:
    """Reads whole lines from generations, ``chunk`` bytes per read; ``moved`` counts cursor moves."""

    def __init__(self, chunk):
        self.chunk = chunk
        self.moved = 0

    def read(self, gen, chunks, limit=None, finish=False):
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
            if not gen.head or gen.head[0] < min(gen.offset, HEAD):
                gen.head = mark(os.pread(gen.fd, min(gen.offset, HEAD), 0))
