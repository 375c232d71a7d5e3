"""Findings from the cheap facts: counters, sizing, boot files, firewall rules, other namespaces.

Each finding has an ``id``, a ``severity``, the ``evidence`` it saw, ``why``
in one sentence, a ``fix`` (an SLS snippet for this extension's states, or a
firewall snippet to review: never applied here) and the ``side_effects`` of
that fix. None of these needs the table walk (see ``walk_findings``).
"""

import os
import re
import shlex
from typing import TypedDict

import yaml

from saltext_conntrack.persistence import drift, sysctl_boot

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the same text, a fifth of the time
_LOAD_LIST = re.compile(r"^\s*IP6?TABLES_SYSCTL_LOAD_LIST\s*=\s*(.*?)\s*$", re.M)

NOTRACK_EFFECT = (
    "notrack: these flows bypass conntrack, so NAT (masquerade, DNAT) and state rules "
    "(ct state, -m state/conntrack) no longer apply to them; accept their replies by port, "
    "and check conntrack.dependents first. conntrack.notrack reads the rules and refuses where a chain "
    "would drop them (policy drop, only a ct state established accept): accept_untracked: true then adds "
    "the 'ct state untracked' accepts in the same change"
)


def sls(state_id, function, **args):
    """An SLS snippet for one state, as text ready to paste."""
    body = {state_id: {function: [{key: value} for key, value in args.items()]}}
    return yaml.dump(body, Dumper=_DUMPER, default_flow_style=False, sort_keys=False)


class Finding(TypedDict):
    """One finding of ``conntrack.diagnose``, as every producer builds it (through :py:func:`finding`)."""

    id: str
    severity: str  # critical, warning, info
    evidence: dict
    why: str
    fix: str | None  # text to review, never applied here
    fix_type: str | None  # sls, nft, command, snippet; None without a fix
    side_effects: list[str]


def finding(ident, severity, evidence, why, fix=None, fix_type="sls", side_effects=()) -> Finding:
    return {
        "id": ident,
        "severity": severity,
        "evidence": evidence,
        "why": why,
        "fix": fix,
        "fix_type": fix_type if fix else None,
        "side_effects": list(side_effects),
    }


def pressure(status):
    """(recent block or None, usage %) of a status."""
    return status.get("recent"), status.get("usage", 0.0)


def raise_limit_fix(status, recommend):
    """The RAM formula's size; past it, twice the limit, which ``conntrack.tuned`` wants forced."""
    ceiling = (recommend or {}).get("max") or 0
    if status["max"] < ceiling:
        return sls("conntrack-size", "conntrack.tuned", max=ceiling, buckets="auto")
    return sls("conntrack-size", "conntrack.tuned", max=2 * status["max"], buckets="auto", force=True)


def memory_effect(status, recommend):
    entry = (recommend or {}).get("entry_size")
    effects = [
        f"every entry costs {entry} bytes of unswappable kernel memory (/proc/slabinfo)"
        if entry
        else "every entry costs one unswappable conntrack slab object (256-384 bytes)"
    ]
    if status["max"] >= ((recommend or {}).get("max") or 0):
        effects.append(
            "the limit is already at this host's RAM ceiling: raising it is forced; "
            "first fix what fills the table (diagnose with the walk)"
        )
    return effects


def counter_findings(status, recommend):
    """Drops, early drops and insert failures: now (``recent``) or only since boot."""
    recent, usage = pressure(status)
    stats = status.get("stats") or {}
    found = []
    if recent is None:
        if stats.get("drop"):
            found.append(
                finding(
                    "drops_since_boot",
                    "warning",
                    {"drop_since_boot": stats["drop"], "usage": usage},
                    "Packets were dropped for a full table at some time since boot; this status has no earlier "
                    "sample, so whether it is still happening is unknown: run it again to see the rise.",
                    raise_limit_fix(status, recommend),
                    side_effects=memory_effect(status, recommend),
                )
            )
        return found
    seconds = recent.get("seconds")
    if recent.get("drop"):
        found.append(
            finding(
                "drops_rising",
                "critical",
                {"drop": recent["drop"], "seconds": seconds, "drop_since_boot": stats.get("drop"), "usage": usage},
                f"The table is full now: {recent['drop']} packets of new flows were dropped in the last {seconds} s.",
                raise_limit_fix(status, recommend),
                side_effects=memory_effect(status, recommend),
            )
        )
    if recent.get("early_drop"):
        found.append(
            finding(
                "early_drop_rising",
                "warning",
                {"early_drop": recent["early_drop"], "seconds": seconds, "usage": usage},
                "The table sits at its limit: the kernel evicts unassured entries to admit new flows.",
                raise_limit_fix(status, recommend),
                side_effects=memory_effect(status, recommend),
            )
        )
    if recent.get("insert_failed"):
        found.append(
            finding(
                "insert_failed_rising",
                "warning",
                {"insert_failed": recent["insert_failed"], "seconds": seconds, "buckets": status.get("buckets")},
                "Inserts lose races (parallel packets of one new flow, typically DNS A and AAAA over one "
                "socket, or lookups during a resize) and those packets are dropped.",
                sls("conntrack-buckets", "conntrack.tuned", buckets=status["max"]),
                side_effects=["buckets are global: set them from the host, not a container's namespace"],
            )
        )
    return found


def sizing_findings(status, recommend):
    """The limit against this host's RAM; the hash chains against the limit."""
    found = []
    recent, usage = pressure(status)
    pressed = usage >= 90 or bool(recent and (recent.get("drop") or recent.get("early_drop")))
    if recommend and recommend.get("max") and status["max"] < recommend["max"]:
        severity = "critical" if pressed else "warning" if usage >= 75 else "info"
        found.append(
            finding(
                "limit_low",
                severity,
                {"max": status["max"], "recommended": recommend["max"], "ram": recommend.get("ram"), "usage": usage},
                f"The limit {status['max']} is below the {recommend['max']} this host's RAM supports "
                "(RAMSIZE / 16384 / (ARCH / 32)).",
                sls("conntrack-size", "conntrack.tuned", max=recommend["max"], buckets="auto"),
                side_effects=memory_effect(status, recommend),
            )
        )
    buckets = status.get("buckets")
    if buckets:
        ratio = round(status["max"] / buckets, 2)
        troubled = bool(recent and (recent.get("insert_failed") or recent.get("early_drop")))
        if ratio > 8 or (ratio > 4 and troubled):
            found.append(
                finding(
                    "hash_chains_long",
                    "warning" if ratio > 8 or troubled else "info",
                    {
                        "max": status["max"],
                        "buckets": buckets,
                        "max_per_bucket": ratio,
                        "count_per_bucket": round(status["count"] / buckets, 2),
                    },
                    f"A full table puts {ratio} entries in each hash chain, and every packet walks its chain.",
                    sls("conntrack-buckets", "conntrack.tuned", buckets=status["max"]),
                    side_effects=[f"{status['max']} buckets cost {8 * status['max']} bytes of kernel memory"],
                )
            )
    return found


def persistence_findings(status, timeouts, names, facts):
    """Runtime values boot will not set, and iptables restarts that reset them."""
    boot = facts.get("boot") or {}
    shorts = {}
    for short, value in {"max": status.get("max"), "buckets": status.get("buckets"), **(timeouts or {})}.items():
        key = (names or {}).get(short)
        if value is not None and key is not None:
            shorts[sysctl_boot.canonical(key)] = (short, value)
    runtime = {key: value for key, (_, value) in shorts.items()}
    # Against boot files: the drift core's comparison (no tuned record here).
    drifted = drift.compare(runtime, boot, {})
    # No boot line at all: a timeout away from the kernel default is lost at reboot.
    for key, value in sorted(runtime.items()):
        default = drift.DEFAULT_TIMEOUTS.get(key.rsplit("conntrack_", 1)[-1])
        if key not in boot and default is not None and value != default:
            drifted.append(
                {
                    "key": key,
                    "runtime": value,
                    "boot": None,
                    "boot_file": None,
                    "tuned": None,
                    "differs_from": ["default"],
                    "cause": f"set at runtime; boot leaves the default {default}",
                }
            )
    found = []
    if drifted:
        keep = {shorts[d["key"]][0]: d["runtime"] for d in drifted}
        args = {k: keep.pop(k) for k in ("max", "buckets") if k in keep}
        if keep:
            args["timeouts"] = keep
        found.append(
            finding(
                "not_persisted",
                "warning",
                {"values": drifted},
                "The running values are not what boot will set: a reboot silently undoes them.",
                sls("conntrack-persist", "conntrack.tuned", **args),
                side_effects=[
                    "persisting keeps today's values; if boot's are the right ones, run `sysctl --system` instead"
                ],
            )
        )
    found.extend(_iptables_findings(facts.get("iptables_configs") or {}, status))
    return found


def _iptables_findings(configs, status):
    found = []
    token = ".ip_conntrack" if status.get("flavour") == "ip_conntrack" else ".nf_conntrack"
    for host_path, text in sorted(configs.items()):
        values = _LOAD_LIST.findall(text)
        current = values[-1].strip("\"'") if values else ""
        if token.lstrip(".") in current:
            continue
        wanted = " ".join(filter(None, [current, token]))
        key = "IP6TABLES_SYSCTL_LOAD_LIST" if "ip6tables" in host_path else "IPTABLES_SYSCTL_LOAD_LIST"
        found.append(
            finding(
                "iptables_restart_resets",
                "warning",
                {"file": host_path, key: current or None},
                f"`service iptables restart` reloads conntrack and {host_path} does not re-apply its "
                "sysctls, so the limit and timeouts fall back to the kernel defaults.",
                sls(host_path, "conntrack.iptables_config", settings={key: wanted}),
                side_effects=[
                    "conntrack.tuned with survive_reload (its default) keeps this list too; use one of the two"
                ],
            )
        )
    return found


def dependents_finding(status, dependents):
    """Tracking many entries while no rule needs conntrack."""
    recent, usage = pressure(status)
    if dependents is None or dependents or not (usage >= 50 or (recent and recent.get("drop"))):
        return []
    snippet = (
        "# review: stop tracking everything in this namespace (no rule here needs it)\n"
        "table inet conntrack_off {\n"
        "  chain pre { type filter hook prerouting priority -300; notrack; }\n"
        "  chain out { type filter hook output priority -300; notrack; }\n"
        "}\n"
    )
    return [
        finding(
            "no_dependents",
            "warning",
            {"count": status["count"], "usage": usage, "dependents": 0},
            "No firewall rule here needs conntrack (conntrack.dependents is empty), yet the table holds "
            f"{status['count']} entries ({usage}%).",
            snippet,
            fix_type="nft",
            side_effects=[
                NOTRACK_EFFECT,
                "dependents reads this network namespace's rules and the saved rules files only: "
                "check the host and every container's namespace before exempting everything",
            ],
        )
    ]


def _enter(row, where, owner):
    """The shell prefix that runs a command in the namespace; every name shell-quoted (a netns
    name is whatever its creator chose: ``blue;reboot`` stays one word)."""
    if row["names"]:
        return f"ip netns exec {shlex.quote(os.path.basename(where))} "
    pid = owner.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else shlex.quote(str(pid))
    return f"nsenter -t {pid} -n "


def namespace_findings(status, facts):
    """Another namespace (a container, a router) near the global limit: its drops never
    show in this namespace's counters, and its own table holds entries against the one max."""
    found = []
    for row in facts.get("namespaces") or []:
        if row.get("inode") == facts.get("self_inode") or row.get("usage") is None or row["usage"] < 90:
            continue
        where = row["names"][0] if row["names"] else f"pid {(row.get('owner') or {}).get('pid')}"
        owner = row.get("owner") or {}
        who = f"{owner['runtime']} container {owner['container'][:12]}" if owner.get("container") else where
        found.append(
            finding(
                "namespace_full",
                "critical",
                {k: row.get(k) for k in ("inode", "names", "owner", "count", "usage", "drop")} | {"max": status["max"]},
                f"network namespace {who} holds {row['count']} entries, {row['usage']}% of the global max "
                f"{status['max']}: new flows there are dropped once it reaches it.",
                "# look inside it, then fix what fills it or raise the one global max:\n"
                + _enter(row, where, owner)
                + "salt-call --local conntrack.diagnose\n",
                fix_type="command",
            )
        )
    return found
