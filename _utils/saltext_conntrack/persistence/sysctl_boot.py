"""The sysctl.conf grammar and what boot will set, in systemd-sysctl's order.

One parser for ``key = value`` lines: the persistence editor, the diagnosis
("the runtime value is not what boot will set") and drift all read files
through it.
"""

import os
import re

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files, paths

LINE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*=\s*(.*?)\s*$")
# Two names for one knob: the kernel keeps a short alias of the table limit.
ALIASES = {
    "net.nf_conntrack_max": "net.netfilter.nf_conntrack_max",
    "net.ipv4.ip_conntrack_max": "net.ipv4.netfilter.ip_conntrack_max",
}
# systemd-sysctl: a file name in an earlier directory masks the same name in a
# later one; all names are applied in lexical order; /etc/sysctl.conf last.
BOOT_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


def key_of(name):
    """The key a line sets: a leading ``-`` (systemd's "ignore errors") is not
    part of it, and ``net/netfilter/x`` is ``net.netfilter.x``."""
    return name.lstrip("-").replace("/", ".")


def canonical(key):
    """The long name of a key (``net.nf_conntrack_max`` -> ``net.netfilter.nf_conntrack_max``)."""
    return ALIASES.get(key, key)


def assignments(text):
    """``(line index, name as written, key, value)`` for every setting line of ``text``."""
    found = []
    for index, line in enumerate(text.splitlines()):
        if line.lstrip().startswith(("#", ";")):
            continue
        match = LINE.match(line)
        if match:
            found.append((index, match.group(1), key_of(match.group(1)), match.group(2)))
    return found


def boot_files(root):
    """Host paths of the sysctl files boot applies, in the order it applies them."""
    chosen = {}
    for directory in BOOT_DIRS:
        try:
            names = os.listdir(paths.join(root, directory))
        except OSError:
            continue
        for name in names:
            candidate = f"{directory}/{name}"
            if name.endswith(".conf") and name not in chosen and os.path.isfile(paths.join(root, candidate)):
                chosen[name] = candidate
    order = [chosen[name] for name in sorted(chosen)]
    seen = {os.path.realpath(paths.join(root, p)) for p in order}
    legacy = paths.join(root, "/etc/sysctl.conf")
    if os.path.isfile(legacy) and os.path.realpath(legacy) not in seen:
        order.append("/etc/sysctl.conf")
    return order


def boot_values(root, prefix=""):
    """``{canonical key: {"value", "file"}}`` that boot will set (the last file wins), keys under ``prefix``."""
    values = {}
    for host_path in boot_files(root):
        try:
            # A link out of the root is not this host's boot (a fixture tree, a chroot); a FIFO is refused
            # before it can block.
            text = files.read_or_none(paths.contained(root, paths.join(root, host_path)))
        except CommandExecutionError:
            continue
        if text is None:
            continue
        for _, _, key, value in assignments(text):
            key = canonical(key)
            if key.startswith(prefix):
                values[key] = {"value": value, "file": host_path}
    return values
