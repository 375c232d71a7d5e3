"""Every host path resolved against one root (the minion option ``conntrack.root``).

Kernel paths (``proc/...``) are joined as they are; paths an operator gives
(a state's file, a beacon's log) are checked first: absolute, no NUL, no
``..``, bounded, and, once links are resolved, still under the root.
"""

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers

PATH_MAX = 4096


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

    Call it in the plan, before the first change: a link that leads out of the
    root refuses the whole operation, not its last step.
    """
    top = os.path.realpath(root)
    real = os.path.realpath(joined)
    if os.path.commonpath([top, real]) != top:
        raise CommandExecutionError(f"{joined} resolves to {real}, outside {top} (conntrack.root): refused")
    return real


def resolve(root, path, what="path"):
    """``host`` then ``contained``: the real file an operator's path will touch."""
    return contained(root, host(root, path, what))
