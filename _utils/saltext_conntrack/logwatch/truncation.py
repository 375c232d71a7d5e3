"""After ``copytruncate``: the unread rest of a file, read from the copy that holds it.

The copy is the sibling whose bytes before the saved offset are the ones read
(the cursor's tail); a compressed copy (logrotate's ``compress`` without
``delaycompress``) counts only where the tail identifies the content.
"""

import bz2
import gzip
import logging
import lzma
import os

from saltext_conntrack.logwatch import generations, lines

log = logging.getLogger(__name__)

# Compressed copies Python can read.
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def from_copy(rotation, offset, tail, chunks):
    """Read the rest from a plain copy whose bytes before ``offset`` are ours; True when found."""
    for path, st in reversed(generations.siblings(rotation.path)):
        if st.st_size < offset or lines.ident(st) in rotation.known:
            continue
        try:
            gen = lines.open_gen(path, offset=offset, tail=tail)
        except OSError:
            continue
        try:
            if lines.tail_ok(gen.fd, offset, tail):
                log.debug("conntrack beacon: %s was truncated; reading the rest from %s", rotation.path, path)
                rotation.know(gen.ident)
                rotation.reader.read(gen, chunks, finish=True)
                return True
        finally:
            os.close(gen.fd)
    return False


def from_compressed(path, offset, tail, chunks):
    """The unread rest from a compressed copy whose bytes before ``offset`` are ours; True when found.

    Only where the tail identifies the content: without one, any copy would match.
    """
    if not tail or offset < len(tail):
        return False
    directory, base = os.path.split(path)
    try:
        names = sorted(os.listdir(directory or "."), reverse=True)
    except OSError:
        return False
    for name in names:
        opener = OPENERS.get(os.path.splitext(name)[1])
        if opener is None or not name.startswith(base):
            continue
        copy = os.path.join(directory, name)
        if os.path.islink(copy):
            continue  # a rotated copy is a file; a link may lead out of the root
        try:
            with opener(copy, "rb") as fh:
                fh.seek(offset - len(tail))
                if fh.read(len(tail)) != tail:
                    continue
                rest = fh.read()
        except (OSError, EOFError, ValueError, lzma.LZMAError):
            continue
        log.debug("conntrack beacon: %s: reading its unread rest from the compressed copy %s", path, copy)
        if rest:
            chunks.append(rest if rest.endswith(b"\n") else rest + b"\n")
        return True
    return False


def recover(rotation, gaps, offset, tail, seen, chunks):
    """The file was truncated at ``offset``: its rest from a copy, else counted as a gap."""
    if offset == 0:
        return
    if from_copy(rotation, offset, tail, chunks) or from_compressed(rotation.path, offset, tail, chunks):
        return
    gaps.note(seen, offset, "truncated, and no copy holds its unread rest")
