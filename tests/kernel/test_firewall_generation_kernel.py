"""The firewall fingerprint (``firewall.generation``) on the real kernel, in a namespace of the
test's own: ``dependents`` is asked again exactly when nft or iptables-legacy rules change."""

import shutil

import pytest

from saltext_conntrack.firewall import dependents, generation
from tests.support.kernel import Netns


def test_dependents_asked_again_only_when_the_rules_change(tmp_path):
    if not shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin"):
        pytest.fail("install nftables (scripts/system-deps)")
    root = str(tmp_path)  # no saved rules files under it: the live rules only
    with Netns("ctg") as netns, netns.entered():
        rules = generation.Rules(ttl=600)

        def ask():
            return dependents.survey(root)["rules"]

        first = rules.get(root, ask, 0)
        assert any("ct state" in r["rule"] for r in first)  # Netns's own rule
        assert rules.get(root, ask, 1) == first and rules.asked == 1
        assert isinstance(generation.fingerprint(root)[0], int)  # the nftables generation id

        netns.run("nft", "add rule inet ctt out udp dport 53 notrack")
        second = rules.get(root, ask, 2)
        assert rules.asked == 2 and len(second) == len(first) + 1

        legacy = shutil.which("iptables-legacy", path="/usr/sbin:/sbin:/usr/bin")
        if legacy:
            netns.run(legacy, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
            rules.get(root, ask, 3)
            assert rules.asked == 3  # iptables-legacy's table changed size
            netns.run(legacy, "-A", "OUTPUT", "-j", "ACCEPT")
            rules.get(root, ask, 4)
            assert rules.asked == 4
        asked = rules.asked
        assert rules.get(root, ask, 5) == rules.kept[2] and rules.asked == asked  # nothing changed
        assert rules.get(root, ask, 700) is not None and rules.asked == asked + 1  # the ttl
