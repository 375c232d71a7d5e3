"""What the kernel exposes, for every era: flavours, limits, the stat file, modules.

All paths are relative to a root (see ``paths``); nothing here caches, so a
fixture tree and the live host read the same way.
"""

import os
import re

from saltext_conntrack.common import paths

# Where each flavour keeps its numbers, relative to the root.
FLAVOURS = {
    "nf_conntrack": {
        "module": "nf_conntrack",
        "sysctl_dir": "proc/sys/net/netfilter",
        "sysctl_prefix": "net.netfilter.",
        "prefix": "nf_conntrack_",
        "global_max": "proc/sys/net/nf_conntrack_max",
        "stat": "proc/net/stat/nf_conntrack",
        "table": "proc/net/nf_conntrack",
        "hashsize": "sys/module/nf_conntrack/parameters/hashsize",
    },
    # CentOS 5 / kernels before 2.6.20 without nf_conntrack.
    "ip_conntrack": {
        "module": "ip_conntrack",
        "sysctl_dir": "proc/sys/net/ipv4/netfilter",
        "sysctl_prefix": "net.ipv4.netfilter.",
        "prefix": "ip_conntrack_",
        "global_max": "proc/sys/net/ipv4/ip_conntrack_max",
        "stat": "proc/net/stat/ip_conntrack",
        "table": "proc/net/ip_conntrack",
        "hashsize": "sys/module/ip_conntrack/parameters/hashsize",
    },
}
CORE_MODULES = ("nf_conntrack", "ip_conntrack")

# The kernel keeps these as C ints; timeouts are stored in jiffies (HZ up to 1000).
INT_MAX = 2**31 - 1
TIMEOUT_MAX = INT_MAX // 1000
# nf_ct_alloc_hashtable refuses more than INT_MAX / sizeof(bucket pointer).
HASHSIZE_MAX = INT_MAX // 8


def virtual(grains, name):
    """A loader file's ``__virtual__`` answer: ``name`` on Linux, else ``(False, reason)``."""
    if grains.get("kernel") != "Linux":
        return False, f"{name}: netfilter connection tracking exists only on Linux"
    return name


def knob(flavour, name):
    """Relative path of a sysctl knob of ``flavour``, e.g. ``knob("nf_conntrack", "max")``."""
    spec = FLAVOURS[flavour]
    return f"{spec['sysctl_dir']}/{spec['prefix']}{name}"


def timeout_files(root, flavour):
    """``{short name: relative path}`` of every timeout knob (``tcp_established``, ``udp``, ...)."""
    spec = FLAVOURS[flavour]
    try:
        names = os.listdir(paths.join(root, spec["sysctl_dir"]))
    except OSError:
        return {}
    found = {}
    for name in names:
        if name.startswith(spec["prefix"]) and "timeout" in name:
            short = name[len(spec["prefix"]) :].replace("_timeout_", "_").replace("_timeout", "")
            found[short] = f"{spec['sysctl_dir']}/{name}"
    return found


def release(root, fallback):
    """The release of the kernel under ``root`` (a fixture tree says its own), else ``fallback``."""
    try:
        with open(paths.join(root, "proc/sys/kernel/osrelease"), encoding="ascii", errors="replace") as fh:
            found = fh.read().strip()
    except OSError:
        found = ""
    return found or fallback


def global_writable(root, flavour):
    """False inside a non-initial network namespace, where the kernel makes
    global knobs read-only (mode 0444)."""
    try:
        return bool(os.stat(paths.join(root, knob(flavour, "max"))).st_mode & 0o222)
    except OSError:
        return False


def active_flavour(root):
    """The flavour whose table is loaded under ``root``, or None."""
    for name in FLAVOURS:
        if os.path.exists(paths.join(root, knob(name, "max"))):
            return name
    return None


def _module_index(root, release, index):
    try:
        with open(paths.join(root, f"lib/modules/{release}/{index}"), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def builtin(root, release, module):
    """True when ``module`` is built into the kernel ``release`` (modules.builtin lists it)."""
    text = _module_index(root, release, "modules.builtin")
    return text is not None and re.search(rf"(^|/){re.escape(module)}\.ko", text, re.M) is not None


def available_module(root, release):
    """The conntrack module this kernel has built in or can load, or None."""
    for index in ("modules.builtin", "modules.dep"):
        text = _module_index(root, release, index)
        if text is None:
            continue
        for module in CORE_MODULES:
            if re.search(rf"(^|/){module}\.ko", text, re.M):
                return module
    return None


def parse_stat(data):
    """Sum ``/proc/net/stat/*conntrack`` over CPUs, keyed by the header's own names.

    ``entries`` is a global gauge repeated on every CPU line, so it is taken
    once. Accepts bytes or str; lines whose field count differs from the
    header's are skipped (a torn read).
    """
    if isinstance(data, bytes):
        data = data.decode("ascii", "replace")
    lines = data.split("\n")
    header = lines[0].split()
    totals = dict.fromkeys(header, 0)
    seen = False
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != len(header):
            continue
        for name, value in zip(header, fields, strict=False):
            if name == "entries":
                if not seen:
                    totals[name] = int(value, 16)
            else:
                totals[name] += int(value, 16)
        seen = True
    return totals
