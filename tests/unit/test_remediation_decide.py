"""remediation.decide: the gate (netns, rate limit, evidence), the sizing rule and
the re-apply decision, from facts alone."""

import pytest

from saltext_conntrack.remediation import decide

CONF = {"threshold": 90.0, "interval": 600, "hash_ratio": 8, "cap": None, "target": None}
STATUS = {"initial_netns": True, "max": 1000, "buckets": 128}


def seen(drop=0, usage=1.0, key="initial", name="(host)"):
    return [{"key": key, "name": name, "drop": drop, "usage": usage}]


def test_outside_the_initial_netns_nothing_is_evaluated():
    found = decide.gate({**STATUS, "initial_netns": False}, seen(usage=100.0), {}, None, 0.0, CONF)
    assert (found.refused, found.evaluated) == ("not_initial_netns", False)
    assert "remediate from the host" in found.reason


def test_rate_limited_inside_the_interval_and_says_when_next():
    found = decide.gate(STATUS, seen(usage=100.0), {}, 1000.0, 1100.0, CONF)
    assert (found.refused, found.evaluated, found.evidence) == ("rate_limited", False, ())
    assert "100 s ago" in found.reason and "next allowed in 501 s" in found.reason
    assert decide.gate(STATUS, seen(usage=100.0), {}, 1000.0, 1600.0, CONF).refused is None


def test_a_rising_drop_counter_confirms():
    found = decide.gate(STATUS, seen(drop=9), {"initial": 4}, None, 0.0, CONF)
    assert found.refused is None and found.evaluated
    assert found.evidence == ("netns (host): drop counter rose from 4 to 9",)


def test_without_a_baseline_only_usage_confirms():
    assert decide.gate(STATUS, seen(drop=9), {}, None, 0.0, CONF).refused == "not_confirmed"
    found = decide.gate(STATUS, seen(drop=None, usage=90.0), {"initial": 0}, None, 0.0, CONF)
    assert found.evidence == ("netns (host): usage 90.0% >= 90.0%",)


def test_not_confirmed_is_evaluated():
    found = decide.gate(STATUS, seen(drop=4), {"initial": 4}, None, 0.0, CONF)
    assert (found.refused, found.evaluated) == ("not_confirmed", True)
    assert "90.0% usage" in found.reason


def test_evidence_names_each_namespace():
    rows = seen(drop=1, usage=95.0) + seen(drop=3, key="netns:7", name="blue")
    assert decide.evidence(rows, {"initial": 1, "netns:7": 2}, 90.0) == [
        "netns (host): usage 95.0% >= 90.0%",
        "netns blue: drop counter rose from 2 to 3",
    ]


@pytest.mark.parametrize(
    "conf, new_max, new_buckets, ceiling",
    [
        ({}, 65536, 8192, 65536),  # the RAM formula's
        ({"cap": 4000}, 4000, 500, 4000),  # min(cap, max(2 x 1000, 65536))
        ({"target": 1500}, 2000, 250, 65536),  # at least twice the current
        ({"hash_ratio": 3, "cap": 2500}, 2500, 834, 2500),  # buckets rounded up
    ],
)
def test_size(conf, new_max, new_buckets, ceiling):
    plan = decide.size(STATUS, {**CONF, **conf}, {"max": 65536})
    assert (plan.refused, plan.new_max, plan.new_buckets, plan.ceiling) == (None, new_max, new_buckets, ceiling)
    assert (plan.current_max, plan.current_buckets) == (1000, 128)


def test_buckets_are_never_lowered():
    plan = decide.size({**STATUS, "buckets": 100000}, CONF, {"max": 65536})
    assert plan.new_buckets == 100000


@pytest.mark.parametrize("cap, bound", [(None, "RAM formula"), (800, "cap")])
def test_at_the_ceiling_is_refused_and_says_which(cap, bound):
    recommended = {"max": 900 if cap is None else 65536}
    plan = decide.size(STATUS, {**CONF, "cap": cap}, recommended)
    assert plan.refused == "at_ceiling" and f"({bound})" in plan.reason and "conntrack.summary" in plan.reason


def test_reapply():
    assert decide.reapply([], None, 100.0, 0).refused == "not_confirmed"
    assert decide.reapply([{"key": "x"}], 50.0, 100.0, 600).refused == "rate_limited"
    assert decide.reapply([{"key": "x"}], 50.0, 1000.0, 600).refused is None
    # A last re-apply in the future (the clock went back) counts as now.
    assert "re-applied 0 s ago" in decide.reapply([{"key": "x"}], 5000.0, 1000.0, 600).reason


def test_unknown_drops_are_named_never_read_as_none_rose():
    found = decide.gate(STATUS, seen(drop=None), {"initial": 4}, None, 0.0, CONF)
    assert found.refused == "not_confirmed"
    assert "drops unknown in (host)" in found.reason and "no drop counter rose" not in found.reason
    both = seen(drop=None) + seen(drop=4, key="netns:9", name="blue")
    found = decide.gate(STATUS, both, {"netns:9": 4}, None, 0.0, CONF)
    assert "drops unknown in (host)" in found.reason and "no other drop counter rose" in found.reason
