"""The firewall plans that left ``conntrack_fw``: the unload refusals, the
backend choice, the notrack input checks and the nft include apply."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.firewall import notrack, rmmod

CHAIN_PLAN = {"order": ["nf_nat", "nf_conntrack"], "in_use": [], "refcnt": {"nf_nat": 1, "nf_conntrack": 1}}
RULE = {"rule": "-A INPUT -m state --state ESTABLISHED -j ACCEPT", "why": "state match", "source": "iptables-save"}


def test_unload_refused_for_dependents_unless_forced():
    with pytest.raises(CommandExecutionError, match=r"1 firewall rule\(s\) need conntrack.*force=True"):
        rmmod.refuse(CHAIN_PLAN, [RULE], force=False)
    rmmod.refuse(CHAIN_PLAN, [RULE], force=True)
    rmmod.refuse(CHAIN_PLAN, [], force=False)


def test_unload_refused_while_in_use_even_forced():
    held = {**CHAIN_PLAN, "in_use": ["nf_conntrack"], "refcnt": {"nf_conntrack": 3}}
    with pytest.raises(CommandExecutionError, match=r"nf_conntrack \(refcnt 3\) in use.*nothing was unloaded"):
        rmmod.refuse(held, [], force=True)


def test_no_firewall_tool_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(notrack.commands, "which", lambda name: None)
    with pytest.raises(CommandExecutionError, match="neither nft nor iptables is installed"):
        notrack.host_backend()


@pytest.mark.parametrize(
    "flows, backend, persist",
    [([{"proto": "icmp", "port": 1}], "nft", None), ([{"proto": "udp", "port": 53}], "pf", None),
     ([{"proto": "udp", "port": 53}], "nft", 5), ([{"proto": "udp", "port": 53}], "nft", "/etc/passwd")],
)  # fmt: skip
def test_notrack_plan_refuses_before_reading_the_live_rules(tmp_path, monkeypatch, flows, backend, persist):
    monkeypatch.setattr(notrack, "_live_plan", lambda *a: pytest.fail("the live rules were read"))
    with pytest.raises(SaltInvocationError):
        notrack.plan(str(tmp_path), flows, backend, persist)


def test_apply_includes_writes_unless_test(tmp_path):
    conf = tmp_path / "etc/nftables.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("flush ruleset\n")
    configs = notrack.include_plans(str(tmp_path), notrack.DEFAULT_FILES["nft"])
    dry = notrack.apply_includes(str(tmp_path), configs, test=True)
    assert dry["written"] == [] and dry["configs"] == ["/etc/nftables.conf"] and conf.read_text() == "flush ruleset\n"
    ret = notrack.apply_includes(str(tmp_path), configs, test=False)
    assert ret["written"] == ["/etc/nftables.conf"] and ret["changes"] == dry["changes"]
    assert conf.read_text().endswith('include "/etc/nftables.d/conntrack-notrack.nft"\n')
