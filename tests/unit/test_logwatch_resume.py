"""After a restart (``logwatch.resume``): a saved cursor carried on, or the file read from its start."""

import os

from saltext_conntrack.logwatch import gaps, generations, lines, resume
from tests.support.beacon_env import full


def _rotation(path):
    return generations.Rotation(str(path), lines.Reader(chunk=4096))


def test_same_file_carries_on_at_its_offset(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(full(1))
    first = lines.open_gen(str(path))
    lines.Reader(4096).read(first, [])
    saved = {"cur": first.to_dict()}
    os.close(first.fd)
    with open(path, "a") as fh:
        fh.write(full(2))
    cur = lines.open_gen(str(path))
    rotation, g = _rotation(path), gaps.Gaps(str(path))
    try:
        assert resume.resume(rotation, g, cur, saved, os.fstat(cur.fd), 1.0, []) is True
        assert cur.offset == len(full(1))
        chunks = []
        rotation.reader.read(cur, chunks)
        assert [h[0] for h in lines.hits(chunks)] == [2]
        assert g.take() is None
    finally:
        os.close(cur.fd)
        rotation.close()


def test_truncated_while_down_without_a_copy_is_a_gap_and_reads_from_the_start(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(full(1))
    first = lines.open_gen(str(path))
    lines.Reader(4096).read(first, [])
    saved = {"cur": {**first.to_dict(), "seen": len(full(1)) + 10}}
    os.close(first.fd)
    path.write_text("")
    cur = lines.open_gen(str(path))
    rotation, g = _rotation(path), gaps.Gaps(str(path))
    try:
        assert resume.resume(rotation, g, cur, saved, os.fstat(cur.fd), 1.0, []) is False
        assert g.take() == {"lost": 1, "lost_bytes": 10, "unverified": 0, "unverified_bytes": 0}
    finally:
        os.close(cur.fd)
        rotation.close()


def test_nothing_saved_reads_from_the_start(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(full(1))
    cur = lines.open_gen(str(path))
    try:
        assert resume.resume(_rotation(path), gaps.Gaps(str(path)), cur, {}, os.fstat(cur.fd), 1.0, []) is False
    finally:
        os.close(cur.fd)


def test_a_reused_inode_is_read_from_its_start_and_the_old_rest_from_its_copy(tmp_path):
    """dateext + delaycompress while down: the saved inode now names a new file, the old one is a .gz."""
    import gzip

    path = tmp_path / "kern.log"
    path.write_text(full(1))
    first = lines.open_gen(str(path))
    lines.Reader(4096).read(first, [])
    saved = {"cur": first.to_dict(), "looked": 0.0}
    os.close(first.fd)
    with gzip.open(tmp_path / "kern.log-1.gz", "wb") as fh:
        fh.write((full(1) + full(2)).encode())  # the old file, its unread line, compressed
    with open(path, "w") as fh:  # the same inode, new content (as ext4 hands it on)
        fh.write(full(7) + full(8))
    cur = lines.open_gen(str(path))
    rotation, g = _rotation(path), gaps.Gaps(str(path))
    chunks = []
    try:
        assert resume.resume(rotation, g, cur, saved, os.fstat(cur.fd), 1.0, chunks) is False
        assert [h[0] for h in lines.hits(chunks)] == [2]
        assert g.take() is None
    finally:
        os.close(cur.fd)
        rotation.close()


def test_rotated_out_of_sight_while_down_is_unverified_with_its_bytes(tmp_path):
    """olddir: the saved generation is nowhere beside the file."""
    path = tmp_path / "kern.log"
    path.write_text(full(1))
    first = lines.open_gen(str(path))
    lines.Reader(4096).read(first, [])
    saved = {"cur": {**first.to_dict(), "seen": len(full(1)) + 30}, "looked": 0.0}
    os.close(first.fd)
    os.rename(path, tmp_path / "elsewhere")
    path.write_text(full(3))
    cur = lines.open_gen(str(path))
    rotation, g = _rotation(path), gaps.Gaps(str(path))
    try:
        assert resume.resume(rotation, g, cur, saved, os.fstat(cur.fd), 1.0, []) is False
        assert g.take() == {"lost": 0, "lost_bytes": 0, "unverified": 1, "unverified_bytes": 30}
    finally:
        os.close(cur.fd)
        rotation.close()
