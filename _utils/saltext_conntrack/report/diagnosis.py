"""Why the table is full, whether it still is, and which fix fits.

``findings(...)`` turns what the execution module gathered (status,
recommendation, timeouts, dependents, boot files: ``host_findings``) and,
optionally, one walk of the table (``table.Walk``: ``walk_findings``) into
findings, worst first.
"""

import time

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import files, paths
from saltext_conntrack.persistence import sysctl_boot
from saltext_conntrack.report import host_findings, trend_findings, walk_findings
from saltext_conntrack.runtime import namespaces, table

SEVERITY = {"critical": 3, "warning": 2, "info": 1}
# Every id a finding can have, in the order findings of one severity are
# listed: what is happening now, then its cause in the table, then sizing,
# then what will go wrong later. The textfile exports one series per id, so
# the label set stays fixed.
IDS = (
    "drops_rising",
    "namespace_full",
    "filling",
    "unreplied_udp_port",
    "time_wait_churn",
    "idle_established",
    "no_dependents",
    "early_drop_rising",
    "insert_failed_rising",
    "insert_clash",
    "limit_low",
    "hash_chains_long",
    "drops_since_boot",
    "not_persisted",
    "iptables_restart_resets",
    "top_source",
    "top_destination",
    "top_zone",
)
# The findings judged on the stat counters: unknown (not absent) where no source could read them.
COUNTER_IDS = ("drops_rising", "early_drop_rising", "insert_failed_rising", "hash_chains_long", "drops_since_boot")
# What ``gather`` asks its readers for.
READERS = (
    "conntrack.recommend",
    "conntrack.timeouts",
    "conntrack.sysctl_names",
    "conntrack_fw.dependents",
    "conntrack.namespaces",
)
IPTABLES_CONFIGS = ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config")


def host_facts(root):
    """What boot will set and how iptables restarts behave, read under ``root``."""
    configs = {}
    for host_path in IPTABLES_CONFIGS:
        try:
            text = files.read_or_none(paths.contained(root, paths.join(root, host_path)))
        except CommandExecutionError:
            continue
        if text is not None:
            configs[host_path] = text
    return {"boot": sysctl_boot.boot_values(root), "iptables_configs": configs}


def asker(readers, notes):
    """``ask(fun)``: ``readers[fun]()``, or None with the reader's CommandExecutionError in ``notes``."""

    def ask(fun):
        try:
            return readers[fun]()
        except CommandExecutionError as err:
            notes.append(f"{fun}: {err}")
            return None

    return ask


def gather(root, status, readers):
    """What the findings are judged on: ``status``, then what ``readers`` (``__salt__``) answer.

    A fact that cannot be read is a note, not a failure: its reader's
    CommandExecutionError goes to ``notes`` under the reader's name.
    """
    notes = []
    ask = asker(readers, notes)
    return {
        "status": status,
        "recommend": ask("conntrack.recommend"),
        "timeouts": ask("conntrack.timeouts"),
        "names": ask("conntrack.sysctl_names"),
        "dependents": ask("conntrack_fw.dependents"),
        "host": {
            **host_facts(root),
            "namespaces": ask("conntrack.namespaces"),
            "self_inode": namespaces.self_inode(root),
        },
        "notes": notes,
    }


def findings(status, recommend, timeouts, names, dependents, facts, counted=None):
    """Every finding for one host, worst first; walk findings only with ``counted``."""
    found = host_findings.counter_findings(status, recommend)
    clash = trend_findings.clash_finding(status)
    if clash:  # insert_failed at a table far from full: the race, not the buckets
        found = [f for f in found if f["id"] != "insert_failed_rising"] + clash
    found += trend_findings.filling_finding(status, recommend)
    found += host_findings.sizing_findings(status, recommend)
    found += host_findings.persistence_findings(status, timeouts, names, facts)
    found += host_findings.dependents_finding(status, dependents)
    found += host_findings.namespace_findings(status, facts)
    if counted is not None and counted.total:
        found += walk_findings.udp_finding(counted, status, timeouts, dependents)
        found += walk_findings.tcp_findings(counted, status, timeouts)
        found += walk_findings.talker_findings(counted, status)
        found += walk_findings.zone_finding(counted, status)
    found.sort(key=lambda f: (-SEVERITY[f["severity"]], IDS.index(f["id"])))
    return found


def run(root, gathered, walk=True, sample=None, top=5, timeout=None, reader=None):
    """``conntrack.diagnose``'s result from what the module ``gathered`` (see :py:func:`gather`).

    With ``walk``, one pass over the table (``sample`` entries, ``timeout``
    seconds at most) feeds the walk findings and the breakdown returned as
    ``summary``; a walk cut short says so in ``walk`` (``complete``,
    ``stopped``, ``share``: percent of the count walked) and its findings are
    those of the part walked. With a ``sources.Reader``, the walk goes over
    ctnetlink where the proc table is missing.
    """
    status = gathered["status"]
    started = time.monotonic()
    counted = None
    if walk:
        counted = table.read(
            root,
            status["flavour"],
            top=top,
            sample=sample,
            timeout=timeout,
            expected=status.get("count"),
            reader=reader,
        )
    found = findings(
        status,
        gathered.get("recommend"),
        gathered.get("timeouts"),
        gathered.get("names"),
        gathered.get("dependents"),
        gathered.get("host") or {},
        counted,
    )
    notes = list(gathered.get("notes") or [])
    if status.get("stats") is None:
        notes.append(f"conntrack.status: drops unknown: {(status.get('unknown') or {}).get('stats')}")
    return {
        "findings": found,
        "sources": {**(status.get("source") or {}), "table": counted.source if counted else None},
        "walk": _walk_block(status, counted, sample, timeout, time.monotonic() - started),
        "summary": table.breakdown(counted, top) if counted else None,
        "trend": status.get("trend"),
        "notes": notes,
    }


def _walk_block(status, counted, sample, timeout, seconds):
    count = status.get("count")
    entries = counted.total if counted else 0
    return {
        "walked": counted is not None,
        "entries": entries,
        "complete": bool(counted and counted.complete),
        "stopped": counted.stopped if counted else None,
        "share": table.share(counted, count) if counted else None,
        "sample": sample,
        "timeout": timeout,
        "count": count,
        "seconds": round(seconds, 3),
        "source": counted.source if counted else None,
    }
