"""After a restart: carry a file's saved cursor on, whatever happened while the minion was down.

The saved cursor (``FileSource.state()``) names the current generation and the
held ones by identity; each is found again among the siblings by inode. One
rotated away and gone is read from a compressed copy where one holds it, else
counted as a gap.
"""

from saltext_conntrack.logwatch import generations, lines, truncation


def _count(value, default=0):
    """A saved offset or count, or ``default`` when the state file holds something else."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    return value if ok else default


def _time(value, default):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**40
    return float(value) if ok else default


def _cursor(entry):
    try:
        tail = bytes.fromhex(entry.get("tail") or "")[-4096:]
    except (TypeError, ValueError):
        tail = b""
    return {"offset": _count(entry.get("offset")), "tail": tail, "seen": _count(entry.get("seen"))}


def reopen(rotation, gaps, entry, now, chunks, held):
    """Open the generation ``entry`` names again: as held (``held``), or as one just rotated away."""
    ident = lines.saved_ident(entry)
    cursor = _cursor(entry)
    for path, st in generations.siblings(rotation.path):
        if lines.ident(st) != ident:
            continue
        gen = lines.open_gen(path, **cursor)
        if held:
            gen.grown, gen.since = _time(entry.get("grown"), now), _time(entry.get("since"), now)
            rotation.reader.read(gen, chunks)
            rotation.held.append(gen)
        else:
            rotation.hold(gen, now, chunks)
        return
    if not truncation.from_compressed(rotation.path, cursor["offset"], cursor["tail"], chunks):
        gaps.note(cursor["seen"], cursor["offset"], "rotated away while the minion was down and no longer found")


def resume(rotation, gaps, cur, saved, st, now, chunks):
    """Resume from ``saved``; True when ``cur`` (the file at the path now, ``st``) carries on at its offset.

    False: read ``cur`` from its start (it is new since, or was truncated).
    """
    rotation.known = [tuple(ident) for ident in saved.get("known") or []][-generations.KNOWN_MAX :]
    rotation.looked = saved.get("looked")
    for entry in saved.get("held") or []:
        reopen(rotation, gaps, entry, now, chunks, held=True)
    entry = saved.get("cur")
    if not entry:
        return False
    if lines.saved_ident(entry) != lines.ident(st):
        reopen(rotation, gaps, entry, now, chunks, held=False)  # rotated while down: finish and hold the old one
        rotation.unseen(now, chunks)
        return False
    cursor = _cursor(entry)
    offset, tail = cursor["offset"], cursor["tail"]
    if st.st_size >= offset and lines.tail_ok(cur.fd, offset, tail):
        cur.offset, cur.tail, cur.seen = offset, tail, _count(entry.get("seen"), offset)
        return True
    truncation.recover(rotation, gaps, offset, tail, cursor["seen"], chunks)
    rotation.unseen(now, chunks)
    return False
