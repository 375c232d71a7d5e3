"""Plans and applies for the files conntrack settings are kept in.

A *plan* is pure: it checks that a path is one of the files its kind may
write, resolves it under the root (links included) and reads it through that
resolved path, then computes the new text and the changes. Every check runs
here, so ``test=True`` refuses exactly what a real run refuses. An *apply*
writes a plan through the one atomic writer. A caller that touches several
files (or the kernel too) builds every plan first and applies after.

A plan is a plain dict (JSON-able): ``path`` (host path), ``real`` (resolved),
``old``/``new`` (texts; ``new`` None removes the file), ``exists``, ``mode``
(of a new file) and ``changes``.
"""

import os
import re
from typing import TypedDict

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import files, numbers, paths

HEADER = "# Managed by Salt (saltext-conntrack): lines below are kept by a state.\n"
# A module name never starts with "-": init scripts run `modprobe $mod`.
MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# How many items one call may write: enough for any real host, and a bound on
# what a pillar typo or a hostile argument can put into a file.
MAX_ITEMS = 64

# The files each kind may write, as host paths ("*" is one file name).
ALLOWED = {
    "sysctl": ("/etc/sysctl.d/*.conf", "/etc/sysctl.conf"),
    "modprobe": ("/etc/modprobe.d/*.conf", "/etc/modprobe.conf"),
    "udev": ("/etc/udev/rules.d/*.rules",),
    "iptables-config": ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config"),
    # Debian, RHEL, Arch and Alpine keep their saved rules under these names.
    "saved rules": ("/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables",
                    "/etc/iptables/rules.v4", "/etc/iptables/rules.v6",
                    "/etc/iptables/iptables.rules", "/etc/iptables/ip6tables.rules",
                    "/etc/iptables/rules-save", "/etc/iptables/rules6-save"),
    # Never a distribution's own saved rules (Arch keeps /etc/iptables/iptables.rules).
    "notrack": ("/etc/nftables.d/*.nft", "/etc/iptables/conntrack-*.rules"),
    "nftables main": ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf"),
}  # fmt: skip
_ALLOWED_RX = {
    kind: [re.compile(re.escape(p).replace(r"\*", r"[A-Za-z0-9_.@+-]{1,200}")) for p in patterns]
    for kind, patterns in ALLOWED.items()
}


def allowed(path, kind):
    """``path`` when it is one of the files a ``kind`` edit may write, else SaltInvocationError."""
    paths.host("/", path, f"a {kind} file")
    if not os.path.basename(path).startswith(".") and any(rx.fullmatch(path) for rx in _ALLOWED_RX[kind]):
        return path
    raise SaltInvocationError(f"a {kind} file must be {' or '.join(ALLOWED[kind])}, got {numbers.shown(path)}")


def target(root, path, kind):
    """The resolved real path of an allowed ``kind`` file, contained under ``root``."""
    real = paths.contained(root, paths.host(root, allowed(path, kind), f"a {kind} file"))
    return paths.writable(root, real, f"{kind} file")


def read(root, path, kind):
    """``(real, text, exists)`` of an allowed file, read through its resolved path."""
    real = target(root, path, kind)
    text, exists = files.read_text(real)
    return real, text, exists


def read_contained(root, path):
    """The text of a file the code only reads (``/etc/modprobe.d/x.conf``), or None
    when it is missing, unreadable or resolves outside ``root``."""
    try:
        return files.read_or_none(paths.contained(root, paths.join(root, path)))
    except (CommandExecutionError, SaltInvocationError):
        return None


class FilePlan(TypedDict):
    """What :py:func:`apply` will do to one file (see the module docstring)."""

    path: str
    real: str
    old: str | None
    new: str | None  # None removes the file
    exists: bool
    mode: int
    changes: dict


def plan(path, real, old, new, exists, changes, mode=0o644) -> FilePlan:
    """A plan; ``changes`` empty means the file stays as it is."""
    if new == old and (exists or not new):
        changes = {}
    return {"path": path, "real": real, "old": old, "new": new, "exists": exists,
            "mode": mode, "changes": changes}  # fmt: skip


def pending(one):
    """True when applying ``one`` would touch the disk."""
    if one["new"] is None:
        return one["exists"]
    return one["new"] != one["old"] or not one["exists"]


def apply(root, one):
    """Write (or remove) what ``one`` planned; returns whether the disk changed."""
    if not pending(one):
        return False
    if one["new"] is None:
        real = paths.contained(root, one["real"])
        try:
            os.unlink(real)
        except OSError as err:
            raise CommandExecutionError(f"cannot remove {real}: {err}") from err
        return True
    files.atomic_write(root, one["real"], one["new"], one["mode"])
    return True


def result(root, one, test):
    """Apply ``one`` unless ``test``; the execution functions' return value."""
    written = False if test else apply(root, one)
    return {"path": one["path"], "changes": one["changes"], "written": written}


def lines(text):
    return text.splitlines(keepends=True)


def joined(parts):
    """Join lines, making sure an appended line does not glue onto a last line without newline."""
    out = []
    for i, line in enumerate(parts):
        if i < len(parts) - 1 and not line.endswith("\n"):
            line += "\n"
        out.append(line)
    return "".join(out)


def same_end(new_line, old_line):
    """``new_line`` with ``old_line``'s line ending."""
    return new_line + ("\n" if old_line.endswith("\n") else "")


def modules(names, what="module names"):
    """A list of kernel module names from a name or a list, deduplicated, bounded."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not names:
        raise SaltInvocationError(f"{what} must be a name or a non-empty list, got {numbers.shown(names)}")
    if len(names) > MAX_ITEMS:
        raise SaltInvocationError(f"{what}: at most {MAX_ITEMS} names are accepted, got {len(names)}")
    out = []
    for name in names:
        if not isinstance(name, str) or not MODULE_NAME.fullmatch(name):
            raise SaltInvocationError(
                f"{what}: a name is not a kernel module name (letters, digits, '_' and '-' only): {numbers.shown(name)}"
            )
        if name not in out:
            out.append(name)
    return out


def mapping(value, name, what):
    """A dict of at most MAX_ITEMS entries, or SaltInvocationError."""
    if not isinstance(value, dict):
        raise SaltInvocationError(f"{name} must be a mapping of {what}, got {numbers.shown(value)}")
    if len(value) > MAX_ITEMS:
        raise SaltInvocationError(f"{name}: at most {MAX_ITEMS} entries are accepted, got {len(value)}")
    return value
