"""Persisting conntrack sysctls: which keys and values a file may hold, the
edit plan of one sysctl file, and the later files that win over it at boot.

The line grammar and the boot order are ``sysctlconf``'s; this module only
decides what conntrack may write.
"""

import os
import re

from salt.exceptions import SaltInvocationError

from saltext_conntrack.common import numbers, paths
from saltext_conntrack.persistence import plans, sysctl_boot
from saltext_conntrack.runtime import kernel

SYSCTL_FILE = "/etc/sysctl.d/90-conntrack.conf"
# Keys a conntrack sysctl file may hold: nothing outside these namespaces.
KEY = re.compile(
    r"net\.netfilter\.nf_conntrack_[a-z0-9_]{1,64}"
    r"|net\.ipv4\.netfilter\.ip_conntrack_[a-z0-9_]{1,64}"
    r"|net\.nf_conntrack_max|net\.ipv4\.ip_conntrack_max"
)
_FLAVOUR_PREFIX = re.compile(
    r"^(net\.netfilter\.nf_conntrack_|net\.ipv4\.netfilter\.ip_conntrack_|net\.nf_conntrack_|net\.ipv4\.ip_conntrack_)"
)
# Bounds of a persisted sysctl, by the knob's name after the flavour prefix.
_BOUNDS = (
    (re.compile(r"max|expect_max"), 1, kernel.INT_MAX),
    (re.compile(r"buckets"), 1, kernel.HASHSIZE_MAX),
    (re.compile(r"[a-z0-9_]*timeout[a-z0-9_]*"), 1, kernel.TIMEOUT_MAX),
    (re.compile(r"tcp_loose|tcp_be_liberal|tcp_ignore_invalid_rst|acct|timestamp|checksum|helper"), 0, 1),
    (re.compile(r"events"), 0, 2),
    (re.compile(r"log_invalid"), 0, 255),
    (re.compile(r"tcp_max_retrans"), 0, 255),
)
# Timeout short names known on any kernel, for hosts where conntrack is not
# loaded yet (the kernel lists only the ones it has once it is).
KNOWN_TIMEOUTS = (
    "tcp_established", "tcp_syn_sent", "tcp_syn_sent2", "tcp_syn_recv", "tcp_fin_wait",
    "tcp_close_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close", "tcp_max_retrans",
    "tcp_unacknowledged", "udp", "udp_stream", "udplite", "udplite_stream", "icmp",
    "icmpv6", "generic", "sctp_closed", "sctp_cookie_wait", "sctp_cookie_echoed",
    "sctp_established", "sctp_shutdown_sent", "sctp_shutdown_recd",
    "sctp_shutdown_ack_sent", "sctp_heartbeat_sent", "dccp_request", "dccp_respond",
    "dccp_partopen", "dccp_open", "dccp_closereq", "dccp_closing", "dccp_timewait",
    "gre", "gre_stream",
)  # fmt: skip
# CentOS 5's ip_conntrack knows only these (no icmpv6, dccp, sctp, gre, udplite):
# persisting another would make `sysctl -p` fail there.
KNOWN_TIMEOUTS_IP_CONNTRACK = (
    "tcp_established", "tcp_syn_sent", "tcp_syn_recv", "tcp_fin_wait", "tcp_close_wait",
    "tcp_last_ack", "tcp_time_wait", "tcp_close", "tcp_max_retrans", "udp", "udp_stream",
    "icmp", "generic",
)  # fmt: skip


def valid_key(key):
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise SaltInvocationError(
            "not a conntrack sysctl key (net.netfilter.nf_conntrack_*, "
            f"net.ipv4.netfilter.ip_conntrack_*, net.nf_conntrack_max): {numbers.shown(key)}"
        )
    return key


def valid_value(key, value):
    """``value`` for ``key`` within that knob's bounds; a knob without known bounds is refused."""
    knob = _FLAVOUR_PREFIX.sub("", valid_key(key))
    for rx, low, high in _BOUNDS:
        if rx.fullmatch(knob):
            return numbers.integer(value, key, low, high)
    raise SaltInvocationError(
        f"{key} is not a conntrack sysctl this module knows the bounds of "
        "(max, expect_max, buckets, timeouts, tcp_loose, tcp_be_liberal, acct, events, ...)"
    )


def valid_values(values):
    plans.mapping(values, "values", "sysctl keys to integers")
    return {key: valid_value(key, value) for key, value in values.items()}


def timeout_key(short, flavour="nf_conntrack"):
    """The sysctl key of a timeout short name (``tcp_established``)."""
    proto, _, rest = short.partition("_")
    base = f"{proto}_timeout" + (f"_{rest}" if rest else "")
    return kernel.FLAVOURS[flavour]["sysctl_prefix"] + kernel.FLAVOURS[flavour]["prefix"] + base


def known_timeouts(flavour):
    return KNOWN_TIMEOUTS_IP_CONNTRACK if flavour == "ip_conntrack" else KNOWN_TIMEOUTS


def default_file(root):
    """``/etc/sysctl.d/90-conntrack.conf`` where ``/etc/sysctl.d`` exists, else ``/etc/sysctl.conf``."""
    return SYSCTL_FILE if os.path.isdir(paths.join(root, "/etc/sysctl.d")) else "/etc/sysctl.conf"


def plan(root, values, path=None, lower=True):
    """The edit of one sysctl file: only the lines of ``values``'s keys change.

    A key already there has every line rewritten in place (``-key`` keeps its
    ``-``), so a later line cannot override; a new key is appended. With
    ``lower=False`` a larger value already in the file stays.
    """
    values = valid_values(values)
    path = default_file(root) if path is None else path
    real, text, exists = plans.read(root, path, "sysctl")
    out = plans.lines(text)
    changes, seen = {}, set()
    for index, name, key, held in sysctl_boot.assignments(text):
        if key not in values:
            continue
        seen.add(key)
        if not lower and numbers.DIGITS.fullmatch(held) and int(held) >= values[key]:
            continue
        if held != str(values[key]):
            changes[key] = {"old": held, "new": str(values[key])}
            out[index] = plans.same_end(f"{name} = {values[key]}", out[index])
    missing = [key for key in values if key not in seen]
    if missing and not text.strip():
        out.append(plans.HEADER)
    for key in missing:
        changes[key] = {"old": None, "new": str(values[key])}
        out.append(f"{key} = {values[key]}\n")
    return plans.plan(path, real, text, plans.joined(out), exists, changes)


def _applied_after(root, path):
    """The sysctl files boot applies after ``path`` (host paths, in order)."""
    order = sysctl_boot.boot_files(root)
    mine = os.path.realpath(paths.join(root, path))
    at = [i for i, p in enumerate(order) if os.path.realpath(paths.join(root, p)) == mine]
    if at:
        return order[at[-1] + 1 :]
    if path == "/etc/sysctl.conf":  # not there yet: read last
        return []
    # not written yet (test mode): where its name will sort
    name = os.path.basename(path)
    return [p for p in order if p == "/etc/sysctl.conf" or os.path.basename(p) > name]


def overrides(root, values, path=None):
    """``[{file, key, value}]``: lines in files applied after ``path`` at boot that
    set one of ``values``'s keys (or its alias) to another value."""
    plans.mapping(values, "values", "sysctl keys to integers")
    path = default_file(root) if path is None else path
    plans.target(root, path, "sysctl")
    wanted = {sysctl_boot.canonical(str(k)): str(v) for k, v in values.items()}
    found = []
    for later in _applied_after(root, path):
        text = plans.read_contained(root, later)
        for _, _, key, value in sysctl_boot.assignments(text or ""):
            canon = sysctl_boot.canonical(key)
            if canon in wanted and value != wanted[canon]:
                found.append({"file": later, "key": key, "value": value})
    return found
