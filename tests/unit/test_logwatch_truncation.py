"""After copytruncate (``logwatch.truncation``): what counts as lost.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import os
import shutil

import pytest

from tests.support.beacon_env import counted, full, only_full, seen


def test_truncation_with_unread_bytes_is_lost_with_their_number(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) + full(2)[:50])  # a line still being written: seen, not yet read
    env.run({"min_interval": 0})
    env.log.write_text("")  # truncated, no copy anywhere
    env.append(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {3: 1}
    assert (event["lost"], event["lost_bytes"], event["unverified"]) == (1, 50, 0)


def test_copytruncate_with_nothing_unread_is_not_lost(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(2))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1} and (event["lost"], event["unverified"]) == (0, 0)


def _cursor(data, offset, seen=None):
    from saltext_conntrack.logwatch import lines

    return lines.Cursor(
        offset,
        data[max(0, offset - lines.TAIL) : offset],
        None,
        lines.mark(data[: min(offset, lines.HEAD)]),
        seen or offset,
    )


def _stamped(ns, second):
    return full(ns, stamp=f"2026-11-25T11:00:{second:02d}.000001+00:00")


@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz"])
def test_the_newest_compressed_copy_that_holds_the_cursor_is_read(tmp_path, ext):
    """Every copy ends in the same table-full text: only head and window tell which one is ours."""
    from saltext_conntrack.logwatch import copies, generations, lines, truncation

    path = tmp_path / "kern.log"
    path.write_text("")
    opener = copies.OPENERS[ext]
    ours = (_stamped(1, 1) + _stamped(2, 2)).encode()
    older = (_stamped(1, 40) + _stamped(5, 41) + _stamped(6, 42)).encode()
    for name, data, age in (("kern.log.1", ours, 0), ("kern.log.9", older, 100), ("kern.log.10", older, 200)):
        with opener(tmp_path / f"{name}{ext}", "wb") as fh:
            fh.write(data)
        os.utime(tmp_path / f"{name}{ext}", (1000 - age, 1000 - age))
    offset = len(_stamped(1, 1))
    rotation = generations.Rotation(str(path), lines.Reader(4096))
    chunks = []
    assert truncation.from_copy(rotation, _cursor(ours, offset), chunks) == (True, 0)
    assert [h[0] for h in lines.hits(chunks)] == [2]
    other = _cursor(b"not ours at all\n" * 4, offset)
    assert truncation.from_copy(rotation, other, []) == (False, 0)


def test_an_unreadable_recent_copy_makes_the_rest_unverified(tmp_path):
    from saltext_conntrack.logwatch import gaps, generations, lines, truncation

    path = tmp_path / "kern.log"
    path.write_text("")
    (tmp_path / "kern.log.1.zst").write_bytes(b"(zstd)")
    data = (full(1) + full(2)).encode()
    rotation = generations.Rotation(str(path), lines.Reader(4096))
    rotation.looked = 0.0
    g = gaps.Gaps(str(path))
    truncation.recover(rotation, g, _cursor(data, len(full(1)), seen=len(data)), [])
    assert g.take() == {"lost": 0, "lost_bytes": 0, "unverified": 1, "unverified_bytes": len(full(2))}


def test_recover_from_a_plain_copy_else_a_gap(tmp_path):
    from saltext_conntrack.logwatch import gaps, generations, lines, truncation

    path = tmp_path / "kern.log"
    data = (full(1) + full(2)).encode()
    (tmp_path / "kern.log.1").write_bytes(data)
    path.write_text("")
    offset = len(full(1))
    rotation = generations.Rotation(str(path), lines.Reader(4096))
    g = gaps.Gaps(str(path))
    chunks = []
    truncation.recover(rotation, g, _cursor(data, offset), chunks)
    assert b"".join(chunks) == full(2).encode() and g.take() is None
    truncation.recover(rotation, g, lines.Cursor(0, b"", None, None, 0), chunks)  # offset 0: nothing to recover
    truncation.recover(rotation, g, lines.Cursor(offset, b"elsewhere", None, None, offset + 5), [])
    assert g.take() == {"lost": 1, "lost_bytes": 5, "unverified": 0, "unverified_bytes": 0}


def test_copytruncate_at_offset_zero_reads_the_copy(env):
    """A file first seen empty, copied and truncated before anything of it was read."""
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) + full(2))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(3))
    assert seen(only_full(env.run({"min_interval": 0}))) == {1: 1, 2: 1, 3: 1}
    env.append(full(4))
    assert seen(only_full(env.run({"min_interval": 0}))) == {4: 1}


def test_copytruncate_at_offset_zero_seen_empty_in_between(env):
    """Truncated to empty, a run sees it empty, then it grows: the copy is still found."""
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    events = env.run({"min_interval": 0}, tick=30)
    env.append(full(2))
    events += env.run({"min_interval": 0}, tick=30)
    assert counted(events) == {1: 1, 2: 1}


def test_copytruncate_with_compress_over_generations_counts_each_line_once(env):
    """logrotate copytruncate + compress: copies .1.gz, .2.gz, ... all ending in look-alike lines."""
    import gzip

    events = []
    env.log.write_text("")
    env.run({"min_interval": 0})
    for gen in range(4):
        env.append(_stamped(10 * gen + 1, gen) + _stamped(10 * gen + 2, gen))
        events += env.run({"min_interval": 0})
        env.append(_stamped(10 * gen + 3, gen))  # unread when logrotate copies
        for n in range(gen, 0, -1):
            os.rename(tmp := env.log.parent / f"kern.log.{n}.gz", env.log.parent / f"kern.log.{n + 1}.gz")
            del tmp
        with open(env.log, "rb") as src, gzip.open(f"{env.log}.1.gz", "wb") as dst:
            dst.write(src.read())
        with open(env.log, "r+") as fh:
            fh.truncate(0)
        env.append(_stamped(10 * gen + 4, gen))
        events += env.run({"min_interval": 0})
    want = {10 * g + i: 1 for g in range(4) for i in (1, 2, 3, 4)}
    assert counted(events) == want
