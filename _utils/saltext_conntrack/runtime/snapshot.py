"""What the kernel's conntrack knobs and counters say now: a few small reads, never the table."""

import collections
import logging

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.runtime import history, kernel, trend

log = logging.getLogger(__name__)

WINDOW_MAX = 31 * 86400  # longest look back of status/check(window=...)

# Where the knobs are (``root``), which kernel reads them (``release``) and
# its pointer width (``bits``): what the loader knows from opts and grains.
Host = collections.namedtuple("Host", "root release bits")


def read_bytes(root, rel):
    with open(paths.join(root, rel), "rb") as fh:
        return fh.read()


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


def take(host, cachedir, window, now):
    """``conntrack.status``: counts, knobs, the stat counters and their rise since an earlier sample."""
    window = numbers.integer(window, "window", 0, WINDOW_MAX)
    flavour, spec = loaded(host)
    count = read_int(host.root, kernel.knob(flavour, "count"))
    maximum = read_int(host.root, kernel.knob(flavour, "max"))
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
        "stats": {},
        "recent": None,
        "trend": None,
    }
    try:
        ret["stats"] = kernel.parse_stat(read_bytes(host.root, spec["stat"]))
    except (OSError, ValueError):
        log.debug("conntrack: no stat file at %s", paths.join(host.root, spec["stat"]))
    if ret["stats"] and cachedir:
        ret["recent"], samples = history.record(cachedir, host.root, ret["stats"], now, window, count)
        ret["trend"] = trend.compute(samples, now, count, maximum, window)
    return ret
