"""After copytruncate (``logwatch.truncation``): what counts as lost.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import shutil

from tests.support.beacon_env import full, only_full, seen


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


def test_from_compressed_reads_the_rest_only_where_the_tail_matches(tmp_path):
    import gzip

    from saltext_conntrack.logwatch import truncation

    path = tmp_path / "kern.log"
    data = (full(1) + full(2)).encode()
    with gzip.open(f"{path}.1.gz", "wb") as fh:
        fh.write(data)
    offset = len(full(1))
    chunks = []
    assert truncation.from_compressed(str(path), offset, data[offset - 8 : offset], chunks) is True
    assert chunks == [full(2).encode()]
    assert truncation.from_compressed(str(path), offset, b"not ours", []) is False
    assert truncation.from_compressed(str(path), offset, b"", []) is False  # no tail: any copy would match


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
    truncation.recover(rotation, g, offset, data[offset - 8 : offset], offset, chunks)
    assert b"".join(chunks) == full(2).encode() and g.take() is None
    truncation.recover(rotation, g, 0, b"", 0, chunks)  # offset 0: nothing was read, nothing to recover
    truncation.recover(rotation, g, offset, b"elsewhere", offset + 5, [])
    assert g.take() == {"lost": 1, "lost_bytes": 5, "unverified": 0}
