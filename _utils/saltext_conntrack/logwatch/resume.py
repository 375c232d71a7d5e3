"""After a restart: carry a file's saved cursor on, whatever happened while the minion was down.

The saved cursor (``FileSource.state()``) names the current generation and the
held ones by identity and content (``lines.Cursor``): each is found again
among the siblings by inode *and* head and window, so an inode ext4 gave to a
newer file is never taken for it. One rotated away and gone is read from the
newest copy that holds it (plain or compressed), else counted ``unverified``
(it may be in an ``olddir``, deleted, or compressed with zstd or lz4).
"""

import os

from saltext_conntrack.logwatch import generations, lines, truncation


def _time(value, default):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**40
    return float(value) if ok else default


def reopen(rotation, gaps, entry, now, chunks, held):
    """Open the generation ``entry`` names again: as held (``held``), or as one just rotated away."""
    ident = lines.saved_ident(entry)
    cursor = lines.saved_cursor(entry)
    for path, st in generations.siblings(rotation.path, olddir=rotation.olddir):
        if lines.ident(st) != ident:
            continue
        gen = lines.open_gen(path)
        if not cursor.held_by(gen.pread, os.fstat(gen.fd).st_size):
            os.close(gen.fd)  # the inode now names other content
            continue
        lines.take_cursor(gen, cursor)
        if held:
            gen.grown, gen.since = _time(entry.get("grown"), now), _time(entry.get("since"), now)
            rotation.reader.read(gen, chunks)
            rotation.held.append(gen)
        else:
            rotation.hold(gen, now, chunks)
        return
    found, _ = truncation.from_copy(rotation, cursor, chunks)
    if not found:
        gaps.doubt(
            cursor.seen - cursor.offset,
            "rotated away while the minion was down and no copy beside it holds the rest "
            "(moved to an olddir, deleted, or compressed with zstd or lz4)",
        )


def resume(rotation, gaps, cur, saved, st, now, chunks):
    """Resume from ``saved``; True when ``cur`` (the file at the path now, ``st``) carries on at its offset.

    False: read ``cur`` from its start (it is new since, or was truncated).
    """
    rotation.load(saved)
    for entry in saved.get("held") or []:
        reopen(rotation, gaps, entry, now, chunks, held=True)
    entry = saved.get("cur")
    if not entry:
        return False
    cursor = lines.saved_cursor(entry)
    if lines.saved_ident(entry) != lines.ident(st):
        reopen(rotation, gaps, entry, now, chunks, held=False)  # rotated while down: finish and hold the old one
        rotation.unseen(now, chunks)
        return False
    if cursor.held_by(cur.pread, st.st_size):
        lines.take_cursor(cur, cursor)
        return True
    # Truncated in place, or the inode given to a new file: the rest from the copy that holds it.
    truncation.recover(rotation, gaps, cursor, chunks)
    rotation.unseen(now, chunks)
    return False
