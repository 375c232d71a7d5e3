"""The diagnosis core on its own: the findings with and without status's
``recent`` block (the textfile format is tests/unit/test_report_prometheus.py)."""

import yaml

from saltext_conntrack.report import diagnosis, host_findings

STATUS = {
    "flavour": "nf_conntrack",
    "count": 500,
    "max": 1000,
    "usage": 50.0,
    "buckets": 1000,
    "hashsize": 1000,
    "initial_netns": True,
    "stats": {"drop": 40, "early_drop": 0, "insert_failed": 0},
}


def findings_for(status, **kwargs):
    args = {
        "recommend": {"max": 2000, "ram": 1 << 30, "entry_size": 256},
        "timeouts": {},
        "names": {},
        "dependents": [{"why": "x"}],
        "facts": {},
    }
    args.update(kwargs)
    return {f["id"]: f for f in diagnosis.findings(status, **args)}


def test_recent_block_decides_now_or_past():
    recent = {"seconds": 12.5, "drop": 30, "early_drop": 4, "insert_failed": 2}
    found = findings_for({**STATUS, "recent": recent})
    assert found["drops_rising"]["severity"] == "critical"
    assert found["drops_rising"]["evidence"] == {"drop": 30, "seconds": 12.5, "drop_since_boot": 40, "usage": 50.0}
    assert "12.5 s" in found["drops_rising"]["why"]
    assert found["early_drop_rising"]["evidence"]["early_drop"] == 4
    assert found["insert_failed_rising"]["evidence"]["insert_failed"] == 2
    assert found["limit_low"]["severity"] == "critical"  # drops now make a low limit urgent
    assert "drops_since_boot" not in found
    # max(2 x 1000, recommended 2000)
    assert yaml.safe_load(found["drops_rising"]["fix"]) == {
        "conntrack-size": {"conntrack.tuned": [{"max": 2000}, {"buckets": "auto"}]}
    }
    quiet = findings_for({**STATUS, "recent": {"seconds": 60, "drop": 0, "early_drop": 0, "insert_failed": 0}})
    assert not {"drops_rising", "drops_since_boot", "early_drop_rising"} & set(quiet)
    assert quiet["limit_low"]["severity"] == "info"
    past = findings_for(STATUS)  # no recent block: an older status
    assert past["drops_since_boot"]["severity"] == "warning"


def test_worst_first_and_every_field():
    found = diagnosis.findings(
        {**STATUS, "usage": 95.0, "recent": {"seconds": 5, "drop": 1}}, {"max": 2000}, {}, {}, [], {}
    )
    severities = [diagnosis.SEVERITY[f["severity"]] for f in found]
    assert severities == sorted(severities, reverse=True) and found[0]["severity"] == "critical"
    assert {f["id"] for f in found} <= set(diagnosis.IDS)
    assert "no_dependents" in {f["id"] for f in found}
    for f in found:
        assert f["why"].endswith(".") and f["fix"] and f["fix_type"] in ("sls", "nft", "command")
        assert set(f) == set(host_findings.Finding.__annotations__), f["id"]


def test_unreadable_dependents_is_no_verdict():
    found = findings_for({**STATUS, "usage": 95.0}, dependents=None)
    assert "no_dependents" not in found


def test_drops_at_the_ram_ceiling_offer_a_forced_raise():
    found = findings_for({**STATUS, "max": 4000, "recent": {"seconds": 5, "drop": 3}})
    fix = yaml.safe_load(found["drops_rising"]["fix"])["conntrack-size"]["conntrack.tuned"]
    assert fix == [{"max": 8000}, {"buckets": "auto"}, {"force": True}]
    assert any("RAM ceiling" in s for s in found["drops_rising"]["side_effects"])
    assert "limit_low" not in found


def test_another_namespace_near_the_limit_is_a_finding():
    rows = [
        {"inode": 1, "names": [], "owner": {"pid": 1}, "count": 990, "usage": 99.0, "drop": 0},  # this one
        {"inode": 2, "names": ["/run/netns/blue"], "owner": None, "count": 950, "usage": 95.0, "drop": 7},
        {
            "inode": 3,
            "names": [],
            "owner": {"pid": 42, "runtime": "docker", "container": "c" * 64},
            "count": 960,
            "usage": 96.0,
            "drop": 0,
        },
        {"inode": 4, "names": [], "owner": {"pid": 43}, "count": 10, "usage": 1.0, "drop": 0},
    ]
    found = diagnosis.findings(STATUS, {"max": 2000}, {}, {}, [{"why": "x"}], {"namespaces": rows, "self_inode": 1})
    full = [f for f in found if f["id"] == "namespace_full"]
    assert [f["evidence"]["inode"] for f in full] == [2, 3]
    assert all(f["severity"] == "critical" and f["fix_type"] == "command" for f in full)
    assert "ip netns exec blue salt-call" in full[0]["fix"]
    assert "docker container cccccccccccc" in full[1]["why"] and "nsenter -t 42 -n" in full[1]["fix"]
