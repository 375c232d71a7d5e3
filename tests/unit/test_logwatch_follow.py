"""A syslog file followed (``logwatch.follow.FileSource``): rotation, truncation, restarts, through the beacon.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import bz2
import gzip
import lzma
import os
import shutil

import pytest

from saltext_conntrack.logwatch import follow, generations
from tests.support import beacon_env
from tests.support.beacon_env import counted, full, only_full, seen


def test_rename_rotation_finishes_the_old_file(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    assert seen(only_full(env.run({"min_interval": 0}))) == {1: 1}
    env.append(full(2))  # written after our last read ...
    os.rename(env.log, f"{env.log}.1")  # ... then logrotate renames ...
    env.log.write_text(full(3))  # ... and syslog starts a new file
    env.append(full(4), f"{env.log}.1")  # a late write to the old descriptor
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1, 3: 1, 4: 1}
    env.append(full(5))
    assert seen(only_full(env.run({"min_interval": 0}))) == {5: 1}


def test_copytruncate_reads_the_rest_from_the_copy(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.append(full(2) + full(3))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    env.append(full(4))
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1, 3: 1, 4: 1}
    assert env.run({"min_interval": 0}) == []  # nothing read twice


def test_truncated_and_regrown_past_the_offset(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1) * 3)
    env.run({"min_interval": 0})
    # Truncated in place with no copy, then more written than was there before.
    env.log.write_text(full(7) * 5)
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {7: 5}
    # Everything seen had been read: whether the truncation took anything unread cannot be known.
    assert (event["lost"], event["unverified"]) == (0, 1)


def test_partial_lines_wait_for_their_end(env):
    env.log.write_text("")
    env.run()
    text = full(1)
    env.append(text[:30])
    assert env.run() == []
    env.append(text[30:])
    assert seen(only_full(env.run())) == {1: 1}


def test_restart_neither_loses_nor_repeats(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))  # written while the minion was down
    assert seen(only_full(env.run({"min_interval": 0}))) == {2: 1}
    saved = beacon_env.saved(env.cachedir / "conntrack" / "beacon-conntrack.json")["source"]
    assert saved["kind"] == "file" and saved["cur"]["offset"] == env.log.stat().st_size


def test_rotation_while_down_finds_the_old_inode(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))
    os.rename(env.log, f"{env.log}-20261125")
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and event["lost"] == 0


def compress(path, ext):
    """What logrotate's compress does: a compressed copy beside it, the original removed."""
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[ext]
    with open(path, "rb") as src, opener(f"{path}.{ext}", "wb") as dst:
        dst.write(src.read())
    os.unlink(path)


@pytest.mark.parametrize("ext", ["gz", "bz2", "xz"])
def test_compressed_rotation_while_down_is_read(env, ext):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))  # unread when the minion went down
    os.rename(env.log, f"{env.log}.1")
    compress(f"{env.log}.1", ext)
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and (event["lost"], event["unverified"]) == (0, 0)


def test_rotation_while_down_deleted_is_unverified(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.restart()
    env.append(full(2))
    os.rename(env.log, f"{env.log}.1")
    os.unlink(f"{env.log}.1")  # rotate 0: gone, and the beacon never saw what was written last
    env.log.write_text(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {3: 1} and (event["lost"], event["unverified"]) == (0, 1)


def test_copytruncate_into_a_compressed_copy_is_read(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append(full(1))
    env.run({"min_interval": 0})
    env.append(full(2))
    shutil.copy(env.log, f"{env.log}.1")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    compress(f"{env.log}.1", "gz")
    env.append(full(3))
    event = only_full(env.run({"min_interval": 0}))
    assert seen(event) == {2: 1, 3: 1} and (event["lost"], event["unverified"]) == (0, 0)


def test_max_read_spreads_a_backlog_over_runs(env):
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append("".join(full(i) for i in range(100)))
    size = env.log.stat().st_size
    total = {}
    runs = 0
    while runs < 10:
        runs += 1
        for event in env.run({"min_interval": 0}, {"max_read": 4096}):
            total.update(seen(event))
        if len(total) == 100:
            break
    assert total == {i: 1 for i in range(100)}
    assert runs >= size // 4096


@pytest.mark.parametrize("chunk", [7, 64, 100, 4096])
def test_finishing_a_rotated_file_keeps_lines_across_read_chunks(env, monkeypatch, chunk):
    """Lines straddling the reads that finish an old file (1 MiB each in real life) stay whole."""
    monkeypatch.setattr(follow.FileSource, "chunk", chunk)
    env.log.write_text("")
    env.run({"min_interval": 0})
    env.append("".join(full(i) for i in range(40)))  # ~120-byte lines: every chunk size cuts some
    os.rename(env.log, f"{env.log}.1")
    env.log.write_text(full(99))
    env.append(full(40)[:-1], f"{env.log}.1")  # the old file ends without a newline: still a line
    assert seen(only_full(env.run({"min_interval": 0}))) == {**{i: 1 for i in range(40)}, 99: 1}
    # The unfinished last line is read when the held file is let go (quiet, and the new file has content).
    assert seen(only_full(env.run({"min_interval": 0}, tick=generations.QUIET + 1))) == {40: 1}
    # The copy after copytruncate is finished the same way.
    env.append("".join(full(i) for i in range(100, 140)))
    shutil.copy(env.log, f"{env.log}.2")
    with open(env.log, "r+") as fh:
        fh.truncate(0)
    assert seen(only_full(env.run({"min_interval": 0}))) == {i: 1 for i in range(100, 140)}


def test_missing_file_that_appears_is_read_from_its_start(env):
    env.run()
    assert env.run() == []
    env.log.write_text(full(1))
    assert seen(only_full(env.run())) == {1: 1}


def test_a_file_that_appears_and_is_rotated_before_the_next_run_is_read(env):
    """Seen on the real kernel: syslog creates the file with its first line just as logrotate renames it."""
    conf = {"min_interval": 0}
    old = f"{env.log}.1"
    with open(old, "w") as fh:
        fh.write(full(0))  # a rotated copy from before: the past
    env.run(conf)  # no file yet
    env.log.write_text(full(1))
    os.rename(env.log, f"{env.log}.0")
    env.log.write_text(full(2))
    events = [*env.run(conf), *env.run(conf, tick=generations.QUIET + 1)]
    assert counted(events) == {1: 1, 2: 1}


def test_the_saved_cursor_knows_the_heads_read_not_only_inodes(env):
    """A file first seen missing, then read: its inode is saved with the head read, so an inode
    ext4 later gives to another generation is not taken for it after a restart."""
    env.run({"min_interval": 0})  # no file yet
    env.log.write_text(full(1))
    env.run({"min_interval": 0})
    saved = beacon_env.saved(env.cachedir / "conntrack" / "beacon-conntrack.json")["source"]
    ident = [saved["cur"]["dev"], saved["cur"]["ino"]]
    assert [entry[2:] for entry in saved["known"] if entry[:2] == ident] == [saved["cur"]["head"]]
