"""Sizing the table: the RAM rule for ``max``, the kernel's own bucket ratio, what a size costs.

Plain arithmetic on numbers and file texts the execution module reads under
its root, so every kernel era can be shown with a fixture tree.
"""

import re
import struct

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import numbers, paths

MAX_RULE = "RAMSIZE / 16384 / (ARCH / 32) (Eychenne, 'Netfilter conntrack performance tweaking')"

_ARCH_BITS = {
    "x86_64": 64,
    "aarch64": 64,
    "arm64": 64,
    "ppc64": 64,
    "ppc64le": 64,
    "s390x": 64,
    "riscv64": 64,
    "mips64": 64,
    "loongarch64": 64,
    "sparc64": 64,
}
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_RAM = re.compile(r"\s*([0-9]{1,19})\s*([kmgtKMGT]?)(?:i?[bB])?\s*", re.ASCII)
_RELEASE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")


def parse_ram(ram):
    """Bytes from an int or a size like ``64G``/``512MiB``; at least 1 MiB."""
    if isinstance(ram, bool):
        raise SaltInvocationError(f"ram must be bytes or a size like 64G, got {numbers.shown(ram)}")
    if isinstance(ram, int):
        value = ram
    else:
        match = _RAM.fullmatch(ram) if isinstance(ram, str) else None
        if not match:
            raise SaltInvocationError(f"ram must be bytes or a size like 64G, got {numbers.shown(ram)}")
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if not 2**20 <= value <= 2**60:
        raise SaltInvocationError(f"ram must be from 1M to 1E bytes, got {numbers.shown(ram)}")
    return value


def mem_total(meminfo):
    """MemTotal in bytes from the text of ``/proc/meminfo``, or None."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def arch_bits(machine):
    """Pointer width in bits of a ``uname -m`` machine name."""
    if machine in _ARCH_BITS:
        return _ARCH_BITS[machine]
    if re.fullmatch(r"i[3-6]86|armv[0-9].*|ppc|s390|mips", machine or ""):
        return 32
    return struct.calcsize("P") * 8


def ceiling(ram, arch):
    """The classic ``max`` for ``ram`` bytes on an ``arch``-bit kernel."""
    return ram // 16384 // (arch // 32)


def slab_object_size(slabinfo, flavour):
    """Bytes per conntrack entry from the text of ``/proc/slabinfo``, or None."""
    # ip_conntrack's cache is named after it; nf_conntrack's may carry a suffix
    # (nf_conntrack_<netns address>) on kernels before 4.x.
    pattern = re.compile(rf"^({flavour}(?:_[0-9a-f]+)?)\s+\d+\s+\d+\s+(\d+)\s", re.M)
    match = pattern.search(slabinfo)
    return int(match.group(2)) if match else None


def kernel_ratio(release, flavour):
    """``(entries per bucket, why)``: the ratio the running kernel itself sizes with.

    5.15 made the default one entry per bucket; nf_conntrack before it sized
    max at 4 x buckets; 2.6-era ip_conntrack at 8 x buckets (domain.md, Sizing).
    """
    if flavour == "ip_conntrack":
        return 8, "2.6-era ip_conntrack sizes max = 8 x buckets: buckets = max / 8"
    match = _RELEASE.match(release or "")
    if not match:
        return 8, f"kernel release {release!r} unreadable: the classic buckets = max / 8"
    version = (int(match.group(1)), int(match.group(2)))
    shown = f"{version[0]}.{version[1]}"
    if version >= (5, 15):
        return 1, f"kernel {shown} (5.15 and later) sizes buckets = max: buckets = max"
    return 4, f"kernel {shown} (nf_conntrack before 5.15) sizes max = 4 x buckets: buckets = max / 4"


def buckets_for(maximum, ratio, why, current=None):
    """``(buckets, bucket_rule)`` for ``maximum`` at ``ratio``, never fewer than ``current``."""
    wanted = max(1, maximum // ratio)
    if current is not None and current > wanted:
        return current, f"{why}; kept at the current {current}: never fewer buckets than the host has"
    return wanted, why


def memory_rule(entry_size, flavour, pointer):
    """How ``memory_bytes`` was reckoned, or why it is unknown."""
    if not entry_size:
        return "unknown: /proc/slabinfo is unreadable (needs root) or has no conntrack cache yet"
    return f"max x {entry_size}-byte {flavour} slab object (/proc/slabinfo) + hashsize x {pointer}-byte bucket pointer"


def compare(ret, current):
    """Fill ``reasons`` and ``needs_change`` of a recommendation ``ret`` against the host's ``current`` status."""
    maximum, hashsize = ret["max"], ret["hashsize"]
    if current["max"] < maximum:
        ret["reasons"].append(f"max {current['max']} is below the recommended {maximum}")
    elif current["max"] > maximum:
        ret["reasons"].append(
            f"max {current['max']} is above the RAM formula's ceiling {maximum}: a full table could "
            "take more kernel memory than the rule allows"
        )
    if current["hashsize"] is not None and current["hashsize"] < hashsize:
        ret["reasons"].append(f"hashsize {current['hashsize']} is below the recommended {hashsize}")
    ret["needs_change"] = bool(ret["reasons"])
    if not ret["reasons"]:
        ret["reasons"].append("max and hashsize already match the recommendation")


def host_ram(root):
    """Bytes of RAM from ``/proc/meminfo`` under ``root``, or CommandExecutionError."""
    where = paths.join(root, "proc/meminfo")
    try:
        with open(where, encoding="ascii", errors="replace") as fh:
            ram = mem_total(fh.read())
    except OSError as err:
        raise CommandExecutionError(f"cannot read {where}: {err}") from err
    if ram is None:
        raise CommandExecutionError(f"no MemTotal in {where}")
    return ram


def entry_size(root, flavour):
    """Bytes per entry from ``/proc/slabinfo`` (readable by root only), or None."""
    try:
        with open(paths.join(root, "proc/slabinfo"), encoding="ascii", errors="replace") as fh:
            return slab_object_size(fh.read(), flavour)
    except OSError:
        return None
