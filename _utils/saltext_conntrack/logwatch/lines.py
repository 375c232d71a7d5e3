"""Whole lines from a log file's generations, and the cursor of each.

A generation (``Gen``) is one open descriptor of the file with its identity
(device, inode), the offset of the end of the last whole line read, the last
bytes before that offset (to recognise the same content again) and the size
last seen. ``Reader`` reads lines from a generation and counts every move of a
cursor, which is what the beacon's state file is saved on.
"""

import errno
import os
import stat

from saltext_conntrack.logwatch import grammar

TAIL = 64  # bytes kept to recognise the same file content again


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


def ident(st):
    return (st.st_dev, st.st_ino)


def saved_ident(saved):
    return (saved.get("dev"), saved.get("ino"))


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
