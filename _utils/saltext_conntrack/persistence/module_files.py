"""Plans for the files that act when a module loads: modprobe.d options and
blacklists, and the udev rule that re-applies the sysctls on load."""

import os
import re

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.persistence import plans
from saltext_conntrack.runtime import kernel

MODPROBE_FILE = "/etc/modprobe.d/conntrack.conf"
BLACKLIST_FILE = "/etc/modprobe.d/conntrack-blacklist.conf"
UDEV_RULE_FILE = "/etc/udev/rules.d/90-conntrack-sysctl.rules"
_PARAM = re.compile(r"[a-z0-9_]{1,64}")


def _edit(text, wanted, unwanted):
    """The lines of ``text`` with each ``(line, regex)`` of ``wanted`` present once
    (replacing what its regex matches) and every line matching ``unwanted`` gone."""
    changes, keep = {}, []
    for line in plans.lines(text):
        bare = line.strip()
        if any(rx.fullmatch(bare) for rx in unwanted):
            changes[bare] = {"old": "present", "new": "absent"}
        else:
            keep.append(line)
    for new_line, rx in wanted:
        found = [i for i, line in enumerate(keep) if rx.fullmatch(line.strip())]
        if any(keep[i].strip() == new_line for i in found):
            # drop duplicates that say something else
            for i in reversed(found):
                if keep[i].strip() != new_line:
                    changes.setdefault(new_line, {"old": keep[i].strip(), "new": new_line})
                    del keep[i]
        elif found:
            changes[new_line] = {"old": keep[found[0]].strip(), "new": new_line}
            keep[found[0]] = plans.same_end(new_line, keep[found[0]])
            for i in reversed(found[1:]):
                del keep[i]
        else:
            if not keep:
                keep.append(plans.HEADER)
            changes[new_line] = {"old": None, "new": new_line}
            keep.append(new_line + "\n")
    return plans.joined(keep), changes


def _one_module(value):
    names = plans.modules(value, "module")
    if len(names) != 1:
        raise SaltInvocationError(f"module must be one module name, got {numbers.shown(value)}")
    return names[0]


def options_plan(root, module, options, path=MODPROBE_FILE, lower=True):
    """Set ``options`` (parameter -> integer) on ``module``'s ``options`` line; the
    module's other options stay, every options line of it folds into one."""
    module = _one_module(module)
    lower = numbers.boolean(lower, "lower")
    plans.mapping(options, "options", "module parameters to integers")
    if not options:
        raise SaltInvocationError("options must name at least one module parameter")
    wanted = {}
    for key, value in options.items():
        if not isinstance(key, str) or not _PARAM.fullmatch(key):
            raise SaltInvocationError(f"not a module parameter name: {numbers.shown(key)}")
        wanted[key] = numbers.integer(value, key, 0, kernel.INT_MAX)
    real, text, exists = plans.read(root, path, "modprobe")
    rx = re.compile(rf"options\s+{re.escape(module)}(\s.*)?")
    merged = {}
    for line in plans.lines(text):
        if rx.fullmatch(line.strip()):
            for token in line.split()[2:]:
                key, _, value = token.partition("=")
                merged[key] = value
    for key, value in wanted.items():
        held = merged.get(key, "")
        if lower or not numbers.DIGITS.fullmatch(held) or int(held) < value:
            merged[key] = str(value)
    parts = [f"{key}={value}" if value else key for key, value in merged.items()]
    new, changes = _edit(text, [(f"options {module} {' '.join(parts)}", rx)], [])
    return plans.plan(path, real, text, new, exists, changes)


def blacklist_plan(root, names, hard=False, present=True, path=BLACKLIST_FILE):
    """``blacklist NAME`` (and with ``hard`` ``install NAME /bin/false``) for each
    name, or with ``present=False`` neither."""
    names = plans.modules(names)
    hard = numbers.boolean(hard, "hard")
    present = numbers.boolean(present, "present")
    real, text, exists = plans.read(root, path, "modprobe")
    wanted, unwanted = [], []
    for name in names:
        listed = re.compile(rf"blacklist\s+{re.escape(name)}")
        install = re.compile(rf"install\s+{re.escape(name)}\s+/bin/(false|true)")
        if present:
            wanted.append((f"blacklist {name}", listed))
            if hard:
                wanted.append((f"install {name} /bin/false", install))
            else:
                unwanted.append(install)
        else:
            unwanted += [listed, install]
    new, changes = _edit(text, wanted, unwanted)
    return plans.plan(path, real, text, new, exists, changes)


# What a rule load asks modprobe for, by alias (nft-expr-ct, ipt_conntrack, ...):
# each pulls nf_conntrack in as a plain dependency, which no blacklist line stops.
RULE_ENTRY_POINTS = ("nft_ct", "xt_conntrack", "xt_state")


def soft_blacklist_gap(names, hard):
    """A sentence when a soft blacklist of nf_conntrack would not keep it out, else None.

    Seen on Debian 12's 6.1 (the vm tier): with ``blacklist nf_conntrack``
    alone, loading an nft ``ct state`` rule loads nft_ct and nf_conntrack
    with it; blacklisting nft_ct as well makes that rule load fail instead.
    """
    names = set(names)
    if hard or "nf_conntrack" not in names:
        return None
    missing = [m for m in RULE_ENTRY_POINTS if m not in names]
    if not missing:
        return None
    return (
        f"a soft blacklist does not stop dependency loads: a firewall rule that loads "
        f"{', '.join(missing)} still loads nf_conntrack with it; blacklist those too, or use hard: true"
    )


def blacklisted_elsewhere(root, names, path):
    """``{name: [file, ...]}``: other modprobe.d files that still blacklist a name."""
    found = {}
    try:
        entries = sorted(os.listdir(paths.join(root, "/etc/modprobe.d")))
    except OSError:
        return found
    for entry in entries:
        host_path = f"/etc/modprobe.d/{entry}"
        if host_path == path or not entry.endswith(".conf"):
            continue
        text = plans.read_contained(root, host_path) or ""
        for name in names:
            rx = rf"^\s*(blacklist\s+{re.escape(name)}|install\s+{re.escape(name)}\s+/bin/false)\s*$"
            if re.search(rx, text, re.M):
                found.setdefault(name, []).append(host_path)
    return found


def udev_running(root):
    return os.path.exists(paths.join(root, "/run/udev/control")) or os.path.isdir(paths.join(root, "/run/udev/data"))


def _systemd_sysctl(root):
    for candidate in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl"):
        if os.path.exists(paths.join(root, candidate)):
            return candidate
    return "/usr/lib/systemd/systemd-sysctl"


def udev_plan(root, module="nf_conntrack", present=True, path=UDEV_RULE_FILE):
    """The file holding only the rule that runs systemd-sysctl for conntrack's
    prefix when ``module`` loads; ``present=False`` removes the file."""
    module = _one_module(module)
    present = numbers.boolean(present, "present")
    real, text, exists = plans.read(root, path, "udev")
    if not present:
        return plans.plan(path, real, text, None, exists, {path: {"old": text, "new": None}} if exists else {})
    prefix = "/net/ipv4/netfilter" if module == "ip_conntrack" else "/net/netfilter"
    new = plans.HEADER + (
        f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="{module}", RUN+="{_systemd_sysctl(root)} --prefix={prefix}"\n'
    )
    return plans.plan(path, real, text, new, exists, {path: {"old": text or None, "new": new}})
