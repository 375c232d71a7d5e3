"""report.trend_findings: a table filling before its first drop, and the insert clash told from full."""

import pytest
import yaml

from saltext_conntrack.report import diagnosis, trend_findings

STATUS = {
    "flavour": "nf_conntrack",
    "count": 400,
    "max": 1000,
    "usage": 40.0,
    "buckets": 1000,
    "stats": {"drop": 0, "early_drop": 0, "insert_failed": 90, "clashres": 12},
    "recent": {"drop": 0, "early_drop": 0, "insert_failed": 0, "seconds": 300.0},
}


def _trend(full_in, rise=2.0):
    return {"full_in": full_in, "count_per_s": rise, "insert_per_s": 3.0, "seconds": 120.0}


@pytest.mark.parametrize(("full_in", "severity"), [(300.0, "warning"), (100.0, "critical"), (1000.0, None)])
def test_filling_by_the_verdicts_thresholds(full_in, severity):
    found = trend_findings.filling_finding({**STATUS, "trend": _trend(full_in)}, {"max": 4000})
    if severity is None:
        assert found == []
        return
    (one,) = found
    assert one["id"] == "filling" and one["severity"] == severity
    assert one["evidence"]["full_in"] == full_in and one["evidence"]["count_per_s"] == 2.0
    assert "full in" in one["why"] and one["why"].endswith(".")
    assert yaml.safe_load(one["fix"]) == {"conntrack-size": {"conntrack.tuned": [{"max": 4000}, {"buckets": "auto"}]}}


def test_no_filling_when_flat_unknown_or_full_already():
    for trend in (None, _trend(None), _trend(0)):
        assert trend_findings.filling_finding({**STATUS, "trend": trend}) == []


def test_clash_at_a_nearly_empty_table_names_the_real_cures():
    recent = {**STATUS["recent"], "insert_failed": 25}
    (one,) = trend_findings.clash_finding({**STATUS, "recent": recent})
    assert one["id"] == "insert_clash" and one["fix_type"] == "snippet"
    assert one["evidence"]["insert_failed"] == 25 and one["evidence"]["clashres_since_boot"] == 12
    for cure in ("--random-fully", "random,fully-random", "single-request-reopen", "use-vc", "DNS cache"):
        assert cure in one["fix"]
    assert "buckets" not in one["fix"]


def test_insert_failed_at_a_full_table_keeps_its_meaning():
    busy = {**STATUS, "usage": 95.0, "count": 950, "recent": {**STATUS["recent"], "insert_failed": 25}}
    assert trend_findings.clash_finding(busy) == []
    dropping = {**STATUS, "recent": {**STATUS["recent"], "insert_failed": 25, "drop": 3}}
    assert trend_findings.clash_finding(dropping) == []
    args = ({"max": 1000}, {}, {}, [{"why": "x"}], {})
    ids = [f["id"] for f in diagnosis.findings(busy, *args)]
    assert "insert_failed_rising" in ids and "insert_clash" not in ids
    low = {**STATUS, "recent": {**STATUS["recent"], "insert_failed": 25}}
    ids = [f["id"] for f in diagnosis.findings(low, *args)]
    assert "insert_clash" in ids and "insert_failed_rising" not in ids


def test_diagnosis_lists_filling_first_among_warnings():
    found = diagnosis.findings({**STATUS, "trend": _trend(500.0)}, {"max": 1000}, {}, {}, [{"why": "x"}], {})
    assert found[0]["id"] == "filling" and found[0]["severity"] == "warning"


def test_resolved_races_alone_are_info():
    recent = {**STATUS["recent"], "clashres": 9}
    (one,) = trend_findings.clash_finding({**STATUS, "recent": recent})
    assert one["severity"] == "info" and one["evidence"]["clashres"] == 9 and "resolved by the kernel" in one["why"]
    assert trend_findings.clash_finding({**STATUS, "recent": {**recent, "insert_failed": 1}})[0]["severity"] == (
        "warning"
    )
