"""Check 3 on Debian's modular kernel: conntrack.unloaded with real consumers,
and blacklisted / not_blacklisted against a rule load that autoloads."""

from tests.support.vm import check

CONSUMERS = {"nf_nat", "xt_conntrack", "nf_conntrack_ftp", "nft_ct"}
CORE = {"nf_conntrack", "nf_defrag_ipv4", "nf_defrag_ipv6"}


def test_unloaded_refuses_while_rules_need_conntrack_and_changes_nothing(boot2):
    ret = check(boot2, "unload_refusals")
    assert [s["rc"] for s in ret["setup"]] == [0, 0, 0, 0]
    assert set(ret["chain"]) >= CONSUMERS | CORE
    assert ret["refused"]["result"] is False and "need conntrack" in ret["refused"]["comment"]
    assert "-m conntrack" in ret["refused"]["comment"] and "nft ct expression" in ret["refused"]["comment"]
    # force passes the rule check; rules still hold modules: refused before the first rmmod
    assert ret["forced"]["result"] is False and "nothing was unloaded" in ret["forced"]["comment"]
    assert {"nft_ct", "xt_conntrack"} <= set(ret["plan"]["in_use"])
    assert ret["unchanged"] is True


def test_unloaded_removes_consumers_first_then_the_core(boot2):
    ret = check(boot2, "unload")
    assert set(ret["before"]) >= CONSUMERS | CORE
    order = ret["plan"]["order"]
    assert ret["plan"]["in_use"] == []
    for consumer in CONSUMERS:
        assert order.index(consumer) < order.index("nf_conntrack")
    assert order[-2:] == ["nf_defrag_ipv4", "nf_defrag_ipv6"]
    assert ret["dry"]["result"] is None and ret["after_dry"] == ret["before"]
    assert ret["real"]["result"] is True, ret["real"]
    left = set(ret["after"]) & (CONSUMERS | CORE | {"nft_chain_nat", "nft_masq"})
    assert left == set(), ret["after"]
    assert ret["knobs"]["max"] is None
    assert ret["again"]["result"] is True and "not loaded" in ret["again"]["comment"]


def test_blacklists_against_a_rule_load(boot2):
    ret = check(boot2, "blacklist_rule_load_only")
    # blacklist nf_conntrack alone: nft_ct loads it as a dependency (no alias lookup)
    soft = ret["soft_module_only"]
    assert soft["state"]["result"] is True and soft["file"].endswith("blacklist nf_conntrack\n")
    assert soft["rules"]["rc"] == 0 and "nf_conntrack" in soft["chain"]
    assert "a soft blacklist does not stop dependency loads" in soft["state"]["comment"]  # and the state says so
    # the chain's entry points blacklisted too: the ct rule cannot load, nf_conntrack stays out
    chain = ret["soft_chain"]
    assert chain["state"]["result"] is True and "blacklist nft_ct\n" in chain["file"]
    assert chain["rules"]["rc"] != 0 and "nf_conntrack" not in chain["chain"]
    hard = ret["hard"]
    assert hard["state"]["result"] is True and "install nf_conntrack /bin/false\n" in hard["file"]
    assert hard["rules"]["rc"] != 0 and "nf_conntrack" not in hard["chain"]
    for case in ("soft_module_only", "soft_chain", "hard"):
        assert ret[case]["cleared"]["result"] is True, ret[case]["cleared"]
    # not_blacklisted let it back: the rule load autoloads it, with the tuned values
    back = ret["not_blacklisted"]
    assert back["rules"]["rc"] == 0 and "nf_conntrack" in back["chain"]
    assert back["knobs"]["max"] == 49152 and back["knobs"]["hashsize"] == 16384


def test_explicit_modprobe_passes_soft_blacklists_not_hard(boot2):
    ret = check(boot2, "blacklist_explicit_load")
    assert ret["soft_module_only"]["explicit"]["rc"] == 0
    assert ret["soft_chain"]["explicit"]["rc"] == 0
    assert ret["hard"]["explicit"]["rc"] != 0 and "/bin/false" in ret["hard"]["explicit"]["err"]
    assert "nf_conntrack" not in ret["hard"]["after"]
    for case in ("soft_module_only", "soft_chain", "hard"):
        assert "nf_conntrack" not in ret[case]["left"], ret[case]
