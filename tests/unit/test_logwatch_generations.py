"""A log file's rotated generations (``logwatch.generations``): followed until quiet, held files bounded, links never read.

Moved from tests/unit/test_beacon_parsing.py (its sections); ``env`` is
``tests.support.beacon_env.Env`` (the beacon file loaded with stand-in dunders).
"""

import os

from saltext_conntrack.logwatch import generations, lines
from tests.support.beacon_env import counted, full, only_full, seen


def test_a_renamed_file_is_followed_until_quiet(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    old = f"{env.log}.1"
    os.rename(env.log, old)  # logrotate create, the HUP not yet sent: the writer stays on the old file
    assert env.run(conf) == []
    env.append(full(1), old)
    env.log.write_text("")
    assert seen(only_full(env.run(conf, tick=3))) == {1: 1}
    env.append(full(2), old)  # 6 s after the rotation, still the old file
    assert seen(only_full(env.run(conf, tick=3))) == {2: 1}
    env.run(conf, tick=generations.QUIET + 1)  # quiet, but the new file is still empty: held on
    env.append(full(3), old)
    env.append(full(4))
    assert counted([*env.run(conf), *env.run(conf, tick=generations.QUIET + 1)]) == {3: 1, 4: 1}
    source = env.mod.__context__["conntrack.beacon.conntrack"].source
    assert source.held == []  # let go: quiet and the new file has content
    env.append(full(5), old)  # too late: nobody writes a file 10 s after its HUP
    env.append(full(6))
    assert counted([*env.run(conf), *env.run(conf, tick=60)]) == {6: 1}


def test_held_files_are_bounded(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    for i in range(generations.HELD_MAX + 3):
        os.rename(env.log, f"{env.log}.{i}")
        env.append(full(i), f"{env.log}.{i}")
        env.log.write_text("")
        env.run(conf)
    source = env.mod.__context__["conntrack.beacon.conntrack"].source
    assert len(source.held) == generations.HELD_MAX
    env.run(conf, tick=generations.HOLD_MAX + 1)
    assert source.held == []


def test_over_the_bound_the_quietest_held_file_goes_first(env):
    """A writer that missed its HUPs keeps writing a file renamed many times: that one stays held."""
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    written = f"{env.log}.written"
    os.rename(env.log, written)  # the file the writer still has open
    env.log.write_text("")
    env.run(conf)
    for i in range(generations.HELD_MAX + 2):
        env.append(full(100 + i), written)  # it keeps growing ...
        os.rename(env.log, f"{env.log}.{i}")  # ... while empty new files are rotated away
        env.log.write_text("")
        env.run(conf, tick=1)
    env.append(full(200), written)
    events = [*env.run(conf, tick=1)]
    assert counted(events) == {200: 1}


def test_generations_rotated_between_two_runs_are_read_once(env):
    conf = {"min_interval": 0}
    env.log.write_text("")
    env.run(conf)
    env.append(full(1))
    for gen in range(3):  # three rotations before the next run; each file had lines
        for name in sorted(os.listdir(env.log.parent), reverse=True):
            if name.startswith("kern.log."):
                n = int(name.rsplit(".", 1)[1])
                os.rename(env.log.parent / name, env.log.parent / f"kern.log.{n + 1}")
        os.rename(env.log, f"{env.log}.1")
        env.log.write_text(full(10 + gen))
    events = [*env.run(conf), *env.run(conf, tick=generations.QUIET + 1), *env.run(conf, tick=1)]
    assert counted(events) == {1: 1, 10: 1, 11: 1, 12: 1}


def test_rotated_links_out_of_the_root_are_never_read(tmp_path):
    """A sibling that is a symlink (here to a file outside the log directory) is not a rotated copy."""
    from saltext_conntrack.logwatch import truncation

    outside = tmp_path / "outside.log"
    outside.write_text("nf_conntrack: nf_conntrack: table full, dropping packet\n" * 3)
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "kern.log").write_text("")
    (logs / "kern.log.1").symlink_to(outside)
    (logs / "kern.log.2.gz").symlink_to(outside)
    path = str(logs / "kern.log")
    assert [sibling for sibling, _ in generations.siblings(path, compressed=True)] == []
    rotation = generations.Rotation(path, lines.Reader(4096))
    cursor = lines.Cursor(10, b"x" * 5, None, None, 10)
    assert truncation.from_copy(rotation, cursor, []) == (False, 0)


def test_a_reused_inode_is_not_a_known_generation(tmp_path):
    """ext4 gives a deleted file's inode to the next one: the inode alone is not the content."""
    path = tmp_path / "kern.log"
    path.write_text("")
    sibling = tmp_path / "kern.log-2"
    sibling.write_text(full(2))
    rotation = generations.Rotation(str(path), lines.Reader(4096))
    st = sibling.stat()
    rotation.know(lines.ident(st), lines.mark(full(1).encode()))  # what was read of that inode
    rotation.looked = st.st_mtime
    chunks = []
    rotation.unseen(st.st_mtime, chunks)
    try:
        assert [h[0] for h in lines.hits(chunks)] == [2]
    finally:
        rotation.close()


def test_a_compressed_copy_of_a_generation_read_is_not_new(tmp_path):
    import gzip

    path = tmp_path / "kern.log"
    path.write_text("")
    with gzip.open(tmp_path / "kern.log.1.gz", "wb") as fh:
        fh.write((full(1) + full(2)).encode())
    with gzip.open(tmp_path / "kern.log.2.gz", "wb") as fh:
        fh.write(full(3).encode())
    rotation = generations.Rotation(str(path), lines.Reader(4096))
    rotation.know((1, 1), lines.mark(full(1).encode()))  # a generation read, its first line the copy's
    rotation.looked = (tmp_path / "kern.log.1.gz").stat().st_mtime
    chunks = []
    rotation.unseen(rotation.looked, chunks)
    assert [h[0] for h in lines.hits(chunks)] == [3]
    rotation.unseen(rotation.looked, chunks)  # both known now
    assert [h[0] for h in lines.hits(chunks)] == [3]


def test_olddir_copies_are_found_where_logrotate_moved_them(env, tmp_path):
    """logrotate olddir: a generation rotated away while the minion was down is read from there."""
    old = env.log.parent / "old"
    old.mkdir()
    conf = ({"min_interval": 0}, {"olddir": "/var/log/old"})
    env.log.write_text("")
    env.run(*conf)
    env.append(full(1))
    assert seen(only_full(env.run(*conf))) == {1: 1}
    env.restart()
    env.append(full(2))  # unread when the minion stopped
    os.rename(env.log, old / "kern.log.1")
    env.log.write_text(full(3))
    os.rename(env.log, old / "kern.log.2")  # a whole generation while down
    env.log.write_text(full(4))
    events = [*env.run(*conf), *env.run(*conf, tick=generations.QUIET + 1)]
    assert counted(events) == {2: 1, 3: 1, 4: 1}
    assert all(e["unverified"] == 0 for e in events if e["tag"] == "table_full")
