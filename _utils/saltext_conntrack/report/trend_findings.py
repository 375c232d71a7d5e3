"""Findings about what is coming rather than what is: a table filling up, and insert clashes.

``filling``: ``status``'s ``trend`` says the table is full within the
verdict's ``full_in`` thresholds at the current rise, before the first drop.

``insert_clash``: ``insert_failed`` rises while the table is far from its
limit. That is not a full table: two packets of one new flow (typically the
A and AAAA lookups a resolver sends over one UDP socket) race through NAT and
the loser's entry cannot be inserted, so that packet is dropped and the lookup
waits for its 5 s retry. More buckets do not help; the cures are in the NAT
rule and the resolver. ``clashres`` (kernels since 5.x) counts the races the
kernel resolved by itself. At a table near its limit ``insert_failed`` keeps
its old meaning (``host_findings``'s ``insert_failed_rising``).
"""

from saltext_conntrack.report import host_findings, verdict

# Usage below which a rising insert_failed is a clash, not a table under pressure:
# the usage warning of check (node_exporter's alert).
CLASH_BELOW = 75

CLASH_FIX = (
    "# review: one of these, where the racing flows are NATed or resolved\n"
    "# iptables: let SNAT pick the source port at random, so two racing packets get two mappings\n"
    "iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE --random-fully\n"
    "# nft\n"
    "table ip nat {\n"
    "  chain postrouting { type nat hook postrouting priority 100; oifname eth0 masquerade random,fully-random; }\n"
    "}\n"
    "# glibc resolver (/etc/resolv.conf): send A and AAAA from separate sockets, or over TCP\n"
    "options single-request-reopen\n"
    "# options use-vc\n"
    "# or a node-local DNS cache (Kubernetes NodeLocal DNSCache), so lookups leave the node over TCP\n"
)


def filling_finding(
    status, recommend=None, full_in_warning=verdict.FULL_IN_WARNING, full_in_critical=verdict.FULL_IN_CRITICAL
):
    """``filling`` when the trend's ``full_in`` is within the thresholds (not when full already: drops say it)."""
    trend = status.get("trend") or {}
    level = verdict.filling_level(trend, full_in_warning, full_in_critical)
    if level == "ok" or not trend.get("full_in"):
        return []
    evidence = {
        "full_in": trend["full_in"],
        "count_per_s": trend.get("count_per_s"),
        "insert_per_s": trend.get("insert_per_s"),
        "seconds": trend.get("seconds"),
        "count": status["count"],
        "max": status["max"],
        "usage": status.get("usage"),
    }
    return [
        host_findings.finding(
            "filling",
            level,
            evidence,
            f"At the rise of {trend.get('count_per_s')} entries/s seen over {trend.get('seconds')} s the table "
            f"({status['count']}/{status['max']}) is full in {verdict.words(trend['full_in'])}, and then new "
            "flows are dropped: find what opens them (diagnose with the walk) or raise the limit before then.",
            host_findings.raise_limit_fix(status, recommend),
            side_effects=[
                "raising the limit buys time at this rise, it does not stop it",
                *host_findings.memory_effect(status, recommend),
            ],
        )
    ]


def clash_finding(status):
    """``insert_clash``: inserts racing now with the table far from full and nothing dropped for room.

    ``insert_failed`` rising is a warning (those packets were dropped);
    ``clashres`` rising alone is info: the kernel resolved every race, but the
    same traffic drops packets on kernels that cannot (before 5.x) or when
    the NAT mappings differ.
    """
    recent, usage = host_findings.pressure(status)
    if not recent or recent.get("drop") or recent.get("early_drop") or usage >= CLASH_BELOW:
        return []
    failed, resolved = recent.get("insert_failed") or 0, recent.get("clashres") or 0
    if not failed and not resolved:
        return []
    stats = status.get("stats") or {}
    seconds = recent.get("seconds")
    evidence = {
        "insert_failed": failed,
        "clashres": recent.get("clashres"),
        "seconds": seconds,
        "usage": usage,
        "insert_failed_since_boot": stats.get("insert_failed"),
        "clashres_since_boot": stats.get("clashres"),
    }
    race = (
        "not a full table but the NAT insert race: two packets of one new UDP flow (DNS A and AAAA over one "
        "socket) racing through conntrack on two CPUs"
    )
    if failed:
        why = (
            f"{failed} inserts failed in the last {seconds} s with the table at {usage}%: {race}, the loser "
            "dropped and its lookup stalled 5 s; more buckets or a higher limit do not help."
        )
    else:
        why = (
            f"{resolved} insert races in the last {seconds} s with the table at {usage}%, all resolved by the "
            f"kernel (clashres): {race}; nothing was dropped here, but kernels that cannot resolve them drop "
            "the loser and stall its lookup 5 s."
        )
    return [
        host_findings.finding(
            "insert_clash",
            "warning" if failed else "info",
            evidence,
            why,
            CLASH_FIX,
            fix_type="snippet",
            side_effects=[
                "--random-fully changes the source ports NATed flows get (some peers pin by port)",
                "single-request-reopen costs a socket per lookup; use-vc makes every lookup TCP",
            ],
        )
    ]
