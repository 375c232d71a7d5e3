"""The one atomic writer and the one reader: regular files only, no link followed at the last step.

Reads open with ``O_NONBLOCK`` (a FIFO cannot block) and ``fstat`` before a
byte is read; writes walk the directories from the root one ``openat`` at a
time with ``O_NOFOLLOW`` and rename a fresh temp file over the name, so a
link swapped in after the plan is never written through.
"""

import json
import logging
import os
import re
import secrets
import stat
import time
import zlib

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import numbers, paths

log = logging.getLogger(__name__)

READ_MAX = 16 << 20
_CHUNK = 1 << 16  # see read_kernel
_RDFLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_bytes(real, limit=READ_MAX, follow=False):
    """The bytes of a regular file; OSError for a missing one, CommandExecutionError for a FIFO,
    a device, a socket or a directory (refused before a byte is read) and for one over ``limit``."""
    _regular(real, os.stat(real, follow_symlinks=follow))  # before opening: a socket or device is never opened
    fd = os.open(real, _RDFLAGS | (0 if follow else os.O_NOFOLLOW))
    try:
        _regular(real, os.fstat(fd))  # what was opened (a FIFO swapped in cannot block: O_NONBLOCK)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise CommandExecutionError(f"cannot read {real}: it is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_kernel(path, limit=1 << 20):
    """The bytes of a small kernel file (``/proc``, ``/sys``), at most ``limit``; OSError as ``open`` raises it.

    In 64 KiB reads: a read asked for more allocates (and maps) the whole
    size first, which cost a namespace's stat file 100 us more than its read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(fd, min(_CHUNK, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _regular(real, st):
    if not stat.S_ISREG(st.st_mode):
        raise CommandExecutionError(f"cannot read {real}: it is {paths.kind(st)}, not a regular file")


def read_text(real, limit=READ_MAX, errors="strict"):
    """(text, exists) of a resolved path; a missing file is empty."""
    try:
        return read_bytes(real, limit).decode("utf-8", errors), True
    except FileNotFoundError:
        return "", False
    except (OSError, UnicodeDecodeError) as err:
        raise CommandExecutionError(f"cannot read {real}: {err}") from err


def read_or_none(real, limit=READ_MAX):
    """The text of a file the code only looks at, or None when missing, unreadable or not regular."""
    try:
        return read_bytes(real, limit).decode("utf-8", "replace")
    except (OSError, CommandExecutionError):
        return None


def load_own(path, check, what, limit=1 << 20):
    """A JSON file the extension keeps in its cachedir, cleaned by ``check`` (which raises
    ValueError, TypeError, KeyError or AttributeError on a bad shape); None when it is missing.

    A corrupt or foreign file (not JSON, not a regular file, too big, too deep,
    the wrong shape) is renamed aside to ``<name>.corrupt-<time>`` with a
    warning and None is returned: it never raises and never decides anything.
    """
    try:
        return check(json.loads(newest_text(read_bytes(path, limit))))
    except FileNotFoundError:
        return None
    except (OSError, CommandExecutionError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        aside = f"{path}.corrupt-{int(time.time())}"
        try:
            os.rename(path, aside)
        except OSError as rename_err:
            aside = f"(not moved: {rename_err})"
        reason = f"{type(err).__name__}: {numbers.clip(err, 200)}"
        log.warning("saltext-conntrack: %s %s is unusable (%s): set aside as %s, rebuilt", what, path, reason, aside)
        return None


# -- a file rewritten in place -----------------------------------------------------

SLOT_MAGIC = b"conntrack-slot"
_SLOT_HEAD = re.compile(rb"conntrack-slot (\d{1,19}) (\d{1,9}) ([0-9a-f]{8})\n")
_SLOT_HEAD_MAX = len(SLOT_MAGIC) + 1 + 19 + 1 + 9 + 1 + 8 + 1
_PAGE = 4096
_JSON_STARTS = {bytes([c]) for c in b'{["-0123456789tfn'} | {b""}


def newest_text(data):
    """The text of a file :py:class:`SlotFile` wrote (its newest whole slot), or of any other file as it is.

    ValueError when it is a slot file and neither slot is whole. A file that
    does not start like JSON is taken for a slot file, so one whose first
    slot was torn at its head still gives its second.
    """
    if data.lstrip()[:1] in _JSON_STARTS:
        return data.decode("utf-8")
    size = len(data) // 2
    best = None
    for start in (0, size):
        head = _SLOT_HEAD.match(data, start)
        if head is None:
            continue
        seq, length, crc = int(head[1]), int(head[2]), int(head[3], 16)
        end = head.end() + length
        body = data[head.end() : end]
        if end <= start + size and zlib.crc32(body) == crc and (best is None or seq > best[0]):
            best = (seq, body)
    if best is None:
        raise ValueError("neither slot of the file is whole")
    return best[1].decode("utf-8")


class SlotFile:
    """A small file one writer saves often (the beacon's cursor: each run that read a line), in place.

    The file holds two slots of the same size (whole pages), each a line
    ``conntrack-slot SEQ LENGTH CRC32`` and the text. A save overwrites the
    slot that does not hold the newest text, with one ``pwrite`` through a
    descriptor kept open: a save cut short (the process killed, the power
    lost in the middle of a page) spoils only that slot, and a load
    (:py:func:`newest_text`) takes the whole slot with the higher SEQ.

    No fsync and no rename per save (on this machine's ext4 they cost 1-2 ms
    of a beacon run's 3): the cursor is as durable as the log it follows,
    which syslog daemons do not fsync either; a power cut can take both back
    to the same journal commit. The file is (re)made by :py:func:`atomic_write`,
    with its checks, when it does not exist yet, when the path no longer names
    the file the descriptor holds (deleted, replaced), and when a text outgrows
    a slot.
    """

    def __init__(self, root, path, mode=0o600):
        self.root, self.path, self.mode = root, path, mode
        self._fh = self._real = None  # the open file, and the path it was written at
        self._id = None  # (st_dev, st_ino) of the open file
        self._size = self._seq = self._slot = 0

    def save(self, text):
        """Write ``text`` as the newest; CommandExecutionError when it cannot be written."""
        body = text.encode("utf-8")
        if self._fh is not None and _SLOT_HEAD_MAX + len(body) <= self._size and self._still_named():
            block = self._block(self._seq + 1, body)
            try:
                written = os.pwrite(self._fh.fileno(), block, (self._slot ^ 1) * self._size)
            except OSError as err:
                self.close()
                raise CommandExecutionError(f"cannot write {self.path}: {err}") from err
            if written != len(block):
                self.close()
                raise CommandExecutionError(f"cannot write {self.path}: {written} of {len(block)} bytes written")
            self._seq += 1
            self._slot ^= 1
            return
        self._remake(body)

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @staticmethod
    def _block(seq, body):
        return b"%s %d %d %08x\n" % (SLOT_MAGIC, seq, len(body), zlib.crc32(body)) + body

    def _still_named(self):
        try:
            st = os.stat(self._real, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._id

    def _remake(self, body):
        self.close()
        seq = self._seq + 1
        # Room to grow: a slot twice what the text needs now, in whole pages.
        size = -(-2 * (_SLOT_HEAD_MAX + len(body)) // _PAGE) * _PAGE
        first = self._block(seq, body)
        text = (first + b"\n" * (size - len(first)) + b"\n" * size).decode("utf-8")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        real = atomic_write(self.root, self.path, text, mode=self.mode)
        try:
            fd = os.open(real, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as err:
            raise CommandExecutionError(f"cannot open {real}: {err}") from err
        fh = os.fdopen(fd, "r+b", buffering=0)  # closed with the object, should nobody call close
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != 2 * size:
            fh.close()
            raise CommandExecutionError(f"cannot write {real}: it changed as it was written")
        self._fh, self._real, self._id = fh, real, (st.st_dev, st.st_ino)
        self._size, self._seq, self._slot = size, seq, 0


def _open_dir(top, directory):
    """A descriptor of ``directory`` (under ``top``), opened component by component without following
    a link; missing directories are created."""
    rel = os.path.relpath(directory, top)
    os.makedirs(top, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in [] if rel == "." else rel.split("/"):
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if paths.loose_dir(os.fstat(fd)):
                raise CommandExecutionError(f"{directory}: {part} can be written by others (no sticky bit): refused")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _temp(dfd, name):
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(4)}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return tmp, os.open(tmp, flags, 0o600, dir_fd=dfd)
        except FileExistsError:
            continue
    raise CommandExecutionError(f"cannot create a temp file beside {name}")


def atomic_write(root, joined, text, mode=0o644):
    """Write ``text`` to ``joined`` (a path under ``root``) atomically.

    A link root owns stays a link: the write goes to its target, which must
    stay under ``root``; a link another user owns is refused (see
    :py:func:`paths.contained`). What is replaced must be a regular file (a
    FIFO or a device is refused), in a directory no one else can write. An
    existing file keeps its mode and owner; a new one gets ``mode``. Returns
    the real path written.
    """
    real = paths.writable(root, paths.contained(root, joined))
    name = os.path.basename(real)
    try:
        dfd = _open_dir(os.path.realpath(root), os.path.dirname(real) or ".")
        try:
            _replace(dfd, name, text, mode)
        finally:
            os.close(dfd)
    except OSError as err:
        raise CommandExecutionError(f"cannot write {real}: {err}") from err
    return real


def _replace(dfd, name, text, mode):
    owner = None
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise CommandExecutionError(f"{name} became {paths.kind(st)} after the plan: refused")
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        pass
    tmp, fd = _temp(dfd, name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise
    os.fsync(dfd)
