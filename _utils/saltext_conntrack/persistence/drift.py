"""Drift: the runtime values against what boot will set and what ``conntrack.tuned`` last set.

A value can be undone with no file changing: a module reload (``service
iptables restart`` on RHEL with ``IPTABLES_MODULES_UNLOAD``) puts every knob
back to the kernel default, and another agent can write a sysctl at runtime
(kube-proxy sets ``nf_conntrack_max`` and ``tcp_timeout_established`` when it
starts). Each difference is reported with its likely cause.
"""

import json
import os
import time

from saltext_conntrack.common import files, numbers, paths
from saltext_conntrack.persistence import sysctl_boot
from saltext_conntrack.runtime import kernel

RECORD = "tuned.json"
# Kernel defaults that a module reload restores (domain.md, "Timeout defaults").
DEFAULT_TIMEOUTS = {
    "tcp_timeout_established": 432000,
    "tcp_timeout_syn_sent": 120,
    "tcp_timeout_syn_recv": 60,
    "tcp_timeout_fin_wait": 120,
    "tcp_timeout_close_wait": 60,
    "tcp_timeout_last_ack": 30,
    "tcp_timeout_time_wait": 120,
    "tcp_timeout_close": 10,
    "udp_timeout": 30,
    "udp_timeout_stream": 120,
    "icmp_timeout": 30,
    "generic_timeout": 600,
}
KUBE_PROXY_ESTABLISHED = 86400


def record_path(cachedir):
    return os.path.join(cachedir, "conntrack", RECORD)


def record(cachedir, values, now=None):
    """Keep ``{sysctl key: int}`` as what ``conntrack.tuned`` set, atomically."""
    path = record_path(cachedir)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    data = {"set_at": time.time() if now is None else now, "values": {k: int(v) for k, v in values.items()}}
    files.atomic_write(os.path.dirname(path), path, json.dumps(data, sort_keys=True) + "\n", 0o600)


def _checked(data):
    """``(values, set_at)`` from a record of the right shape, or ValueError (the file is then set aside)."""
    set_at = data["set_at"]
    if isinstance(set_at, bool) or not isinstance(set_at, (int, float)) or not 0 <= set_at < 2**40:
        raise ValueError("set_at is not a time")
    values = data["values"]
    if not isinstance(values, dict) or len(values) > 256:
        raise ValueError("values is not a mapping of at most 256 knobs")
    for key, value in values.items():
        if not str(key).startswith("net.") or isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{numbers.shown(key, 60)} is not a recorded sysctl")
        if not 0 <= value < 2**63:
            raise ValueError(f"{numbers.shown(key, 60)} is out of range")
    return values, float(set_at)


def recorded(cachedir):
    """``(values, set_at)`` last recorded, or ``({}, None)``; a corrupt record is set aside, never raises."""
    return files.load_own(record_path(cachedir), _checked, "drift record") or ({}, None)


def _suffix(key):
    return key.rsplit("conntrack_", 1)[-1]


def _kube_proxy_max(cpus):
    return max(32768 * cpus, 131072)


KERNEL_DEFAULT = (
    "the kernel default: the module was reloaded (an iptables restart with "
    "IPTABLES_MODULES_UNLOAD=yes) or the value was never applied after boot"
)


def is_kernel_default(key, value, buckets=None):
    """Whether ``value`` is what nf_conntrack sets ``key`` to when it loads.

    Timeouts have fixed defaults. The max is derived from the hash table at
    load: one entry per bucket (5.15 and later, hashsize from RAM) or eight
    (older kernels, or ``hashsize=`` given in modprobe.d), so a max of 1 or 8
    times the runtime buckets is what a load gives. Buckets depend on RAM
    and options: never called a default.
    """
    knob = _suffix(key)
    if knob in DEFAULT_TIMEOUTS:
        return DEFAULT_TIMEOUTS[knob] == value
    return knob == "max" and bool(buckets) and value in (buckets, 8 * buckets)


def likely_cause(key, runtime, boot, tuned, cpus, buckets=None):
    """One sentence on why ``runtime`` differs from what was wanted."""
    knob = _suffix(key)
    if knob in DEFAULT_TIMEOUTS and is_kernel_default(key, runtime):
        return KERNEL_DEFAULT
    if (knob == "tcp_timeout_established" and runtime == KUBE_PROXY_ESTABLISHED) or (
        knob == "max" and cpus and runtime == _kube_proxy_max(cpus)
    ):
        return "kube-proxy's value: kube-proxy sets this knob when it starts"
    if is_kernel_default(key, runtime, buckets):
        return KERNEL_DEFAULT
    if boot is not None and str(runtime) == str(boot["value"]):
        return f"what boot sets ({boot['file']}): re-applied after {tuned} was set, e.g. by sysctl --system"
    return "written at runtime by another agent or by hand (sysctl -w)"


def compare(runtime, boot, tuned, cpus=None):
    """Every knob whose runtime value differs from boot or from the tuned record.

    ``runtime``: ``{sysctl key: int}``; ``boot``: ``sysctlconf.boot_values``;
    ``tuned``: ``{sysctl key: int}`` recorded by ``conntrack.tuned``.
    Returns a list of ``{key, runtime, boot, boot_file, tuned, differs_from, cause}``.
    """
    found = []
    for key in sorted(runtime):
        now = runtime[key]
        buckets = runtime.get(key.rsplit("conntrack_", 1)[0] + "conntrack_buckets")
        at_boot = boot.get(key)
        wanted = tuned.get(key)
        differs = []
        if wanted is not None and now != wanted:
            differs.append("tuned")
        if at_boot is not None and str(now) != str(at_boot["value"]):
            differs.append("boot")
        if not differs:
            continue
        if wanted is not None and now != wanted:
            cause = likely_cause(key, now, at_boot, wanted, cpus, buckets)
        elif is_kernel_default(key, now, buckets):
            cause = f"{KERNEL_DEFAULT}; boot sets {at_boot['value']} ({at_boot['file']})"
        else:
            cause = f"set at runtime; boot will set {at_boot['value']} ({at_boot['file']}) instead"
        found.append(
            {
                "key": key,
                "runtime": now,
                "boot": None if at_boot is None else at_boot["value"],
                "boot_file": None if at_boot is None else at_boot["file"],
                "tuned": wanted,
                "differs_from": differs,
                "cause": cause,
            }
        )
    return found


def runtime_values(root, flavour):
    """``{sysctl key: int}`` of max, buckets and every timeout as the kernel has them now."""
    spec = kernel.FLAVOURS[flavour]
    rels = [kernel.knob(flavour, "max"), kernel.knob(flavour, "buckets"), *kernel.timeout_files(root, flavour).values()]
    values = {}
    for rel in rels:
        try:
            with open(paths.join(root, rel), encoding="ascii") as fh:
                values[spec["sysctl_prefix"] + os.path.basename(rel)] = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # buckets is absent on the oldest kernels
    return values


def report(root, flavour, cachedir, cpus=None):
    """What ``conntrack.drift`` returns: ``differences``, ``recorded_at`` and ``checked``."""
    spec = kernel.FLAVOURS[flavour]
    runtime = runtime_values(root, flavour)
    tuned, set_at = recorded(cachedir)
    boot = sysctl_boot.boot_values(root, spec["sysctl_prefix"] + spec["prefix"])
    return {
        "differences": compare(runtime, boot, tuned, cpus),
        "recorded_at": None if set_at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(set_at)),
        "checked": sorted(runtime),
    }
