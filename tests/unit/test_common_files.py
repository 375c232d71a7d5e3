"""saltext_conntrack.common.files: the one atomic writer, and reading what it wrote."""

import os
import stat

import pytest
from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "root"
    (top / "etc/sysctl.d").mkdir(parents=True)
    return os.path.realpath(top)


def test_read_text_missing_file_is_empty(root):
    assert files.read_text(os.path.join(root, "etc/none.conf")) == ("", False)


def test_read_text_keeps_line_endings(root):
    path = os.path.join(root, "etc/a.conf")
    with open(path, "wb") as fh:
        fh.write(b"a = 1\r\nb = 2")
    assert files.read_text(path) == ("a = 1\r\nb = 2", True)


@pytest.mark.parametrize("make", ["directory", "binary"])
def test_read_text_unreadable_is_an_error_naming_the_file(root, make):
    path = os.path.join(root, "etc/bad.conf")
    if make == "directory":
        os.mkdir(path)
    else:
        with open(path, "wb") as fh:
            fh.write(b"\xff\xfe\x00")
    with pytest.raises(CommandExecutionError, match=f"^cannot read {path}: "):
        files.read_text(path)


def test_new_file_gets_the_mode_and_the_text(root):
    joined = os.path.join(root, "etc/modprobe.d/conntrack.conf")
    real = files.atomic_write(root, joined, "options nf_conntrack hashsize=1\r\n", mode=0o600)
    assert real == joined
    with open(real, "rb") as fh:
        assert fh.read() == b"options nf_conntrack hashsize=1\r\n"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    assert sorted(os.listdir(os.path.dirname(real))) == ["conntrack.conf"]


def test_new_file_default_mode_ignores_the_umask(root):
    old = os.umask(0o077)
    try:
        real = files.atomic_write(root, os.path.join(root, "etc/sysctl.d/90.conf"), "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o644


def test_existing_file_keeps_its_mode(root):
    joined = os.path.join(root, "etc/sysctl.d/90.conf")
    with open(joined, "w", encoding="utf-8") as fh:
        fh.write("old\n")
    os.chmod(joined, 0o640)
    files.atomic_write(root, joined, "new\n", mode=0o644)
    assert stat.S_IMODE(os.stat(joined).st_mode) == 0o640
    with open(joined, encoding="utf-8") as fh:
        assert fh.read() == "new\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file another owner")
def test_existing_file_keeps_its_owner(root):
    joined = os.path.join(root, "etc/sysctl.d/90.conf")
    with open(joined, "w", encoding="utf-8") as fh:
        fh.write("old\n")
    os.chown(joined, 1234, 5678)
    files.atomic_write(root, joined, "new\n")
    st = os.stat(joined)
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_replaces_by_rename_so_a_reader_sees_old_or_new_never_half(root):
    joined = os.path.join(root, "etc/sysctl.d/90.conf")
    with open(joined, "w", encoding="utf-8") as fh:
        fh.write("old\n")
    before = os.stat(joined).st_ino
    with open(joined, encoding="utf-8") as reader:
        files.atomic_write(root, joined, "new\n")
        assert reader.read() == "old\n"
    assert os.stat(joined).st_ino != before


def test_fsyncs_the_file_before_the_rename_and_the_directory_after(root, monkeypatch):
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def rename(src, dst, **dir_fds):
        events.append(("rename", os.path.basename(src).startswith(".90.conf."), dst))
        real_rename(src, dst, **dir_fds)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    joined = os.path.join(root, "etc/sysctl.d/90.conf")
    files.atomic_write(root, joined, "x\n")
    assert events == [("fsync", "file"), ("rename", True, "90.conf"), ("fsync", "dir")]  # renameat in the dir fd


def test_a_symlink_stays_a_symlink_and_its_target_is_written(root):
    target = os.path.join(root, "etc/sysctl.conf")
    with open(target, "w", encoding="utf-8") as fh:
        fh.write("old\n")
    link = os.path.join(root, "etc/sysctl.d/99-sysctl.conf")
    os.symlink("../sysctl.conf", link)
    assert files.atomic_write(root, link, "new\n") == target
    assert os.readlink(link) == "../sysctl.conf"
    with open(target, encoding="utf-8") as fh:
        assert fh.read() == "new\n"


def test_a_link_out_of_the_root_is_refused_and_nothing_is_written(root, tmp_path):
    outside = tmp_path / "outside.conf"
    outside.write_text("theirs\n")
    link = os.path.join(root, "etc/sysctl.d/90.conf")
    os.symlink(outside, link)
    with pytest.raises(CommandExecutionError, match="outside .* \\(conntrack.root\\): refused"):
        files.atomic_write(root, link, "ours\n")
    assert outside.read_text() == "theirs\n"
    assert sorted(os.listdir(os.path.dirname(link))) == ["90.conf"]
    assert sorted(os.listdir(tmp_path)) == ["outside.conf", "root"]


def test_a_failed_rename_leaves_no_temp_file(root):
    target = os.path.join(root, "etc/sysctl.d/90.conf")
    os.mkdir(target)
    with pytest.raises(CommandExecutionError, match=f"^cannot write {target}: "):
        files.atomic_write(root, target, "x\n")
    assert sorted(os.listdir(os.path.dirname(target))) == ["90.conf"]
    assert os.path.isdir(target)


@pytest.mark.parametrize("make", ["fifo", "socket"])
def test_read_refuses_a_fifo_or_socket_without_blocking(root, make):
    """Class: files that are not regular. O_NONBLOCK then fstat: refused before a byte is read."""
    import socket

    path = os.path.join(root, "etc/sysctl.d/90.conf")
    if make == "fifo":
        os.mkfifo(path)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    with pytest.raises(CommandExecutionError, match="not a regular file"):
        files.read_text(path)
    assert files.read_or_none(path) is None


def test_read_refuses_a_device_and_a_file_over_the_limit(root):
    with pytest.raises(CommandExecutionError, match="it is a character device, not a regular file"):
        files.read_bytes("/dev/zero", follow=True)
    path = os.path.join(root, "etc/big.conf")
    with open(path, "wb") as fh:
        fh.write(b"x" * 101)
    with pytest.raises(CommandExecutionError, match="larger than 100 bytes"):
        files.read_bytes(path, limit=100)
    assert files.read_bytes(path, limit=101) == b"x" * 101


def test_a_fifo_target_is_refused_not_replaced(root):
    fifo = os.path.join(root, "etc/sysctl.d/90.conf")
    os.mkfifo(fifo)
    with pytest.raises(CommandExecutionError, match="it is a FIFO, not a regular file"):
        files.atomic_write(root, fifo, "x\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(os.path.dirname(fifo)) == ["90.conf"]


def test_a_planted_link_to_a_host_file_is_refused_and_its_target_kept(tmp_path):
    """The battery's case: with conntrack.root "/" a .prom link to a host file is "contained"."""
    victim = tmp_path / "shadow"
    victim.write_text("root:x:\n")
    textdir = tmp_path / "node-exporter"
    textdir.mkdir()
    link = textdir / "conntrack.prom"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    with pytest.raises(CommandExecutionError, match="owned by uid 65534, not by root: refused"):
        files.atomic_write("/", str(link), "metric 1\n")
    assert victim.read_text() == "root:x:\n" and link.is_symlink()


def test_a_directory_swapped_for_a_link_after_the_plan_is_not_walked_through(root, tmp_path):
    """openat with O_NOFOLLOW from the root: a link put in place of a directory stops the write."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    fd = files._open_dir(root, os.path.join(root, "etc/sysctl.d"))
    os.close(fd)
    os.rename(os.path.join(root, "etc/sysctl.d"), os.path.join(root, "etc/old.d"))
    os.symlink(outside, os.path.join(root, "etc/sysctl.d"))
    with pytest.raises(OSError):
        files._open_dir(root, os.path.join(root, "etc/sysctl.d"))
    assert os.listdir(outside) == []


@pytest.mark.parametrize(
    "text",
    [b"{not json", b"[" * 100000 + b"]" * 100000, b'{"a": 1}', b"\xff\xfe", b"1" * 5000],
    ids=["garbled", "deep", "wrong-shape", "not-utf8", "huge-number"],
)
def test_load_own_sets_a_corrupt_file_aside_and_never_raises(tmp_path, text, caplog):
    """Class: the extension's own files. Renamed aside with a warning; the caller rebuilds."""
    path = tmp_path / "state.json"
    path.write_bytes(text)

    def check(data):
        return data["wanted"]

    assert files.load_own(str(path), check, "test state") is None
    assert not path.exists()
    assert [p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir()] == [True]
    assert "test state" in caplog.text and "set aside" in caplog.text


def test_load_own_sets_aside_a_fifo_without_blocking(tmp_path):
    path = tmp_path / "state.json"
    os.mkfifo(path)
    assert files.load_own(str(path), dict, "test state") is None
    assert not path.exists()


# -- SlotFile: the beacon's state, rewritten in place ---------------------------------


def slot_file(root, name="beacon-a.json"):
    directory = os.path.join(root, "cache", "conntrack")
    return files.SlotFile(directory, os.path.join(directory, name))


def test_slot_file_saves_in_place_and_loads_the_newest(root, monkeypatch):
    state = slot_file(root)
    state.save('{"n": 1}')
    ino = os.stat(state.path).st_ino
    renames = []
    monkeypatch.setattr(os, "rename", lambda *a, **k: renames.append(a))
    monkeypatch.setattr(os, "fsync", lambda fd: renames.append(("fsync", fd)))
    for n in range(2, 6):
        state.save(f'{{"n": {n}}}')
        with open(state.path, "rb") as fh:
            assert files.newest_text(fh.read()) == f'{{"n": {n}}}'
    assert os.stat(state.path).st_ino == ino and renames == []  # one pwrite a save: no rename, no fsync
    assert files.load_own(state.path, lambda d: d, "state") == {"n": 5}
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o600
    state.close()


def test_slot_file_a_torn_slot_leaves_the_one_before(root):
    state = slot_file(root)
    for n in (1, 2, 3):
        state.save(f'{{"n": {n}}}')
    with open(state.path, "rb") as fh:
        data = bytearray(fh.read())
    half = len(data) // 2
    newest = 0 if data.startswith(b"conntrack-slot 3 ") else half
    data[newest + 30] ^= 0xFF  # the write of seq 3 cut short, in the middle of its slot
    assert files.newest_text(bytes(data)) == '{"n": 2}'
    older = (newest + half) % len(data)
    torn_head = bytearray(data)
    torn_head[newest : newest + 4] = b"\x00\x00\x00\x00"  # cut short at its very start
    assert files.newest_text(bytes(torn_head)) == '{"n": 2}'
    data[older + 30] ^= 0xFF
    with pytest.raises(ValueError, match="neither slot"):
        files.newest_text(bytes(data))
    state.close()


def test_slot_file_a_torn_file_is_set_aside_by_load_own(root):
    state = slot_file(root)
    state.save('{"n": 1}')
    with open(state.path, "r+b") as fh:
        fh.write(b"conntrack-slot 1 8 00000000\n")  # its checksum no longer holds, the other slot is empty
    assert files.load_own(state.path, lambda d: d, "state") is None
    assert not os.path.exists(state.path)  # renamed aside
    state.save('{"n": 2}')  # the path no longer names the open file: made again
    assert files.load_own(state.path, lambda d: d, "state") == {"n": 2}


def test_slot_file_remade_when_deleted_replaced_or_outgrown(root):
    state = slot_file(root)
    state.save('{"n": 1}')
    os.unlink(state.path)
    state.save('{"n": 2}')
    assert files.load_own(state.path, lambda d: d, "state") == {"n": 2}
    os.rename(state.path, state.path + ".x")
    with open(state.path, "w", encoding="utf-8") as fh:
        fh.write('{"n": "new file"}')
    state.save('{"n": 3}')  # not written into the file renamed away
    assert files.load_own(state.path, lambda d: d, "state") == {"n": 3}
    size = os.path.getsize(state.path)
    big = '{"n": "' + "x" * 10000 + '"}'
    state.save(big)
    assert os.path.getsize(state.path) > size and files.load_own(state.path, lambda d: d, "state")["n"] == "x" * 10000
    state.save('{"n": 4}')
    assert files.load_own(state.path, lambda d: d, "state") == {"n": 4}
    state.close()


def test_slot_file_a_link_swapped_in_is_not_written_through(root, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("keep\n")
    state = slot_file(root)
    state.save('{"n": 1}')
    os.unlink(state.path)
    os.symlink(outside, state.path)
    with pytest.raises(CommandExecutionError):
        state.save('{"n": 2}')
    assert outside.read_text() == "keep\n"


def test_load_own_still_reads_a_plain_json_file(root):
    path = os.path.join(root, "old.json")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"kind": "file"}')
    assert files.load_own(path, lambda d: d, "state") == {"kind": "file"}


def test_read_kernel_reads_past_one_chunk_and_stops_at_the_limit(root):
    path = os.path.join(root, "stat")
    with open(path, "wb") as fh:
        fh.write(b"x" * 200_000)
    assert files.read_kernel(path) == b"x" * 200_000
    assert files.read_kernel(path, limit=70_000) == b"x" * 70_000
    with pytest.raises(FileNotFoundError):
        files.read_kernel(os.path.join(root, "none"))
