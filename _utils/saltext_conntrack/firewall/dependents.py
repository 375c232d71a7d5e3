"""The firewall rules that need connection tracking, live and saved.

The live rulesets come from ``iptables-save``/``ip6tables-save``/``nft list
ruleset`` found through ``commands`` (sbin searched even when PATH lacks it:
a check that "no rule needs conntrack" must not pass because the tool was not
found); the saved files are read under the root, links contained.
"""

import logging
import re

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import commands, paths
from saltext_conntrack.firewall import iptables_save
from saltext_conntrack.persistence import plans

log = logging.getLogger(__name__)

IPT_NEEDS = [
    (re.compile(r"-m state\b|--state\b"), "state match (-m state)"),
    (re.compile(r"-m conntrack\b|--ctstate\b|--ctstatus\b"), "conntrack match (-m conntrack)"),
    (re.compile(r"-j (MASQUERADE|SNAT|DNAT|REDIRECT|NETMAP)\b"), "NAT target"),
    (re.compile(r"-j CT\b"), "CT target (needs the conntrack module, even with --notrack)"),
    (re.compile(r"-j NOTRACK\b"), "NOTRACK target (needs the conntrack module)"),
    (re.compile(r"-j CONNMARK\b|-m connmark\b|-j CONNSECMARK\b"), "connection mark"),
    (re.compile(r"-m (helper|connlimit|connbytes|connlabel|cluster)\b"), "conntrack-based match"),
]
NFT_NEEDS = [
    (
        re.compile(
            r"\bct (state|status|mark|helper|label|zone|direction|original|reply|expiration|count|bytes"
            r"|packets|l3proto|protocol|id|event|timeout|expectation)\b"
        ),
        "nft ct expression",
    ),
    (re.compile(r"\bnotrack\b"), "nft notrack (needs the conntrack module)"),
    (re.compile(r"\b(masquerade|snat|dnat|redirect)\b"), "nft NAT statement"),
    (re.compile(r"\btype nat hook\b"), "nft NAT chain"),
]  # fmt: skip
SAVED_RULES = (
    "/etc/sysconfig/iptables",
    "/etc/sysconfig/ip6tables",
    "/etc/iptables/rules.v4",
    "/etc/iptables/rules.v6",
    "/etc/iptables/iptables.rules",
    "/etc/iptables/ip6tables.rules",
    "/etc/iptables/rules-save",
    "/etc/iptables/rules6-save",
    "/etc/nftables.conf",
    "/etc/sysconfig/nftables.conf",
)
LIVE = (("iptables-save",), ("ip6tables-save",), ("nft", "list", "ruleset"))


def scan_iptables(text, source):
    found = []
    for line in iptables_save.rules(text):
        rule, table = line["text"], line["table"]
        if table == "nat":
            found.append({"source": source, "table": table, "rule": rule, "why": "rule in the nat table"})
            continue
        why = next((why for pattern, why in IPT_NEEDS if pattern.search(rule)), None)
        if why:
            found.append({"source": source, "table": table, "rule": rule, "why": why})
    return found


def scan_nft(text, source):
    found, table = [], None
    for line in text.splitlines():
        stripped = line.strip()
        match = re.match(r"table (\S+ \S+|\S+) \{", stripped)
        if match:
            table = match.group(1)
            continue
        if not stripped or stripped.startswith("#"):
            continue
        why = next((why for pattern, why in NFT_NEEDS if pattern.search(stripped)), None)
        if why:
            found.append({"source": source, "table": table, "rule": stripped, "why": why})
    return found


def looks_like_nft(text):
    return re.search(r"^\s*table\s", text, re.M) is not None


def survey(root):
    """``{"rules": [{source, table, rule, why}], "read": [sources], "comment"}``: every
    rule that needs conntrack, what was read to find them, and the answer in words."""
    found, read = [], []
    for cmd in LIVE:
        if not commands.which(cmd[0]):
            continue
        try:
            proc = commands.run(list(cmd), check=False)
        except CommandExecutionError as err:
            log.debug("conntrack: %s: %s", " ".join(cmd), err)
            continue
        if proc.returncode != 0:
            log.debug("conntrack: %s failed: %s", " ".join(cmd), proc.stderr.strip())
            continue
        scan = scan_nft if cmd[0] == "nft" else scan_iptables
        found.extend(scan(proc.stdout, " ".join(cmd)))
        read.append(" ".join(cmd))
    for host_path in SAVED_RULES:
        text = plans.read_contained(root, host_path)
        if text is None:
            continue
        scan = scan_nft if looks_like_nft(text) else scan_iptables
        found.extend(scan(text, paths.join(root, host_path)))
        read.append(paths.join(root, host_path))
    return {"rules": found, "read": read, "comment": _comment(found, read)}


def _comment(found, read):
    if not read:
        return (
            "nothing to read: no iptables-save, ip6tables-save or nft answered and no saved rules "
            "file exists, so no rule was checked"
        )
    if not found:
        return f"no rule needs conntrack in {', '.join(read)}"
    sources = sorted({rule["source"] for rule in found})
    return f"{len(found)} rule(s) need conntrack, in {', '.join(sources)}"


def find(root):
    """Every rule that needs conntrack: ``[{source, table, rule, why}]``."""
    return survey(root)["rules"]
