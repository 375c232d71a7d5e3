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

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from saltext_conntrack import common, firewall, persistence, report, runtime
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

__virtualname__ = "conntrack"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__salt__: Mapping[str, Callable[..., Any]]
__grains__: Mapping[str, Any]


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
# What the core needs to know about this minion


def _root():
    return common.paths.root_of(__opts__)


def _flavour():
    """The active flavour name, or None when no conntrack table is loaded."""
    return runtime.kernel.active_flavour(_root())


def _host():
    release = runtime.kernel.release(_root(), __grains__.get("kernelrelease") or os.uname().release)
    bits = runtime.sizing.arch_bits(__grains__.get("cpuarch") or os.uname().machine)
    return runtime.snapshot.Host(_root(), release, bits)


def _loadable():
    """The conntrack module this kernel can load or has built in, or None."""
    return runtime.kernel.available_module(_root(), _host().release)


# ---------------------------------------------------------------------------
# Reading


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
    a counter reset (module reload). ``trend``: ``count_per_s`` (the count's
    rise, a least-squares slope over the samples of the last ``window``
    seconds), ``insert_per_s`` (new entries per second from the ``insert``
    counter, null where the kernel does not count it), ``seconds`` and
    ``samples`` covered, and ``full_in``: seconds until the count meets ``max``
    at that rise (0 when full, null when not rising or too short a history,
    ``reason`` says which). A few small reads: it never reads the table.

    window
        Seconds to look back: the baseline is the newest sample at least this
        old, else the oldest there is, and the trend fits the samples this
        young. Default 300; 0 compares with the last sample (the trend then
        fits 300 s).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.status
        salt-call conntrack.status window=60 --out=json
    """
    return runtime.snapshot.take(_host(), __opts__.get("cachedir"), window, time.time())


def check(warning=75, critical=90, window=300, full_in_warning=900, full_in_critical=120):
    """
    A verdict on the table: ``ok``, ``warning`` or ``critical``, with reasons.

    Usage past ``warning``/``critical`` percent raises the verdict. Drops count
    only while they are current: packets dropped (``drop``) within the last
    ``window`` seconds make it critical, entries evicted early (``early_drop``)
    a warning. Drops since boot that are all older are a note, so a host that
    overflowed once and recovered is ``ok`` again. The reasons say how many
    happened in the window and since boot. On the very first sample there is
    nothing to compare with, and the counters since boot count as current.
    A table that will be full within ``full_in_warning`` / ``full_in_critical``
    seconds at its current rise (``status``'s ``trend``) is a warning /
    critical before the first drop. ``notes`` says when the limit is below what
    :py:func:`recommend` sizes for the RAM: check judges the table now, recommend
    the size for the worst day. The same rules and words as the fleet runner
    and the beacon.

    warning
        Usage percent that makes the verdict ``warning``. Default 75 (node_exporter's alert).

    critical
        Usage percent that makes the verdict ``critical``. Default 90.

    window
        Seconds of drops that count as current, and of samples the trend fits. Default 300.

    full_in_warning, full_in_critical
        Seconds to full at the current rise that make the verdict ``warning``
        / ``critical``. Default 900 and 120; null turns one off.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.check
        salt '*' conntrack.check warning=60 critical=80 window=60
        salt '*' conntrack.check full_in_warning=1800 full_in_critical=300
    """
    thresholds = report.verdict.thresholds(warning, critical, full_in_warning, full_in_critical)
    st = status(window=window)
    try:  # from this status: a second status call would add a sample to the history the trend fits
        recommended = runtime.recommendation.recommend(_host(), st)
    except CommandExecutionError:  # the note is optional; the verdict must not fail for it
        recommended = None
    return report.verdict.checked(st, *thresholds, recommend=recommended)


# ---------------------------------------------------------------------------
# Sizing


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
    st = status() if _flavour() else None
    return runtime.recommendation.recommend(_host(), st, ram, arch, hash_ratio)


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
    return runtime.knobs.timeouts(_host())


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
    return runtime.knobs.sysctl_names(_host())


# ---------------------------------------------------------------------------
# The table: one streaming pass (parsing lives in saltext_conntrack.runtime.table)


def summary(top=10, timeout=5):
    """
    One streaming pass over the conntrack table: what fills it, and who.

    Totals by protocol and by TCP state, ``assured`` and ``unreplied`` counts,
    and the ``top`` talkers by source address, destination address and
    destination port (``proto/port``), original direction. Memory stays bounded
    whatever the table size: ``approximate`` is true when more distinct keys
    were seen than are kept, and top counts are then lower bounds.
    ``complete`` is false when the walk stopped at its ``timeout`` (``share``:
    percent of the count read; the totals are then of that part).

    Reading the table walks every entry in the kernel (seconds per million
    entries): use :py:func:`status` to just count.

    top
        How many talkers to list per category. Default 10.

    timeout
        Seconds the walk may take. Default 5: every entry of a table up to
        about 1.8M entries, a hash-ordered sample of a larger one. 0 reads the
        whole table whatever it costs. Progress is logged at INFO every 5 s.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.summary
        salt '*' conntrack.summary top=3
        salt '*' conntrack.summary timeout=0
    """
    top = common.numbers.integer(top, "top", 0, 10000)
    timeout = _timeout(timeout)
    host = _host()
    flavour, _ = runtime.snapshot.loaded(host)
    count = runtime.snapshot.read_int(host.root, runtime.kernel.knob(flavour, "count"))
    counted = runtime.table.read(_root(), flavour, top=top, timeout=timeout, expected=count)
    share = runtime.table.share(counted, count)
    return {**runtime.table.breakdown(counted, top), "complete": counted.complete, "share": share}


def _timeout(value):
    """A walk's budget in seconds; 0 is none."""
    return common.numbers.number(value, "timeout", 0, 86400) or None


# ---------------------------------------------------------------------------
# Firewall rules that need conntrack


def dependents():
    """
    The firewall rules that need connection tracking, each with why: state
    and conntrack matches, NAT, CT/NOTRACK, connection marks, nft ``ct``, in
    the live rulesets and the saved rules files. Returns ``rules`` (as
    ``conntrack_fw.dependents`` lists them), ``read`` (the rulesets and files
    read) and ``comment``, the answer in words, also when there is none.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.dependents
        salt '*' conntrack_fw.dependents --out=json    # the list alone
    """
    return firewall.dependents.survey(_root())


# ---------------------------------------------------------------------------
# Runtime writes


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
    host = _host()
    return runtime.knobs.apply(host, runtime.knobs.plan_max(host, value, force, test))


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
    host = _host()
    return runtime.knobs.apply(host, runtime.knobs.plan_buckets(host, value, force, test))


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
    host = _host()
    return runtime.knobs.apply(host, runtime.knobs.plan_timeout(host, name, seconds, test))


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
    fullest first. Reads each namespace's stat file, never a table. With
    ``salt-call ... --out=table``, one line per namespace (name, usage, count,
    drops, early drops, insert failures, owner or error) within 160 columns.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.namespaces --out=json
        salt-call conntrack.namespaces --out=table
    """
    host = _host()
    flavour, _ = runtime.snapshot.loaded(host)
    maximum = runtime.snapshot.read_int(host.root, runtime.kernel.knob(flavour, "max"))
    rows = runtime.namespaces.survey(host.root, flavour, maximum)
    return report.table.namespaces(rows) if report.table.wanted(__opts__, "conntrack.namespaces") else rows


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
    flavour, _ = runtime.snapshot.loaded(_host())
    return persistence.drift.report(_root(), flavour, __opts__["cachedir"], __grains__.get("num_cpus"))


# ---------------------------------------------------------------------------
# Diagnosis and Prometheus (logic in saltext_conntrack.report)

TEXTFILE = "/var/lib/prometheus/node-exporter/saltext_conntrack.prom"


def diagnose(walk=True, sample=None, top=5, timeout=5):
    """
    Why the table is full, whether it still is, and which fix fits.

    Returns ``findings``, worst first, each with ``id``, ``severity``
    (``critical``, ``warning``, ``info``), ``evidence`` (the numbers seen),
    ``why`` (one sentence), ``fix`` (an SLS snippet for ``conntrack.tuned``,
    ``conntrack.notrack`` or ``conntrack.iptables_config``, or an nft snippet
    to review, as ``fix_type`` says; never applied) and ``side_effects``.
    Also ``walk`` (``entries`` read, whether that was the whole table:
    ``complete``, else why it ``stopped``, ``sample`` or ``timeout``, and the
    ``share`` of the count read; ``seconds``), ``summary`` (as
    :py:func:`summary`, when it walked), ``trend`` (``status``'s) and
    ``notes`` (facts that could not be read).

    Without the walk: drops, early drops and insert failures rising now
    (``status``'s ``recent`` block; only since boot without it), a table
    ``filling`` (full within 900 s at the current rise, critical within 120 s),
    an ``insert_clash`` (insert failures with the table far from full: the
    NAT/DNS insert race, cured in the NAT rule or the resolver), a limit low
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

    timeout
        Seconds the walk may take; it stops there with ``complete: false``
        and the findings of the part read. Default 5 (see :py:func:`summary`);
        0 reads the whole table whatever it costs.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.diagnose
        salt '*' conntrack.diagnose walk=False
        salt '*' conntrack.diagnose sample=100000 --out=json
        salt '*' conntrack.diagnose timeout=0
    """
    walk = common.numbers.boolean(walk, "walk")
    if sample is not None:
        if not walk:
            raise SaltInvocationError("sample needs walk=True: without the walk nothing is sampled")
        sample = common.numbers.integer(sample, "sample", 1, 10**10)
    top = common.numbers.integer(top, "top", 1, 100)
    timeout = _timeout(timeout)
    root = _root()
    # Through __salt__, as from the CLI: dependents is the firewall module's.
    gathered = report.diagnosis.gather(root, __salt__["conntrack.status"](), __salt__)
    return report.diagnosis.run(root, gathered, walk=walk, sample=sample, top=top, timeout=timeout)


def textfile(path=TEXTFILE, walk=True, sample=None, top=5, timeout=2):
    """
    Write the breakdown and the findings for node_exporter's textfile collector.

    Runs :py:func:`diagnose` and writes its result atomically to ``path``, as
    ``saltext_conntrack_*`` gauges (node_exporter's own ``node_nf_conntrack_*``
    already has count, limit and the stat counters): one series per finding
    id (0 absent, 1 info, 2 warning, 3 critical), entries by protocol and TCP
    state (fixed sets), the ``top`` sources, destinations and ports, and the
    trend: ``saltext_conntrack_full_in_seconds`` (0 full, +Inf not rising,
    NaN too short a history), ``saltext_conntrack_insert_rate`` and
    ``saltext_conntrack_count_rate`` (per second).

    path
        Absolute, ending in ``.prom``, in an existing directory under
        ``conntrack.root`` (node_exporter's ``--collector.textfile.directory``).
        Default ``/var/lib/prometheus/node-exporter/saltext_conntrack.prom``
        (Debian's directory).

    walk, sample, top
        As for :py:func:`diagnose`.

    timeout
        As for :py:func:`diagnose`, default 2: the schedule runs this every
        60 s, so a big table is sampled (``saltext_conntrack_walk_complete``
        0) rather than walked whole each minute.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack.textfile
        salt '*' conntrack.textfile path=/var/lib/node_exporter/textfile/conntrack.prom sample=200000
    """
    root = _root()
    real = report.prometheus.target(root, path)
    result = diagnose(walk=walk, sample=sample, top=top, timeout=timeout)
    return report.prometheus.publish(root, path, real, result, top, time.time())
