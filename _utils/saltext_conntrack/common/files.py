"""The one atomic writer and the one reader: regular files only, no link followed at the last step.

Reads open with ``O_NONBLOCK`` (a FIFO cannot block) and ``fstat`` before a
byte is read; writes walk the directories from the root one ``openat`` at a
time with ``O_NOFOLLOW`` and rename a fresh temp file over the name, so a
link swapped in after the plan is never written through.
"""

import json
import logging
import os
import secrets
import stat
import time

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import numbers, paths

log = logging.getLogger(__name__)

READ_MAX = 16 << 20
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
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise CommandExecutionError(f"cannot read {real}: it is larger than {limit} bytes")
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
        return check(json.loads(read_bytes(path, limit).decode("utf-8")))
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
