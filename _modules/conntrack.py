"""
Netfilter connection tracking: read, size, analyse and set the conntrack table.

Works on every kernel from CentOS 5 (``ip_conntrack``) to 6.x
(``nf_conntrack``, per-namespace tables). Every path under ``/proc``, ``/sys``
and ``/etc`` is resolved against the minion option ``conntrack.root``
(default ``/``), so the same code runs on a fixture tree and on the host.

Reading the table itself (``/proc/net/nf_conntrack``) walks every entry in the
kernel; only :py:func:`summary` does it, in one streaming pass. Everything else
costs a few small file reads whatever the table size.

:depends: Linux with conntrack built in or loadable
:configuration: optional minion options

    .. code-block:: yaml

        conntrack.root: /          # where /proc, /sys and /etc are found
"""

import glob
import logging
import os
import re
import shutil
import struct
import subprocess
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError
from saltext_conntrack_core import diagnose as diagnosis
from saltext_conntrack_core import numbers, paths, promtext, table, writer

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

# Where each flavour keeps its numbers, relative to the root.
FLAVOURS = {
    "nf_conntrack": {
        "module": "nf_conntrack",
        "sysctl_dir": "proc/sys/net/netfilter",
        "sysctl_prefix": "net.netfilter.",
        "prefix": "nf_conntrack_",
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
        "stat": "proc/net/stat/ip_conntrack",
        "table": "proc/net/ip_conntrack",
        "hashsize": "sys/module/ip_conntrack/parameters/hashsize",
    },
}

# The kernel keeps these as C ints; timeouts are stored in jiffies (HZ up to 1000).
INT_MAX = 2**31 - 1
TIMEOUT_MAX = INT_MAX // 1000
# nf_ct_alloc_hashtable refuses more than INT_MAX / sizeof(bucket pointer).
HASHSIZE_MAX = INT_MAX // 8

SIZING_RULE = "RAMSIZE / 16384 / (ARCH / 32) (Eychenne, 'Netfilter conntrack performance tweaking')"

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


def __virtual__():
    if not __grains__.get("kernel") == "Linux":  # noqa: F821
        return False, "conntrack: netfilter connection tracking exists only on Linux"
    if _flavour() or _loadable():
        return __virtualname__
    return False, (
        "conntrack: this host has no connection tracking: neither nf_conntrack nor "
        "ip_conntrack is active, built in or available as a module"
    )


# ---------------------------------------------------------------------------
# Paths and small readers


def _root():
    return __opts__.get("conntrack.root", "/") or "/"  # noqa: F821


def _path(rel):
    return os.path.join(_root(), rel.lstrip("/"))


def _read(rel):
    with open(_path(rel), "rb") as fh:
        return fh.read()


def _read_int(rel):
    try:
        return int(_read(rel).split()[0])
    except (OSError, ValueError, IndexError) as err:
        raise CommandExecutionError(f"cannot read a number from {_path(rel)}: {err}") from err


def _flavour():
    """The active flavour name, or None when no conntrack table is loaded."""
    for name, spec in FLAVOURS.items():
        if os.path.exists(_path(f"{spec['sysctl_dir']}/{spec['prefix']}max")):
            return name
    return None


def _spec():
    name = _flavour()
    if name is None:
        if _loadable():
            raise CommandExecutionError(
                "conntrack is not loaded on this host (no nf_conntrack_max under "
                f"{_path('proc/sys/net/netfilter')}): nothing is being tracked. "
                "It loads with the first rule that needs it."
            )
        raise CommandExecutionError("this host has no connection tracking at all")
    return name, FLAVOURS[name]


def _kernel_release():
    return __grains__.get("kernelrelease") or os.uname().release  # noqa: F821


def _loadable():
    """The conntrack module this kernel can load or has built in, or None."""
    base = _path(f"lib/modules/{_kernel_release()}")
    for index in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, index), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        for module in ("nf_conntrack", "ip_conntrack"):
            if re.search(rf"(^|/){module}\.ko", text, re.M):
                return module
    return None


def _knob(spec, name):
    """Path (relative) of a sysctl knob of the active flavour, e.g. ``max``."""
    return f"{spec['sysctl_dir']}/{spec['prefix']}{name}"


def _global_writable(spec):
    """False inside a non-initial network namespace, where the kernel makes
    global knobs read-only (mode 0444)."""
    try:
        return bool(os.stat(_path(_knob(spec, "max"))).st_mode & 0o222)
    except OSError:
        return False


def _parse_stat(data):
    """Sum /proc/net/stat/*conntrack over CPUs, keyed by the header's names.

    ``entries`` is a global gauge repeated on every CPU line, so it is taken once.
    """
    lines = data.split(b"\n")
    header = [name.decode() for name in lines[0].split()]
    totals = dict.fromkeys(header, 0)
    seen = False
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != len(header):
            continue
        for name, value in zip(header, fields):
            if name == "entries":
                if not seen:
                    totals[name] = int(value, 16)
            else:
                totals[name] += int(value, 16)
        seen = True
    return totals


# ---------------------------------------------------------------------------
# Reading


def status():
    """
    How full the conntrack table is and whether packets are being dropped.

    Returns the flavour (``nf_conntrack`` or legacy ``ip_conntrack``), ``count``,
    ``max``, ``usage`` (percent), ``buckets``, ``hashsize``, whether global
    knobs are writable here (``initial_netns``) and ``stats``: every counter of
    ``/proc/net/stat/nf_conntrack`` summed over CPUs, keyed by the kernel's own
    header names (``drop``, ``early_drop``, ``insert_failed``, ``invalid``,
    ``search_restart``, ...). A few small reads: it never reads the table.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.status
        salt-call conntrack.status --out=json
    """
    flavour, spec = _spec()
    count = _read_int(_knob(spec, "count"))
    maximum = _read_int(_knob(spec, "max"))
    ret = {
        "flavour": flavour,
        "count": count,
        "max": maximum,
        "usage": round(100.0 * count / maximum, 2) if maximum else 0.0,
        "buckets": None,
        "hashsize": None,
        "initial_netns": _global_writable(spec),
        "stats": {},
    }
    for key, rel in (("buckets", _knob(spec, "buckets")), ("hashsize", spec["hashsize"])):
        try:
            ret[key] = _read_int(rel)
        except CommandExecutionError:
            pass
    if ret["buckets"] is None:
        ret["buckets"] = ret["hashsize"]
    elif ret["hashsize"] is None:
        ret["hashsize"] = ret["buckets"]
    try:
        ret["stats"] = _parse_stat(_read(spec["stat"]))
    except (OSError, ValueError):
        log.debug("conntrack: no stat file at %s", _path(spec["stat"]))
    return ret


def check(warning=75, critical=90):
    """
    A verdict on the table: ``ok``, ``warning`` or ``critical``, with reasons.

    Usage past ``warning``/``critical`` percent raises the verdict. The
    kernel's ``drop`` counter above zero means packets were already lost to a
    full table (critical); ``early_drop`` above zero means the table sat at its
    limit and evicted unassured entries to make room (warning). Both counters
    count since boot (or module load).

    warning
        Usage percent that makes the verdict ``warning``. Default 75 (node_exporter's alert).

    critical
        Usage percent that makes the verdict ``critical``. Default 90.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.check
        salt '*' conntrack.check warning=60 critical=80
    """
    warning = _number(warning, "warning", 0, 100)
    critical = _number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}) must not be above critical ({critical})")
    st = status()
    rank = {"ok": 0, "warning": 1, "critical": 2}
    verdict = "ok"
    reasons = []

    def raise_to(level, reason):
        nonlocal verdict
        reasons.append(reason)
        if rank[level] > rank[verdict]:
            verdict = level

    usage = st["usage"]
    if usage >= critical:
        raise_to("critical", f"usage {usage}% ({st['count']}/{st['max']}) is at or above {critical}%")
    elif usage >= warning:
        raise_to("warning", f"usage {usage}% ({st['count']}/{st['max']}) is at or above {warning}%")
    drop = st["stats"].get("drop", 0)
    early_drop = st["stats"].get("early_drop", 0)
    if drop:
        raise_to("critical", f"{drop} packets dropped because the table was full (stat drop > 0)")
    if early_drop:
        raise_to(
            "warning",
            f"{early_drop} entries evicted early because the table was at its limit (stat early_drop > 0)",
        )
    if not reasons:
        reasons.append(f"usage {usage}% ({st['count']}/{st['max']}), no drops")
    return {
        "verdict": verdict,
        "reasons": reasons,
        "usage": usage,
        "count": st["count"],
        "max": st["max"],
        "drop": drop,
        "early_drop": early_drop,
    }


def _number(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SaltInvocationError(f"{name} must be a number, got {value!r}") from None
    if not low <= value <= high:
        raise SaltInvocationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _integer(value, name, low, high):
    """An int within [low, high]; strings of digits accepted, nothing else."""
    if isinstance(value, bool):
        raise SaltInvocationError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise SaltInvocationError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SaltInvocationError(f"{name} must be between {low} and {high}, got {value}")
    return value


# ---------------------------------------------------------------------------
# Sizing

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _parse_ram(ram):
    if isinstance(ram, bool):
        raise SaltInvocationError(f"ram must be bytes or a size like 64G, got {ram!r}")
    if isinstance(ram, int):
        value = ram
    else:
        match = re.fullmatch(r"\s*([0-9]+)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(ram))
        if not match:
            raise SaltInvocationError(f"ram must be bytes or a size like 64G, got {ram!r}")
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 2**20:
        raise SaltInvocationError(f"ram must be at least 1M, got {ram!r}")
    return value


def _host_ram():
    try:
        text = _read("proc/meminfo").decode()
    except OSError as err:
        raise CommandExecutionError(f"cannot read {_path('proc/meminfo')}: {err}") from err
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise CommandExecutionError(f"no MemTotal in {_path('proc/meminfo')}")


def _host_arch():
    machine = __grains__.get("cpuarch") or os.uname().machine  # noqa: F821
    if machine in _ARCH_BITS:
        return _ARCH_BITS[machine]
    if re.fullmatch(r"i[3-6]86|armv[0-9].*|ppc|s390|mips", machine or ""):
        return 32
    return struct.calcsize("P") * 8


def _slab_object_size(flavour):
    """Bytes per conntrack entry from /proc/slabinfo, or None when unreadable."""
    try:
        text = _read("proc/slabinfo").decode(errors="replace")
    except OSError:
        return None
    # ip_conntrack's cache is named after it; nf_conntrack's may carry a suffix
    # (nf_conntrack_<netns address>) on kernels before 4.x.
    pattern = re.compile(rf"^({flavour}(?:_[0-9a-f]+)?)\s+\d+\s+\d+\s+(\d+)\s", re.M)
    match = pattern.search(text)
    return int(match.group(2)) if match else None


def _ceiling(ram, arch):
    return ram // 16384 // (arch // 32)


def recommend(ram=None, arch=None, hash_ratio=8):
    """
    The table size this host should have, what it costs, and whether to change.

    ``max`` follows the classic rule ``RAMSIZE / 16384 / (ARCH / 32)`` (64 GiB on
    64-bit gives 2097152); ``hashsize`` is ``max / hash_ratio`` (classic 8; 1 gives
    one entry per bucket where speed matters more than memory). ``memory_bytes``
    is the unswappable kernel memory that size costs: ``max`` entries of the
    conntrack slab object (size read from ``/proc/slabinfo``) plus one pointer
    per bucket. ``rules`` says which rule produced each number.

    ram
        RAM to size for, in bytes or with a unit (``64G``). Default: this host's MemTotal.

    arch
        Pointer width in bits, 32 or 64. Default: this host's.

    hash_ratio
        Entries per hash bucket. Default 8.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.recommend
        salt '*' conntrack.recommend ram=64G arch=64
        salt '*' conntrack.recommend hash_ratio=1
    """
    ram_bytes = _host_ram() if ram is None else _parse_ram(ram)
    bits = _host_arch() if arch is None else _integer(arch, "arch", 32, 64)
    if bits not in (32, 64):
        raise SaltInvocationError(f"arch must be 32 or 64, got {bits}")
    ratio = _integer(hash_ratio, "hash_ratio", 1, 64)
    flavour = _flavour() or _loadable() or "nf_conntrack"
    maximum = _ceiling(ram_bytes, bits)
    hashsize = max(1, maximum // ratio)
    entry_size = _slab_object_size(flavour)
    pointer = bits // 8
    ret = {
        "ram": ram_bytes,
        "arch": bits,
        "max": maximum,
        "hashsize": hashsize,
        "entry_size": entry_size,
        "memory_bytes": None if entry_size is None else maximum * entry_size + hashsize * pointer,
        "rules": {
            "max": SIZING_RULE,
            "hashsize": f"max / {ratio}" + (" (classic)" if ratio == 8 else ""),
            "memory": (
                f"max x {entry_size}-byte {flavour} slab object (/proc/slabinfo) "
                f"+ hashsize x {pointer}-byte bucket pointer"
                if entry_size
                else "unknown: /proc/slabinfo is unreadable (needs root) or has no conntrack cache yet"
            ),
        },
        "current": None,
        "needs_change": None,
        "reasons": [],
    }
    if _flavour() is None:
        ret["reasons"].append("conntrack is not loaded: nothing to compare with")
        return ret
    st = status()
    ret["current"] = {"max": st["max"], "hashsize": st["hashsize"], "count": st["count"]}
    if st["max"] < maximum:
        ret["reasons"].append(f"max {st['max']} is below the recommended {maximum}")
    elif st["max"] > maximum:
        ret["reasons"].append(
            f"max {st['max']} is above the RAM formula's ceiling {maximum}: a full table could "
            "take more kernel memory than the rule allows"
        )
    if st["hashsize"] is not None and st["hashsize"] < hashsize:
        ret["reasons"].append(f"hashsize {st['hashsize']} is below the recommended {hashsize}")
    ret["needs_change"] = bool(ret["reasons"])
    if not ret["reasons"]:
        ret["reasons"].append("max and hashsize already match the recommendation")
    return ret


# ---------------------------------------------------------------------------
# Timeouts


def _timeout_files(spec):
    """Map short timeout names (tcp_established, udp, ...) to relative paths."""
    found = {}
    directory = _path(spec["sysctl_dir"])
    prefix = spec["prefix"]
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if not name.startswith(prefix) or "timeout" not in name:
            continue
        short = name[len(prefix) :].replace("_timeout_", "_").replace("_timeout", "")
        found[short] = f"{spec['sysctl_dir']}/{name}"
    return found


def timeouts():
    """
    Every conntrack timeout of this network namespace, in seconds, by short name.

    Short names drop the flavour prefix and the word ``timeout``:
    ``nf_conntrack_tcp_timeout_established`` is ``tcp_established``,
    ``nf_conntrack_udp_timeout`` is ``udp``, ``nf_conntrack_udp_timeout_stream``
    is ``udp_stream``, ``nf_conntrack_generic_timeout`` is ``generic``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.timeouts
    """
    _, spec = _spec()
    return {short: _read_int(rel) for short, rel in sorted(_timeout_files(spec).items())}


def sysctl_names():
    """
    The sysctl keys this host's conntrack knobs have, by short name.

    ``max``, ``buckets``, ``count`` and every timeout short name map to their
    full sysctl key (``net.netfilter.nf_conntrack_max``; on CentOS 5
    ``net.ipv4.netfilter.ip_conntrack_max``). Used to persist settings under
    the names the running kernel understands.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.sysctl_names
    """
    name = _flavour() or _loadable() or "nf_conntrack"
    spec = FLAVOURS[name]
    ret = {
        short: spec["sysctl_prefix"] + spec["prefix"] + short
        for short in ("max", "buckets", "count", "expect_max")
    }
    for short, rel in _timeout_files(spec).items():
        ret[short] = spec["sysctl_prefix"] + os.path.basename(rel)
    return ret


# ---------------------------------------------------------------------------
# The table: one streaming pass (parsing lives in saltext_conntrack_core.table)


def summary(top=10):
    """
    One streaming pass over the conntrack table: what fills it, and who.

    Totals by protocol and by TCP state, ``assured`` and ``unreplied`` counts,
    and the ``top`` talkers by source address, destination address and
    destination port (``proto/port``), original direction. Memory stays bounded
    whatever the table size: ``approximate`` is true when more distinct keys
    were seen than are kept, and top counts are then lower bounds.

    Reading the table walks every entry in the kernel (seconds per million
    entries): use :py:func:`status` to just count.

    top
        How many talkers to list per category. Default 10.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.summary
        salt '*' conntrack.summary top=3
    """
    top = _integer(top, "top", 0, 10000)
    flavour, spec = _spec()
    path = _path(spec["table"])
    try:
        counted = table.walk(path, flavour, top=top)
    except OSError as err:
        raise CommandExecutionError(f"cannot read the conntrack table {path}: {err}") from err
    return table.breakdown(counted, top)


# ---------------------------------------------------------------------------
# Firewall rules that need conntrack

def dependents():
    """
    The firewall rules that need connection tracking, each with why: state
    and conntrack matches, NAT, CT/NOTRACK, connection marks, nft ``ct``, in
    the live rulesets and the saved rules files. The firewall module's
    ``conntrack_fw.dependents``, kept here where operators look first.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.dependents
    """
    return __salt__["conntrack_fw.dependents"]()  # noqa: F821


# ---------------------------------------------------------------------------
# Runtime writes


def _write_knob(rel, value):
    path = _path(rel)
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write(f"{value}\n")
    except OSError as err:
        raise CommandExecutionError(f"cannot write {value} to {path}: {err}") from err
    return _read_int(rel)


def _require_global(spec, what):
    if not _global_writable(spec):
        raise CommandExecutionError(
            f"{what} is global to the kernel and read-only in this network namespace: "
            "set it from the initial namespace (the host itself)"
        )


def _check_ceiling(value, what, force):
    ceiling = _ceiling(_host_ram(), _host_arch())
    if value > ceiling and not force:
        raise SaltInvocationError(
            f"{what} {value} is above this host's ceiling {ceiling} ({SIZING_RULE}); "
            "pass force=True to set it anyway"
        )


def set_max(value, force=False, test=False):
    """
    Set the conntrack table limit (``nf_conntrack_max``) at runtime.

    Integers only, 1 to 2147483647. A value above the RAM formula's ceiling
    (see :py:func:`recommend`), or below the number of entries the table holds
    now (it would be full at once), is refused unless ``force=True``. The limit
    is global: inside a network namespace other than the host's it is
    read-only, and asking there is an error. ``test=True`` makes every check
    and writes nothing. Not persisted; see the ``conntrack.tuned`` state.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.set_max 524288
        salt '*' conntrack.set_max 8000000 force=True
        salt '*' conntrack.set_max 524288 test=True
    """
    value = _integer(value, "max", 1, INT_MAX)
    _, spec = _spec()
    _require_global(spec, "max")
    _check_ceiling(value, "max", force)
    count = _read_int(_knob(spec, "count"))
    if value < count and not force:
        raise SaltInvocationError(
            f"max {value} is below the {count} entries the table holds now: it would be full at "
            "once and drop every new flow; pass force=True to set it anyway"
        )
    old = _read_int(_knob(spec, "max"))
    if test or old == value:
        return {"old": old, "new": value}
    return {"old": old, "new": _write_knob(_knob(spec, "max"), value)}


def set_buckets(value, force=False, test=False):
    """
    Resize the conntrack hash table (the module's ``hashsize``) at runtime.

    Integers only, 1 to 268435455 (the kernel's limit). More buckets than the
    RAM formula's ``max`` ceiling is refused unless ``force=True``. Global, like
    ``max``; on kernels whose ``hashsize`` parameter is read-only it can only be
    set at module load (``options nf_conntrack hashsize=N``). ``test=True``
    makes every check and writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.set_buckets 131072
    """
    value = _integer(value, "buckets", 1, HASHSIZE_MAX)
    _, spec = _spec()
    _require_global(spec, "buckets")
    _check_ceiling(value, "buckets", force)
    path = _path(spec["hashsize"])
    if not os.path.exists(path) or not os.stat(path).st_mode & 0o222:
        raise CommandExecutionError(
            f"{path} is missing or read-only on this kernel: hashsize can only be set when "
            f"the module loads (options {spec['module']} hashsize={value} in /etc/modprobe.d)"
        )
    old = _read_int(spec["hashsize"])
    if test or old == value:
        return {"old": old, "new": value}
    return {"old": old, "new": _write_knob(spec["hashsize"], value)}


def set_timeout(name, seconds, test=False):
    """
    Set one conntrack timeout of this network namespace, in seconds.

    ``name`` is a short name from :py:func:`timeouts` (``tcp_established``,
    ``udp``, ...); ``seconds`` an integer from 1 to 2147483. ``test=True``
    checks and writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.set_timeout tcp_established 3600
    """
    _, spec = _spec()
    files = _timeout_files(spec)
    if name not in files:
        raise SaltInvocationError(
            f"unknown conntrack timeout {name!r}; known: {', '.join(sorted(files))}"
        )
    seconds = _integer(seconds, "seconds", 1, TIMEOUT_MAX)
    old = _read_int(files[name])
    if test or old == seconds:
        return {"old": old, "new": seconds}
    return {"old": old, "new": _write_knob(files[name], seconds)}


# ---------------------------------------------------------------------------
# Diagnosis and Prometheus (logic in saltext_conntrack_core.diagnose / promtext)

TEXTFILE = "/var/lib/prometheus/node-exporter/saltext_conntrack.prom"


def _diagnosis_facts(root):
    """What the findings are judged on; a fact that cannot be read is a note, not a failure."""
    notes = []

    def ask(fun):
        try:
            return __salt__[fun]()  # noqa: F821
        except CommandExecutionError as err:
            notes.append(f"{fun}: {err}")
            return None

    return {
        "status": __salt__["conntrack.status"](),  # noqa: F821
        "recommend": ask("conntrack.recommend"),
        "timeouts": ask("conntrack.timeouts"),
        "names": ask("conntrack.sysctl_names"),
        "dependents": ask("conntrack.dependents"),
        "host": diagnosis.host_facts(root),
        "notes": notes,
    }


def diagnose(walk=True, sample=None, top=5):
    """
    Why the table is full, whether it still is, and which fix fits.

    Returns ``findings``, worst first, each with ``id``, ``severity``
    (``critical``, ``warning``, ``info``), ``evidence`` (the numbers seen),
    ``why`` (one sentence), ``fix`` (an SLS snippet for ``conntrack.tuned``,
    ``conntrack.notrack`` or ``conntrack.iptables_config``, or an nft snippet
    to review, as ``fix_type`` says; never applied) and ``side_effects``.
    Also ``walk`` (entries read, whether the whole table was, seconds),
    ``summary`` (as :py:func:`summary`, when it walked) and ``notes`` (facts
    that could not be read).

    Without the walk: drops, early drops and insert failures rising now
    (``status``'s ``recent`` block; only since boot without it), a limit low
    for the RAM, long hash chains, runtime values boot will not set, an
    iptables-config whose restarts reset them, and heavy tracking that no rule
    needs. With it (one streaming pass, bounded memory): unreplied UDP to one
    port, TIME_WAIT churn, ESTABLISHED entries idle for over an hour (from
    each entry's remaining lifetime) and one source or destination holding
    most entries.

    walk
        Read the table (seconds per million entries). Default true; false
        gives only the cheap findings.

    sample
        Stop after this many entries; ``walk`` says how many were read and
        whether that was all (shares are then of the sample).

    top
        Talkers kept in ``summary``. Default 5.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.diagnose
        salt '*' conntrack.diagnose walk=False
        salt '*' conntrack.diagnose sample=100000 --out=json
    """
    walk = numbers.boolean(walk, "walk")
    if sample is not None:
        if not walk:
            raise SaltInvocationError("sample needs walk=True: without the walk nothing is sampled")
        sample = numbers.integer(sample, "sample", 1, 10**10)
    top = numbers.integer(top, "top", 1, 100)
    root = paths.root_of(__opts__)  # noqa: F821
    return diagnosis.run(root, _diagnosis_facts(root), walk=walk, sample=sample, top=top)


def textfile(path=TEXTFILE, walk=True, sample=None, top=5):
    """
    Write the breakdown and the findings for node_exporter's textfile collector.

    Runs :py:func:`diagnose` and writes its result atomically to ``path``, as
    ``saltext_conntrack_*`` gauges (node_exporter's own ``node_nf_conntrack_*``
    already has count, limit and the stat counters): one series per finding
    id (0 absent, 1 info, 2 warning, 3 critical), entries by protocol and TCP
    state (fixed sets), and the ``top`` sources, destinations and ports.

    path
        Absolute, ending in ``.prom``, in an existing directory under
        ``conntrack.root`` (node_exporter's ``--collector.textfile.directory``).
        Default ``/var/lib/prometheus/node-exporter/saltext_conntrack.prom``
        (Debian's directory).

    walk, sample, top
        As for :py:func:`diagnose`.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.textfile
        salt '*' conntrack.textfile path=/var/lib/node_exporter/textfile/conntrack.prom sample=200000
    """
    root = paths.root_of(__opts__)  # noqa: F821
    real = promtext.target(root, path)
    result = diagnose(walk=walk, sample=sample, top=top)
    text = promtext.render(result, top, time.time())
    writer.atomic_write(root, real, text, 0o644)
    return {
        "path": path,
        "written": real,
        "bytes": len(text.encode()),
        "findings": [f["id"] for f in result["findings"]],
        "walk": result["walk"],
    }
