"""After ``copytruncate``: the unread rest of a file, read from the copy that holds it.

The copy is the newest sibling, plain or compressed (logrotate's
``compress`` without ``delaycompress``), that holds what was read: at least
the offset's bytes, the same head and the same window before the offset
(``lines.Cursor.held_by``). Every copy holds the same table-full text, so a
short tail alone would take an older copy for it and count its lines again.
Where no copy holds it and an unreadable one (zstd, lz4) is recent, that
one piece is ``unverified``; with no copy at all the unread bytes are lost.
"""

import logging
import os

from saltext_conntrack.logwatch import copies, generations, lines

log = logging.getLogger(__name__)


def _plain(rotation, path, st, cursor, chunks):
    if st.st_size < cursor.offset:
        return False
    gen = lines.open_gen(path)
    try:
        if not cursor.held_by(gen.pread, os.fstat(gen.fd).st_size):
            return False
        lines.take_cursor(gen, cursor)
        rotation.reader.read(gen, chunks, finish=True)
        rotation.know(gen.ident, copies.head_mark(gen.pread))
    finally:
        os.close(gen.fd)
    return True


def _compressed(rotation, path, st, cursor, chunks):
    with copies.Compressed(path) as copy:
        if not cursor.held_by(copy.read):
            return False
        rest = copy.rest(cursor.offset)
        rotation.know(lines.ident(st), copies.head_mark(copy.read))
    if rest:
        chunks.append(rest if rest.endswith(b"\n") else rest + b"\n")
    return True


def from_copy(rotation, cursor, chunks):
    """Read the rest from the newest copy that holds ``cursor``; ``(found, unreadable recent copies)``."""
    unreadable = 0
    since = (rotation.looked or 0) - generations.SLACK
    for path, st in reversed(copies.siblings(rotation.path, compressed=True, olddir=rotation.olddir)):
        kind = copies.kind(path)
        if kind == "unreadable":
            unreadable += st.st_mtime >= since
            continue
        try:
            found = (_plain if kind == "plain" else _compressed)(rotation, path, st, cursor, chunks)
        except copies.ERRORS as err:
            log.debug("conntrack beacon: %s: cannot read %s: %s", rotation.path, path, err)
            continue
        if found:
            log.debug("conntrack beacon: %s: reading its unread rest from %s", rotation.path, path)
            return True, 0
    return False, unreadable


def recover(rotation, gaps, cursor, chunks):
    """The file was truncated at ``cursor.offset``: its rest from a copy, else counted as a gap."""
    if cursor.offset == 0:
        return  # nothing was read: a copy is new content, read whole by ``Rotation.unseen``
    found, unreadable = from_copy(rotation, cursor, chunks)
    if found:
        return
    if unreadable:
        gaps.doubt(cursor.seen - cursor.offset, "truncated, and its copy may be one Python cannot decompress")
    else:
        gaps.note(cursor.seen, cursor.offset, "truncated, and no copy holds its unread rest")
