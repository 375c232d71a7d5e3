"""What the kernel's conntrack knobs and counters say now: a few small reads, never the table."""

import collections
import logging

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files, numbers, paths
from saltext_conntrack.runtime import history, kernel, sources, trend

log = logging.getLogger(__name__)

WINDOW_MAX = 31 * 86400  # longest look back of status/check(window=...)

# Where the knobs are (``root``), which kernel reads them (``release``), its
# pointer width (``bits``) and whether ctnetlink may answer (``netlink``: None
# is auto, see ``sources``): what the loader knows from opts and grains.
Host = collections.namedtuple("Host", "root release bits netlink", defaults=(None,))


def read_bytes(root, rel):
    return files.read_kernel(paths.join(root, rel))


def read_int(root, rel):
    """The first number in a kernel file, or an error naming the file."""
    try:
        return int(read_bytes(root, rel).split()[0])
    except (OSError, ValueError, IndexError) as err:
        raise CommandExecutionError(f"cannot read a number from {paths.join(root, rel)}: {err}") from err


def loaded(host):
    """``(flavour, spec)`` of the loaded table, or an error that says why there is none."""
    name = kernel.active_flavour(host.root)
    if name is None:
        if kernel.available_module(host.root, host.release):
            raise CommandExecutionError(
                "conntrack is not loaded on this host (no nf_conntrack_max under "
                f"{paths.join(host.root, 'proc/sys/net/netfilter')}): nothing is being tracked. "
                "It loads with the first rule that needs it."
            )
        raise CommandExecutionError("this host has no connection tracking at all")
    return name, kernel.FLAVOURS[name]


def known_flavour(host):
    """The loaded flavour, else the one this kernel would load: names exist before the table does."""
    return kernel.active_flavour(host.root) or kernel.available_module(host.root, host.release) or "nf_conntrack"


def _optional_int(root, rel):
    try:
        return read_int(root, rel)
    except CommandExecutionError:
        return None


def take(host, cachedir, window, now, netns=None):
    """``conntrack.status``: counts, knobs, the stat counters and their rise since an earlier sample.

    ``source`` names where each part came from (``procfs`` or ``netlink``);
    a part no source could give is None, with the reasons in ``unknown``.
    """
    window = numbers.integer(window, "window", 0, WINDOW_MAX)
    flavour, spec = loaded(host)
    with sources.Reader(host, netns) as reader:
        count, count_source, count_reason = reader.knob(flavour, "count")
        maximum, max_source, max_reason = reader.knob(flavour, "max")
        if count is None or maximum is None:
            which = "count" if count is None else "max"
            raise CommandExecutionError(f"cannot read a number for the conntrack {which}: {count_reason or max_reason}")
        stats, stats_source, stats_reason = reader.counters(flavour)
    buckets = _optional_int(host.root, kernel.knob(flavour, "buckets"))
    hashsize = _optional_int(host.root, spec["hashsize"])
    ret = {
        "flavour": flavour,
        "count": count,
        "max": maximum,
        "usage": round(100.0 * count / maximum, 2) if maximum else 0.0,
        # Old kernels have only the module parameter, new ones only the sysctl: each stands for the other.
        "buckets": hashsize if buckets is None else buckets,
        "hashsize": buckets if hashsize is None else hashsize,
        "initial_netns": kernel.global_writable(host.root, flavour),
        "stats": stats,
        "recent": None,
        "trend": None,
        "source": {"count": count_source, "max": max_source, "stats": stats_source},
        "unknown": {"stats": stats_reason} if stats_reason else {},
    }
    if stats is None:
        log.debug("conntrack: no counters: %s", stats_reason)
    elif cachedir:
        ret["recent"], samples = history.record(cachedir, host.root, stats, now, window, count)
        ret["trend"] = trend.compute(samples, now, count, maximum, window)
    return ret
