"""Every host path resolved against one root (the minion option ``conntrack.root``).

Kernel paths (``proc/...``) are joined as they are; paths an operator gives
(a state's file, a beacon's log) are checked first: absolute, no NUL, no
``..``, bounded, and, once links are resolved, still under the root.
"""

import os
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers

PATH_MAX = 4096
MAX_LINKS = 40
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a link"),
)


def root_of(opts):
    """The configured root (``conntrack.root``), ``/`` by default."""
    return opts.get("conntrack.root", "/") or "/"


def join(root, rel):
    """A path the code itself names (``proc/net/stat/nf_conntrack``) under ``root``."""
    return os.path.join(root, rel.lstrip("/"))


def host(root, path, what="path"):
    """An operator's absolute host path (``/etc/...``) under ``root``, checked, links not yet resolved."""
    if isinstance(path, str) and len(path) > PATH_MAX:
        raise SaltInvocationError(f"{what} is {len(path)} characters long, at most {PATH_MAX}: {numbers.shown(path)}")
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise SaltInvocationError(f"{what} must be an absolute path, got {numbers.shown(path)}")
    if ".." in path.split("/"):
        raise SaltInvocationError(f"{what} must not contain '..', got {numbers.shown(path)}")
    return join(root, path)


def contained(root, joined):
    """``joined`` with every link resolved, or CommandExecutionError when it leaves ``root``.

    A link under the root is followed only when root (or this process's user)
    owns it: one another user planted (the ``prometheus`` user in its textfile
    directory) is refused, never followed. Call it in the plan, before the
    first change: a link that leads out of the root refuses the whole
    operation, not its last step.
    """
    top = os.path.realpath(root)
    real = _resolve(top, joined)
    if os.path.commonpath([top, real]) != top:
        raise CommandExecutionError(f"{joined} resolves to {real}, outside {top} (conntrack.root): refused")
    return real


def _resolve(top, joined):
    """``os.path.realpath(joined)``, refusing a link under ``top`` that someone else owns."""
    parts = [p for p in os.path.abspath(joined).split("/") if p]
    cur, hops = "/", 0
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            cur = cur if part == "." else os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, part)
        try:
            st = os.lstat(nxt)
        except OSError:
            st = None
        if st is None or not stat.S_ISLNK(st.st_mode):
            cur = nxt
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise CommandExecutionError(f"{joined}: more than {MAX_LINKS} links to follow: refused")
        if os.path.commonpath([top, nxt]) == top and st.st_uid not in (0, os.geteuid()):
            raise CommandExecutionError(
                f"{nxt} is a link owned by uid {st.st_uid}, not by root: refused "
                "(a link another user can plant is never followed)"
            )
        target = os.readlink(nxt)
        parts = [p for p in target.split("/") if p] + parts
        cur = "/" if target.startswith("/") else cur
    return cur


def loose_dir(st):
    """True when a directory's mode lets someone other than its owner (or root's group) add or
    replace entries, without the sticky bit."""
    if st.st_mode & stat.S_ISVTX:
        return False
    return bool(st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0))


def writable(root, real, what="file"):
    """Refuse, in the plan, a target that is not a regular file (a FIFO, a device, a socket,
    a directory) or whose directories under ``root`` others can write."""
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise CommandExecutionError(f"cannot inspect {real}: {err}") from err
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise CommandExecutionError(
            f"cannot write {real}: it is {kind(st)}, not a regular file (a {what} is only ever a regular file)"
        )
    top = os.path.realpath(root)
    directory = os.path.dirname(real)
    while os.path.commonpath([top, directory]) == top and directory != top:
        try:
            dst = os.lstat(directory)
        except FileNotFoundError:
            directory = os.path.dirname(directory)
            continue
        if loose_dir(dst):
            raise CommandExecutionError(
                f"cannot write {real}: {directory} can be written by users other than its owner "
                f"(mode {stat.S_IMODE(dst.st_mode):o}, no sticky bit): refused, they could swap the file"
            )
        directory = os.path.dirname(directory)
    return real


def kind(st):
    """What a non-regular file is, in words."""
    for test, name in _KINDS:
        if test(st.st_mode):
            return name
    return "not a regular file"


def resolve(root, path, what="path"):
    """``host`` then ``contained``: the real file an operator's path will touch."""
    return contained(root, host(root, path, what))
