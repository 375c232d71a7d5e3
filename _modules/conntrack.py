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

import logging
import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, persistence, report, runtime
except ImportError as err:  # Salt prints this as the module's reason; docs/design.md
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master; "
        "minions get it from pip or saltutil.sync_all"
    ) from err

log = logging.getLogger(__name__)

__virtualname__ = "conntrack"

WINDOW_MAX = 31 * 86400  # longest look back of status/check(window=...)


def __virtual__():
    if __grains__.get("kernel") != "Linux":
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
    return common.paths.root_of(__opts__)


def _path(rel):
    return common.paths.join(_root(), rel)


_integer = common.numbers.integer  # summary's ``top``: the one number rule
_flag = common.numbers.boolean


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
    return runtime.kernel.active_flavour(_root())


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
    return name, runtime.kernel.FLAVOURS[name]


def _kernel_release():
    return runtime.kernel.release(_root(), __grains__.get("kernelrelease") or os.uname().release)


def _loadable():
    """The conntrack module this kernel can load or has built in, or None."""
    return runtime.kernel.available_module(_root(), _kernel_release())


# ---------------------------------------------------------------------------
# Reading


def _recent(stats, window):
    """The counters' rise since an earlier sample (see ``recent``), or None."""
    cachedir = __opts__.get("cachedir")
    if not stats or not cachedir:
        return None
    return runtime.history.observe(cachedir, _root(), stats, time.time(), window)


def status(window=300):
    """
    How full the conntrack table is and whether packets are being dropped now.

    Returns the flavour (``nf_conntrack`` or legacy ``ip_conntrack``), ``count``,
    ``max``, ``usage`` (percent), ``buckets``, ``hashsize``, whether global
    knobs are writable here (``initial_netns``), ``stats``: every counter of
    ``/proc/net/stat/nf_conntrack`` summed over CPUs, keyed by the kernel's own
    header names (``drop``, ``early_drop``, ``insert_failed``, ``invalid``,
    ``search_restart``, ...), counted since boot, and ``recent``: the rise of
    ``drop``, ``early_drop`` and ``insert_failed`` since an earlier sample,
    with ``seconds`` (what it covers) and ``since``. Each call keeps a sample
    in the minion's cachedir (``conntrack/status-*.jsonl``, per network
    namespace, bounded), so separate runs and the mine compare with the same
    history. ``recent`` is null on the first sample, after a reboot and after
    a counter reset (module reload). A few small reads: it never reads the table.

    window
        Seconds to look back: the baseline is the newest sample at least this
        old, else the oldest there is. Default 300; 0 compares with the last sample.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.status
        salt-call conntrack.status window=60 --out=json
    """
    window = common.numbers.integer(window, "window", 0, WINDOW_MAX)
    flavour, spec = _spec()
    count = _read_int(runtime.kernel.knob(flavour, "count"))
    maximum = _read_int(runtime.kernel.knob(flavour, "max"))
    ret = {
        "flavour": flavour,
        "count": count,
        "max": maximum,
        "usage": round(100.0 * count / maximum, 2) if maximum else 0.0,
        "buckets": None,
        "hashsize": None,
        "initial_netns": runtime.kernel.global_writable(_root(), flavour),
        "stats": {},
        "recent": None,
    }
    for key, rel in (("buckets", runtime.kernel.knob(flavour, "buckets")), ("hashsize", spec["hashsize"])):
        try:
            ret[key] = _read_int(rel)
        except CommandExecutionError:
            pass
    if ret["buckets"] is None:
        ret["buckets"] = ret["hashsize"]
    elif ret["hashsize"] is None:
        ret["hashsize"] = ret["buckets"]
    try:
        ret["stats"] = runtime.kernel.parse_stat(_read(spec["stat"]))
    except (OSError, ValueError):
        log.debug("conntrack: no stat file at %s", _path(spec["stat"]))
    ret["recent"] = _recent(ret["stats"], window)
    return ret


def check(warning=75, critical=90, window=300):
    """
    A verdict on the table: ``ok``, ``warning`` or ``critical``, with reasons.

    Usage past ``warning``/``critical`` percent raises the verdict. Drops count
    only while they are current: packets dropped (``drop``) within the last
    ``window`` seconds make it critical, entries evicted early (``early_drop``)
    a warning. Drops since boot that are all older are a note, so a host that
    overflowed once and recovered is ``ok`` again. The reasons say how many
    happened in the window and since boot. On the very first sample there is
    nothing to compare with, and the counters since boot count as current.
    The same rules and words as the fleet runner and the beacon.

    warning
        Usage percent that makes the verdict ``warning``. Default 75 (node_exporter's alert).

    critical
        Usage percent that makes the verdict ``critical``. Default 90.

    window
        Seconds of drops that count as current. Default 300.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.check
        salt '*' conntrack.check warning=60 critical=80 window=60
    """
    warning = common.numbers.number(warning, "warning", 0, 100)
    critical = common.numbers.number(critical, "critical", 0, 100)
    if warning > critical:
        raise SaltInvocationError(f"warning ({warning}) must not be above critical ({critical})")
    st = status(window=window)
    judged = report.verdict.assess(st, warning, critical)
    return {
        **judged,
        "count": st["count"],
        "max": st["max"],
        "drop": st["stats"].get("drop", 0),
        "early_drop": st["stats"].get("early_drop", 0),
        "recent": st["recent"],
    }


# ---------------------------------------------------------------------------
# Sizing


def _host_arch():
    return runtime.sizing.arch_bits(__grains__.get("cpuarch") or os.uname().machine)


def _size(ram, arch, hash_ratio, flavour, st):
    """``max``, ``hashsize`` and the rule that gave the buckets."""
    ram_bytes = runtime.sizing.host_ram(_root()) if ram is None else runtime.sizing.parse_ram(ram)
    bits = _host_arch() if arch is None else common.numbers.integer(arch, "arch", 32, 64)
    if bits not in (32, 64):
        raise SaltInvocationError(f"arch must be 32 or 64, got {bits}")
    if hash_ratio is None:
        ratio, why = runtime.sizing.kernel_ratio(_kernel_release(), flavour)
    else:
        ratio = common.numbers.integer(hash_ratio, "hash_ratio", 1, 64)
        why = f"hash_ratio={ratio} given: buckets = max / {ratio}"
    maximum = runtime.sizing.ceiling(ram_bytes, bits)
    hashsize, bucket_rule = runtime.sizing.buckets_for(maximum, ratio, why, st and st["hashsize"])
    return ram_bytes, bits, maximum, hashsize, bucket_rule


def recommend(ram=None, arch=None, hash_ratio=None):
    """
    The table size this host should have, what it costs, and whether to change.

    ``max`` follows the classic rule ``RAMSIZE / 16384 / (ARCH / 32)`` (64 GiB on
    64-bit gives 2097152). ``hashsize`` (the buckets) follows the running
    kernel's own ratio: ``max`` from 5.15 on (one entry per bucket), ``max / 4``
    on nf_conntrack before 5.15, ``max / 8`` on 2.6-era ip_conntrack; it is
    never fewer than the buckets the host has now. ``bucket_rule`` says which
    rule applied. ``memory_bytes`` is the unswappable kernel memory that size
    costs: ``max`` entries of the conntrack slab object (size read from
    ``/proc/slabinfo``) plus one pointer per bucket. ``rules`` says which rule
    produced each number.

    ram
        RAM to size for, in bytes or with a unit (``64G``). Default: this host's MemTotal.

    arch
        Pointer width in bits, 32 or 64. Default: this host's.

    hash_ratio
        Entries per hash bucket, 1 to 64, instead of the kernel's own ratio
        (8 is the classic advice where memory is short).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.recommend
        salt '*' conntrack.recommend ram=64G arch=64
        salt '*' conntrack.recommend hash_ratio=8
    """
    flavour = _flavour() or _loadable() or "nf_conntrack"
    st = status() if _flavour() else None
    ram_bytes, bits, maximum, hashsize, bucket_rule = _size(ram, arch, hash_ratio, flavour, st)
    entry_size = runtime.sizing.entry_size(_root(), flavour)
    pointer = bits // 8
    ret = {
        "ram": ram_bytes,
        "arch": bits,
        "max": maximum,
        "hashsize": hashsize,
        "bucket_rule": bucket_rule,
        "entry_size": entry_size,
        "memory_bytes": None if entry_size is None else maximum * entry_size + hashsize * pointer,
        "rules": {
            "max": runtime.sizing.MAX_RULE,
            "hashsize": bucket_rule,
            "memory": runtime.sizing.memory_rule(entry_size, flavour, pointer),
        },
        "current": None,
        "needs_change": None,
        "reasons": [],
    }
    if st is None:
        ret["reasons"].append("conntrack is not loaded: nothing to compare with")
        return ret
    ret["current"] = {"max": st["max"], "hashsize": st["hashsize"], "count": st["count"]}
    runtime.sizing.compare(ret, st)
    return ret


# ---------------------------------------------------------------------------
# Timeouts


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
    flavour, _ = _spec()
    return {short: _read_int(rel) for short, rel in sorted(runtime.kernel.timeout_files(_root(), flavour).items())}


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
    spec = runtime.kernel.FLAVOURS[name]
    ret = {short: spec["sysctl_prefix"] + spec["prefix"] + short for short in ("max", "buckets", "count", "expect_max")}
    for short, rel in runtime.kernel.timeout_files(_root(), name).items():
        ret[short] = spec["sysctl_prefix"] + os.path.basename(rel)
    return ret


# ---------------------------------------------------------------------------
# The table: one streaming pass (parsing lives in saltext_conntrack.runtime.table)


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
        counted = runtime.table.walk(path, flavour, top=top)
    except OSError as err:
        raise CommandExecutionError(f"cannot read the conntrack table {path}: {err}") from err
    return runtime.table.breakdown(counted, top)


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
    return __salt__["conntrack_fw.dependents"]()


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


def _require_global(flavour, what):
    if not runtime.kernel.global_writable(_root(), flavour):
        raise CommandExecutionError(
            f"{what} is global to the kernel and read-only in this network namespace: "
            "set it from the initial namespace (the host itself)"
        )


def _check_ceiling(value, what, force):
    ceiling = runtime.sizing.ceiling(runtime.sizing.host_ram(_root()), _host_arch())
    if value > ceiling and not force:
        raise SaltInvocationError(
            f"{what} {value} is above this host's ceiling {ceiling} ({runtime.sizing.MAX_RULE}); "
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
    value, force, test = (
        common.numbers.integer(value, "max", 1, runtime.kernel.INT_MAX),
        _flag(force, "force"),
        _flag(test, "test"),
    )
    flavour, _ = _spec()
    _require_global(flavour, "max")
    _check_ceiling(value, "max", force)
    count = _read_int(runtime.kernel.knob(flavour, "count"))
    if value < count and not force:
        raise SaltInvocationError(
            f"max {value} is below the {count} entries the table holds now: it would be full at "
            "once and drop every new flow; pass force=True to set it anyway"
        )
    old = _read_int(runtime.kernel.knob(flavour, "max"))
    if test or old == value:
        return {"old": old, "new": value}
    return {"old": old, "new": _write_knob(runtime.kernel.knob(flavour, "max"), value)}


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
    value, force, test = (
        common.numbers.integer(value, "buckets", 1, runtime.kernel.HASHSIZE_MAX),
        _flag(force, "force"),
        _flag(test, "test"),
    )
    flavour, spec = _spec()
    _require_global(flavour, "buckets")
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
    name, test = common.numbers.text(name, "name", 64), _flag(test, "test")
    flavour, _ = _spec()
    files = runtime.kernel.timeout_files(_root(), flavour)
    if name not in files:
        raise SaltInvocationError(f"unknown conntrack timeout {name!r}; known: {', '.join(sorted(files))}")
    seconds = common.numbers.integer(seconds, "seconds", 1, runtime.kernel.TIMEOUT_MAX)
    old = _read_int(files[name])
    if test or old == seconds:
        return {"old": old, "new": seconds}
    return {"old": old, "new": _write_knob(files[name], seconds)}


# ---------------------------------------------------------------------------
# Beyond one table: every namespace, and values undone behind our back


def namespaces():
    """
    Every network namespace on this host with its own conntrack numbers.

    Named ones (``/run/netns``), container runtimes' bind mounts
    (``/run/docker/netns``) and every namespace only a process holds
    (``/proc/PID/ns/net``: Docker, Kubernetes, LXC), one entry per inode:
    ``inode``, ``initial``, ``names``, ``owner`` (``pid``, ``process``,
    ``runtime`` and ``container`` from the process's cgroup), ``count``,
    ``usage`` (of the one global max, against which each namespace's own
    count is checked), ``drop``, ``early_drop``, ``insert_failed``, ``error``;
    fullest first. Reads each namespace's stat file, never a table.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.namespaces --out=json
    """
    flavour, _ = _spec()
    return runtime.namespaces.survey(_root(), flavour, _read_int(runtime.kernel.knob(flavour, "max")))


def drift():
    """
    Runtime values against what boot will set and what ``conntrack.tuned`` last set.

    Compares ``max``, ``buckets`` and every timeout with the sysctl files boot
    applies (systemd-sysctl order) and with the values ``conntrack.tuned``
    recorded in the minion cachedir. Returns ``differences`` (each ``key``,
    ``runtime``, ``boot``, ``boot_file``, ``tuned``, ``differs_from`` and a
    likely ``cause``: a module reload back to the kernel default, kube-proxy, a
    boot file, a runtime write), ``recorded_at`` and ``checked`` (the keys read).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.drift
    """
    flavour, _ = _spec()
    return persistence.drift.report(_root(), flavour, __opts__["cachedir"], __grains__.get("num_cpus"))


# ---------------------------------------------------------------------------
# Diagnosis and Prometheus (logic in saltext_conntrack.report)

TEXTFILE = "/var/lib/prometheus/node-exporter/saltext_conntrack.prom"


def _diagnosis_facts(root):
    """What the findings are judged on; a fact that cannot be read is a note, not a failure."""
    notes = []

    def ask(fun):
        try:
            return __salt__[fun]()
        except CommandExecutionError as err:
            notes.append(f"{fun}: {err}")
            return None

    return {
        "status": __salt__["conntrack.status"](),
        "recommend": ask("conntrack.recommend"),
        "timeouts": ask("conntrack.timeouts"),
        "names": ask("conntrack.sysctl_names"),
        "dependents": ask("conntrack.dependents"),
        "host": {
            **report.diagnosis.host_facts(root),
            "namespaces": ask("conntrack.namespaces"),
            "self_inode": runtime.namespaces.self_inode(root),
        },
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
    walk = common.numbers.boolean(walk, "walk")
    if sample is not None:
        if not walk:
            raise SaltInvocationError("sample needs walk=True: without the walk nothing is sampled")
        sample = common.numbers.integer(sample, "sample", 1, 10**10)
    top = common.numbers.integer(top, "top", 1, 100)
    root = common.paths.root_of(__opts__)
    return report.diagnosis.run(root, _diagnosis_facts(root), walk=walk, sample=sample, top=top)


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
    root = common.paths.root_of(__opts__)
    real = report.prometheus.target(root, path)
    result = diagnose(walk=walk, sample=sample, top=top)
    text = report.prometheus.render(result, top, time.time())
    common.files.atomic_write(root, real, text, 0o644)
    return {
        "path": path,
        "written": real,
        "bytes": len(text.encode()),
        "findings": [f["id"] for f in result["findings"]],
        "walk": result["walk"],
    }
