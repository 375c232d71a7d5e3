"""The copies beside a log file (``logwatch.copies``): plain or compressed, read alike, told apart by content."""

import gzip
import os

from saltext_conntrack.logwatch import copies, lines
from tests.support.beacon_env import full


def test_kinds_and_siblings_oldest_first(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text("")
    for age, name in enumerate(("kern.log.3.zst", "kern.log.2.gz", "kern.log.1")):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (100 + age, 100 + age))
    (tmp_path / "other.log").write_text("x")
    assert [os.path.basename(p) for p, _ in copies.siblings(str(path))] == ["kern.log.1"]
    found = [os.path.basename(p) for p, _ in copies.siblings(str(path), compressed=True)]
    assert found == ["kern.log.3.zst", "kern.log.2.gz", "kern.log.1"]
    assert [copies.kind(name) for name in found] == ["unreadable", "compressed", "plain"]


def test_a_compressed_copy_reads_like_a_file_and_is_known_by_its_head(tmp_path):
    data = (full(1) + full(2)).encode()
    with gzip.open(tmp_path / "kern.log.1.gz", "wb") as fh:
        fh.write(data)
    with copies.Compressed(str(tmp_path / "kern.log.1.gz")) as copy:
        assert copy.read(len(full(1)), 10) == data[len(full(1)) : len(full(1)) + 10]
        assert copy.read(0, 5) == data[:5]  # seeking back starts over
        assert copy.rest(len(full(1))) == full(2).encode()
        assert copies.head_mark(copy.read) == lines.mark(data)
        assert copies.copy_of(copy.read, [None, [0, "x"], lines.mark(full(1).encode())])
        assert not copies.copy_of(copy.read, [lines.mark(full(3).encode())])
        assert not copies.copy_of(copy.read, [])
