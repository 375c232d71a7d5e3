"""Whole lines and the cursor of one generation (``logwatch.lines``)."""

import os

from saltext_conntrack.logwatch import lines
from tests.support.beacon_env import full


def test_whole_lines_only_and_the_cursor_moves(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(full(1) + full(2)[:30])
    gen = lines.open_gen(str(path))
    try:
        reader, chunks = lines.Reader(chunk=16), []
        reader.read(gen, chunks)
        assert b"".join(chunks) == full(1).encode()  # chunks of 16 bytes, lines kept whole
        assert (gen.offset, gen.seen, reader.moved) == (len(full(1)), len(full(1)) + 30, 1)
        assert gen.tail == full(1).encode()[-lines.TAIL :]
        assert lines.tail_ok(gen.fd, gen.offset, gen.tail) and not lines.tail_ok(gen.fd, gen.offset - 1, gen.tail)
        reader.read(gen, [])
        assert reader.moved == 1  # nothing new: the cursor did not move
        finished = []
        reader.read(gen, finished, finish=True)
        assert finished == [full(2)[:30].encode() + b"\n"] and gen.offset == path.stat().st_size
        assert [h[0] for h in lines.hits(chunks + finished)] == [1]  # the cut line is no table-full line
    finally:
        os.close(gen.fd)


def test_limit_and_saved_identity(tmp_path):
    path = tmp_path / "kern.log"
    path.write_text(full(1) * 4)
    gen = lines.open_gen(str(path))
    try:
        chunks = []
        lines.Reader(chunk=1024).read(gen, chunks, limit=len(full(1)) * 2)
        assert len(lines.hits(chunks)) == 2
        saved = gen.to_dict()
        assert lines.saved_ident(saved) == gen.ident == lines.ident(os.stat(path))
        assert saved["win"] == lines.mark(gen.tail) and saved["head"] == lines.mark(gen.tail)
        cursor = lines.saved_cursor(saved)
        assert cursor.tail is None and cursor.held_by(gen.pread, os.fstat(gen.fd).st_size)
        assert not cursor._replace(offset=cursor.offset + 1).held_by(gen.pread)
        assert not cursor._replace(head=lines.mark(b"other")).held_by(gen.pread)
        # The format before windows were hashed: the tail as hex.
        assert lines.saved_cursor({"offset": 5, "tail": "6e66"}).tail == b"nf"
    finally:
        os.close(gen.fd)


def test_a_window_tells_look_alike_lines_apart(tmp_path):
    """Every table-full line ends alike: the window holds enough to include their time stamps."""
    path = tmp_path / "kern.log"
    a = "".join(full(1, stamp=f"2026-11-25T11:00:0{i}.000001+00:00") for i in range(8))
    b = "".join(full(1, stamp=f"2026-11-25T11:01:0{i}.000001+00:00") for i in range(8))
    path.write_text(a)
    gen = lines.open_gen(str(path))
    try:
        lines.Reader(4096).read(gen, [])
        assert gen.tail[-64:] == b.encode()[-64:]  # the 64 bytes kept before could not tell them apart
        path.write_text(b)
        assert not lines.tail_ok(gen.fd, gen.offset, gen.tail)
    finally:
        os.close(gen.fd)


def test_a_saved_cursor_that_is_not_byte_counts_is_refused():
    import pytest

    for bad in ({"offset": -1}, {"offset": True}, {"offset": "12"}, {"offset": 2**63}, {"offset": 4, "seen": 1.5}):
        with pytest.raises(ValueError, match="is not a byte count"):
            lines.saved_cursor(bad)
    assert lines.saved_cursor({"offset": 4}).seen == 4
