"""Findings from one walk of the table: unreplied UDP to one port, TIME_WAIT churn,
idle ESTABLISHED entries, one source or destination holding most entries."""

import ipaddress

from saltext_conntrack.report import host_findings
from saltext_conntrack.runtime import table

# A walk finding needs this many entries and this share of the walk: a
# handful of flows is not what fills a table.
MIN_ENTRIES = 100
SHARE = 0.25
TALKER_SHARE = 0.5
IDLE_SECONDS = 3600


def _share(n, total):
    return round(n / total, 3) if total else 0.0


def _sample_note(counted, status):
    return {"walked": counted.total, "complete": counted.complete, "count": status.get("count")}


def udp_finding(counted, status, timeouts, dependents):
    """Unreplied UDP to one port (a resolver, a scan) filling the table."""
    ports = counted.ports(unreplied=True)
    top = [(key, n) for key, n in ports.most_common(5) if key[0] == "udp"]
    if not top:
        return []
    (_, port), n = top[0]
    share = _share(n, counted.total)
    if n < MIN_ENTRIES or share < SHARE:
        return []
    udp = (timeouts or {}).get("udp")
    recent, usage = host_findings.pressure(status)
    severity = "critical" if usage >= 90 or (recent and recent.get("drop")) else "warning"
    fix = host_findings.sls(
        f"conntrack-udp-{port}-untracked", "conntrack.notrack", flows=[{"proto": "udp", "port": port}], persist=True
    )
    if dependents is None or dependents:
        # Rules here read ct state: the state refuses where they would drop the untracked replies.
        fix += (
            "#   - accept_untracked: true  # needed where a chain accepts these flows only as ct state\n"
            "#                             # established,related (conntrack.notrack names the rule)\n"
        )
    fix += "# or, keeping them tracked but shorter-lived:\n" + "".join(
        "# " + line + "\n"
        for line in host_findings.sls("conntrack-udp-timeout", "conntrack.tuned", timeouts={"udp": 10}).splitlines()
    )
    return [
        host_findings.finding(
            "unreplied_udp_port",
            severity,
            {
                "port": f"udp/{port}",
                "unreplied": n,
                "share": share,
                "udp_timeout": udp,
                **_sample_note(counted, status),
            },
            f"{share:.0%} of the table is unreplied UDP to port {port}, each entry held {udp} s for "
            "a reply that never comes.",
            fix,
            side_effects=[
                host_findings.NOTRACK_EFFECT,
                _deps_note(dependents),
                "a udp timeout of 10 s also ends idle UDP streams (udp_stream is separate)",
            ],
        )
    ]


def _deps_note(dependents):
    if dependents is None:
        return "conntrack.dependents could not be read: check the rules by hand"
    return f"conntrack.dependents lists {len(dependents)} rule(s) that need conntrack here"


def tcp_findings(counted, status, timeouts):
    """TIME_WAIT churn and idle ESTABLISHED entries held by a long timeout."""
    found = []
    timeouts = timeouts or {}
    waiting = counted.count(b"tcp", b"TIME_WAIT")
    time_wait = timeouts.get("tcp_time_wait")
    if waiting >= MIN_ENTRIES and _share(waiting, counted.total) >= SHARE and (time_wait or 0) > 30:
        found.append(
            host_findings.finding(
                "time_wait_churn",
                "warning",
                {
                    "time_wait": waiting,
                    "share": _share(waiting, counted.total),
                    "tcp_time_wait": time_wait,
                    **_sample_note(counted, status),
                },
                f"{_share(waiting, counted.total):.0%} of the table is closed TCP connections waiting "
                f"{time_wait} s in TIME_WAIT: short connections churn faster than they expire.",
                host_findings.sls("conntrack-time-wait", "conntrack.tuned", timeouts={"tcp_time_wait": 30}),
                side_effects=["a retransmitted final ACK or FIN after 30 s is seen as INVALID by state rules"],
            )
        )
    established = timeouts.get("tcp_established")
    if established and established > IDLE_SECONDS:
        idle = table.idle_established(counted, established, IDLE_SECONDS)
        if idle >= MIN_ENTRIES and _share(idle, counted.total) >= SHARE:
            found.append(
                host_findings.finding(
                    "idle_established",
                    "warning",
                    {
                        "idle_over_1h": idle,
                        "share": _share(idle, counted.total),
                        "tcp_established": established,
                        "established": counted.count(b"tcp", b"ESTABLISHED"),
                        **_sample_note(counted, status),
                    },
                    f"{_share(idle, counted.total):.0%} of the table is ESTABLISHED connections idle for over an "
                    f"hour, kept by a {established} s timeout.",
                    host_findings.sls(
                        "conntrack-established", "conntrack.tuned", timeouts={"tcp_established": IDLE_SECONDS}
                    ),
                    side_effects=[
                        "a connection idle longer than 1 h loses its entry: state rules then drop "
                        "its next packet and NAT forgets it (use TCP keepalives below 1 h)"
                    ],
                )
            )
    return found


def talker_findings(counted, status):
    """One source or destination holding most entries."""
    found = []
    for key, ident, word, match in (
        ("src", "top_source", "source", "saddr"),
        ("dst", "top_destination", "destination", "daddr"),
    ):
        top = counted.talkers[key].top(1)
        if not top:
            continue
        address, n = top[0][0].decode("ascii", "replace"), top[0][1]
        try:
            address = str(ipaddress.ip_address(address))  # goes into an nft rule: an address, nothing else
        except ValueError:
            continue
        share = _share(n, counted.total)
        if n < MIN_ENTRIES or share < TALKER_SHARE:
            continue
        family = "ip6" if ":" in address else "ip"
        snippet = (
            f"# review: cap the flows one {word} may hold (input, forward or output: where it passes)\n"
            "table inet conntrack_limit {\n"
            "  chain input { type filter hook input priority 0; "
            f"{family} {match} {address} ct state new ct count over {max(1000, n // 2)} drop; }}\n"
            "}\n"
        )
        found.append(
            host_findings.finding(
                ident,
                "info",
                {"address": address, "entries": n, "share": share, **_sample_note(counted, status)},
                f"One {word}, {address}, holds {share:.0%} of the table.",
                snippet,
                fix_type="nft",
                side_effects=[f"new flows of {address} above the cap are dropped; ct count needs conntrack"],
            )
        )
    return found


def zone_finding(counted, status):
    """One conntrack zone other than 0 holding most entries (the one limit is shared by every zone)."""
    top = [(zone, n) for zone, n in counted.zones.most_common(2) if zone != b"0"][:1]
    if not top:
        return []
    zone, n = top[0][0].decode(), top[0][1]
    share = _share(n, counted.total)
    if n < MIN_ENTRIES or share < TALKER_SHARE:
        return []
    return [
        host_findings.finding(
            "top_zone",
            "info",
            {"zone": int(zone), "entries": n, "share": share, **_sample_note(counted, status)},
            f"Conntrack zone {zone} holds {share:.0%} of the table: the flows a rule puts in that zone "
            "(ct zone set, CT --zone: a tenant, a VRF, an OVS or container network) fill it, and every zone "
            "counts against the one limit.",
            f"# look at what fills zone {zone}, then fix it where that zone is set:\n"
            f"conntrack -L -w {zone} | head -50\n"
            "nft list ruleset | grep -n 'ct zone'\n",
            fix_type="command",
        )
    ]
