"""saltext_conntrack.firewall.dependents: the rules that need conntrack, live and saved.

Live rulesets come from the real iptables-save and nft, run in a fresh network
namespace (``unshare -n``) so the host's own rules are neither read nor touched.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from saltext_conntrack.firewall import dependents
from tests.support.fixtures import _write
from tests.support.hosts import SAVED_RULES

NFT_RULES = """\
#!/usr/sbin/nft -f
flush ruleset

table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        # ct state established accept
        ct state established,related accept
        tcp dport 22 accept
        udp dport 53 notrack
    }
}
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }
}
"""


def in_netns(script):
    """stdout of ``script`` run as root in a new, empty network namespace."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables", path="/usr/sbin:/sbin"):
        pytest.skip("needs root, unshare and iptables")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot build a network namespace here: {probe.stderr.strip()}")
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_scan_iptables_on_a_saved_file():
    assert dependents.scan_iptables(SAVED_RULES, "/etc/sysconfig/iptables") == [
        {"source": "/etc/sysconfig/iptables", "table": "filter",
         "rule": "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT", "why": "state match (-m state)"},
        {"source": "/etc/sysconfig/iptables", "table": "filter",
         "rule": "-A INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 22 -j ACCEPT",
         "why": "conntrack match (-m conntrack)"},
        {"source": "/etc/sysconfig/iptables", "table": "filter",
         "rule": "-A FORWARD -m conntrack --ctstate INVALID -j DROP", "why": "conntrack match (-m conntrack)"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("-A OUTPUT -j CT --notrack", "CT target (needs the conntrack module, even with --notrack)"),
        ("-A OUTPUT -j NOTRACK", "NOTRACK target (needs the conntrack module)"),
        ("-A INPUT -j CONNMARK --set-mark 1", "connection mark"),
        ("-A INPUT -m connmark --mark 1 -j ACCEPT", "connection mark"),
        ("-A INPUT -p tcp -m connlimit --connlimit-above 10 -j DROP", "conntrack-based match"),
        ("-A FORWARD -j MASQUERADE", "NAT target"),
        ("-A INPUT -m statistic --mode random --probability 0.1 -j DROP", None),
        ("-A INPUT -p tcp --dport 22 -j ACCEPT", None),
    ],
)
def test_scan_iptables_reasons(rule, why):
    found = dependents.scan_iptables(f"*mangle\n{rule}\nCOMMIT\n", "x")
    assert [f["why"] for f in found] == ([why] if why else [])


def test_scan_iptables_every_nat_rule_needs_conntrack():
    text = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j ACCEPT\nCOMMIT\n"
    assert dependents.scan_iptables(text, "x") == [
        {
            "source": "x",
            "table": "nat",
            "rule": "-A PREROUTING -p tcp --dport 80 -j ACCEPT",
            "why": "rule in the nat table",
        }
    ]


def test_scan_nft_on_a_saved_file():
    assert dependents.scan_nft(NFT_RULES, "/etc/nftables.conf") == [
        {"source": "/etc/nftables.conf", "table": "inet filter", "rule": "ct state established,related accept",
         "why": "nft ct expression"},
        {"source": "/etc/nftables.conf", "table": "inet filter", "rule": "udp dport 53 notrack",
         "why": "nft notrack (needs the conntrack module)"},
        {"source": "/etc/nftables.conf", "table": "ip nat",
         "rule": "type nat hook postrouting priority srcnat; policy accept;", "why": "nft NAT chain"},
        {"source": "/etc/nftables.conf", "table": "ip nat", "rule": 'oifname "eth0" masquerade',
         "why": "nft NAT statement"},
    ]  # fmt: skip


def test_looks_like_nft():
    assert dependents.looks_like_nft(NFT_RULES) is True
    assert dependents.looks_like_nft(SAVED_RULES) is False
    assert dependents.looks_like_nft("# table inet x {\n") is False


def test_scan_iptables_on_real_iptables_save_output():
    text = in_netns(
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT"
        " && iptables -A INPUT -p tcp --dport 22 -j ACCEPT"
        " && iptables -t nat -A POSTROUTING -o lo -j MASQUERADE"
        " && iptables-save"
    )
    found = dependents.scan_iptables(text, "iptables-save")
    assert [(f["table"], f["rule"], f["why"]) for f in found] == [
        ("filter", "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT", "conntrack match (-m conntrack)"),
        ("nat", "-A POSTROUTING -o lo -j MASQUERADE", "rule in the nat table"),
    ]


def test_scan_nft_on_real_nft_list_ruleset_output():
    if not shutil.which("nft", path="/usr/sbin:/sbin"):
        pytest.skip("needs nft")
    text = in_netns(
        "nft add table inet t"
        " && nft add chain inet t c '{ type filter hook input priority 0; }'"
        " && nft add rule inet t c ct state established accept"
        " && nft add rule inet t c tcp dport 22 accept"
        " && nft list ruleset"
    )
    assert dependents.scan_nft(text, "nft list ruleset") == [
        {
            "source": "nft list ruleset",
            "table": "inet t",
            "rule": "ct state established accept",
            "why": "nft ct expression",
        }
    ]


def test_find_reads_live_rules_and_saved_files_under_the_root(tmp_path):
    root = os.path.realpath(tmp_path / "root")
    _write(root, "etc/iptables/rules.v4", SAVED_RULES)
    _write(root, "etc/nftables.conf", NFT_RULES)
    (tmp_path / "outside").write_text("*filter\n-A INPUT -m state --state NEW -j ACCEPT\nCOMMIT\n")
    os.makedirs(os.path.join(root, "etc/sysconfig"))
    os.symlink(tmp_path / "outside", os.path.join(root, "etc/sysconfig/iptables"))
    # the core as this test imports it: <utils>/saltext_conntrack/firewall/dependents.py
    utils = os.path.dirname(os.path.dirname(os.path.dirname(dependents.__file__)))
    call = (
        f"import json; from saltext_conntrack.firewall import dependents; print(json.dumps(dependents.find({root!r})))"
    )
    out = in_netns(
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT && "
        f"PATH=/usr/bin:/bin PYTHONPATH={utils} {sys.executable} -c {shlex.quote(call)}"
    )
    found = json.loads(out)
    live = [f for f in found if not f["source"].startswith(root)]
    saved = [f for f in found if f["source"].startswith(root)]
    assert {"source": "iptables-save", "table": "filter", "why": "conntrack match (-m conntrack)",
            "rule": "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT"} in live  # fmt: skip
    assert {f["source"] for f in live} <= {"iptables-save", "ip6tables-save", "nft list ruleset"}
    if shutil.which("nft", path="/usr/sbin:/sbin"):
        assert [f["rule"] for f in live if f["source"] == "nft list ruleset"] == [
            "ct state established counter packets 0 bytes 0 accept"
        ]
    # the link out of the root is not read; rules.v4 then nftables.conf, in SAVED_RULES order
    assert [(f["source"], f["rule"]) for f in saved] == [
        (f"{root}/etc/iptables/rules.v4", f["rule"]) for f in dependents.scan_iptables(SAVED_RULES, "")
    ] + [(f"{root}/etc/nftables.conf", f["rule"]) for f in dependents.scan_nft(NFT_RULES, "")]
